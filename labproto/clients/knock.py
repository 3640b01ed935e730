"""``labproto knock``: tell knockknock a joke, or only its first line as the lab's template does."""

from __future__ import annotations

import argparse
from typing import Any

from labproto import ports
from labproto.clients import arguments
from labproto.clients.common import ClientError, Console
from labproto.clients.tcp import add_timeout_argument, add_tls_arguments, connect_lines
from labproto.knock.protocol import KNOCK, WHOS_THERE
from labproto.text import has_controls, printable

DESCRIPTION = (
    "Knock on a knockknock server's door and print its answer, as the lab's template "
    "client does: CLIENT RECEIVED: Who's there? With --joke, tell a whole joke and "
    "print each answer. Status 1 if the server cannot be reached, stops answering or "
    "refuses a line."
)


def joke_line(text: str) -> str:
    """A line of a joke: some visible text, on one line."""
    if not text.strip() or has_controls(text):
        raise argparse.ArgumentTypeError(f"{printable(text)!r} is not a line of a joke")
    return text.strip()


def _answers_a_knock(line: str) -> bool:
    """Whether line is what a knockknock server says to a knock."""
    return line == WHOS_THERE or line.startswith("ERROR ")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the knock client's options to its subcommand parser."""
    arguments.add_server_arguments(parser, ports.KNOCKKNOCK)
    add_tls_arguments(parser)
    parser.add_argument(
        "--joke",
        nargs=2,
        type=joke_line,
        metavar=("WHO", "PUNCHLINE"),
        help="tell a whole joke: who is there, then the punchline, e.g. "
        "--joke Lettuce \"Lettuce in, it's cold out here!\"",
    )
    add_timeout_argument(parser)


async def run(reactor: Any, options: argparse.Namespace, console: Console) -> None:
    """Tell the joke of options, a line at a time, printing each answer."""
    lines = [KNOCK, *(options.joke or [])]
    server = await connect_lines(reactor, options)
    try:
        for index, line in enumerate(lines):
            server.send(line)
            if index == 0:
                # knockknock speaks only when spoken to: its answer to the
                # knock, or a refusal of it, tells it from another service.
                answer = await server.receive_first("knockknock", _answers_a_knock)
            else:
                answer = await server.receive()
            if answer.startswith("ERROR "):
                raise ClientError(f"{server.where} refused {line!r}: {printable(answer)}")
            console.say(f"CLIENT RECEIVED: {printable(answer)}")
    finally:
        await server.close()
