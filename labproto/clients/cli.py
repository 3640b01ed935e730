"""The ``labproto`` command: one subcommand per client, each a Twisted program run by task.react."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from twisted.internet import task

from labproto import __version__
from labproto.clients import calc, chat, echo, knock, time
from labproto.clients.arguments import UsageParser
from labproto.clients.common import (
    EXIT_OK,
    EXIT_OUTPUT_FAILED,
    ClientError,
    Console,
    Interrupted,
    OutputClosed,
    detach_closed_output,
)

CLIENTS = {
    "echo": (echo, "send a message to udpecho and wait for its Ok"),
    "time": (time, "ask udptime for the date or the time, round after round"),
    "knock": (knock, "tell knockknock a knock-knock joke"),
    "calc": (calc, "a calculator session with labcalc, typed or piped"),
    "chat": (chat, "join the labchat room, at a terminal or scripted"),
}


def build_parser() -> argparse.ArgumentParser:
    """The parser of the labproto command and all its subcommands."""
    parser = UsageParser(
        prog="labproto",
        description="Clients for the labproto socket-lab services.",
        epilog="Exit status: 0 when the exchange ends normally, 1 when the server "
        "cannot be reached or stops answering, 2 for a usage error.",
    )
    parser.add_argument("--version", action="version", version=f"labproto {__version__}")
    subcommands = parser.add_subparsers(dest="client", metavar="CLIENT", required=True)
    for name, (module, summary) in CLIENTS.items():
        subparser = subcommands.add_parser(
            name, help=summary, description=module.DESCRIPTION, epilog=parser.epilog
        )
        module.add_arguments(subparser)
        subparser.set_defaults(
            run=module.run,
            prepare=getattr(module, "prepare", None),
            usage_problem=getattr(module, "usage_problem", None),
            subparser=subparser,
        )
    return parser


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options of argv, or exit 2 with a usage error, that of a subcommand's options together.

    A problem found only in options taken together (labproto time's
    --min-delay longer than its --max-delay) is reported as argparse
    reports any other: ``labproto time: ... (see labproto time --help)``.
    """
    options = build_parser().parse_args(argv)
    if options.usage_problem is not None:
        problem = options.usage_problem(options)
        if problem is not None:
            options.subparser.error(problem)
    return options


async def run_client(reactor: Any, options: argparse.Namespace, console: Console) -> None:
    """Run the chosen client, turning its ClientError into one line and an exit status."""
    try:
        await options.run(reactor, options, console)
    except Interrupted:
        pass
    except ClientError as e:
        console.complain(e.message)
        raise SystemExit(e.status) from None
    except OutputClosed as e:
        # Whatever is still buffered for the closed output must not fail again at exit.
        detach_closed_output(console.out)
        if e.reason is None:
            # The reader stopped reading (labproto time | head -3): the
            # exchange is over as the user wanted.
            raise SystemExit(EXIT_OK) from None
        console.complain(f"cannot write to standard output: {e.reason}")
        raise SystemExit(EXIT_OUTPUT_FAILED) from None


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the labproto command."""
    options = parse_arguments(argv)
    if options.prepare is not None:
        # Before task.react imports the reactor: a client may need another
        # one than the default (labproto chat at a terminal needs asyncio's).
        options.prepare(options)
    task.react(run_client, (options, Console()))
