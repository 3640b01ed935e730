"""``labproto calc``: a session with labcalc, typed at a terminal or piped from a file."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from twisted.internet.defer import Deferred

from labproto import ports
from labproto.calc.parser import CalculationError, split_expression
from labproto.calc.protocol import (
    NAME_RULE,
    QUIT,
    SESSION_ENDED,
    WELCOME,
    is_quit,
    parse_name,
)
from labproto.clients import arguments
from labproto.clients.common import ClientError, Console
from labproto.clients.lines_in import MAX_INPUT_LINE, InputLines, LineTooLong
from labproto.clients.tcp import (
    ServerConnection,
    add_timeout_argument,
    add_tls_arguments,
    connect_lines,
)
from labproto.text import printable

DESCRIPTION = (
    "Start a session with a labcalc server: give a name, then one expression per "
    "line (NUMBER OP NUMBER, e.g. 12 + 42), each answered with Result: ANSWER, "
    "until q or the end of the input. Lines of another form are not sent; a warning "
    "on standard error says why. Input may be piped from a file (labproto calc "
    "--name me < exprs.txt); the name is then --name or the first line. Status 1 if "
    "the server cannot be reached, is not labcalc, refuses the name, stops answering "
    "or drops the connection, or if the input ends before a name is accepted."
)
# What the client prints when the session ends, as the lab's client does.
SESSION_ENDED_NOTICE = "Session Ended"


# --name: a name the server accepts, checked before connecting.
name_argument = arguments.name_type(parse_name, NAME_RULE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the calc client's options to its subcommand parser."""
    arguments.add_server_arguments(parser, ports.LABCALC)
    add_tls_arguments(parser)
    parser.add_argument(
        "--name",
        type=name_argument,
        help="the name to give the server (default: ask for it, or read it from "
        "the first input line)",
    )
    add_timeout_argument(parser)


class CalculatorSession:
    """One session's dialogue between the input lines, the server and the console.

    At a terminal it shows the server's own prompts; with input from a pipe
    or a file it prints only the results, so that its output can be read by
    another program.
    """

    def __init__(
        self,
        server: ServerConnection,
        lines: InputLines,
        console: Console,
        interactive: bool,
    ) -> None:
        self.server = server
        self.lines = lines
        self.console = console
        self.interactive = interactive

    def show(self, server_line: str) -> None:
        """Print one of the server's prompts, at a terminal only."""
        if self.interactive:
            self.console.say(printable(server_line))

    async def next_input(self) -> str | None:
        """The user's next line, or None at the end of the input; ClientError if the server goes."""
        return await self.server.while_connected(Deferred.fromCoroutine(self.lines.next_line()))

    async def ask(self, line: str) -> str:
        """Send one line and return the server's answer."""
        self.server.send(line)
        return await self.server.receive()

    async def introduce(self, name: str | None) -> None:
        """Give the server a name; ClientError if none is accepted, which is no session at all."""
        self.show(await self.server.receive_first("labcalc", lambda line: line == WELCOME))
        while name is None:
            typed = await self.next_input()
            if typed is None:
                raise ClientError("no session: the input ended before a name was accepted")
            name = parse_name(typed)
            if name is None or isinstance(typed, LineTooLong):
                self.console.complain(f"not sent: invalid name: {NAME_RULE}")
                name = None
        answer = await self.ask(name)
        if answer.startswith("ERROR "):
            raise ClientError(
                f"{self.server.where} refused the name {name!r}: {printable(answer)}"
            )
        self.show(answer)
        # From now on a Ctrl-C ends the session as q does; before, a q
        # would have been taken for the name.
        self.server.farewell = QUIT

    async def calculate(self) -> None:
        """Send each well-formed input line and print its answer, until q or the input ends."""
        while True:
            typed = await self.next_input()
            line = QUIT if typed is None else typed.strip()
            if not line:
                continue
            if is_quit(line):
                await self.quit()
                return
            if isinstance(typed, LineTooLong):
                self.console.complain(f"not sent: a line longer than {MAX_INPUT_LINE} bytes")
                continue
            try:
                split_expression(line)
            except CalculationError as e:
                why = e.answer.removeprefix("ERROR ")
                self.console.complain(f"not sent: {printable(line)}: {why}")
                continue
            self.console.say(f"Result: {printable(await self.ask(line))}")

    async def quit(self) -> None:
        """End the session as the lab's client does."""
        answer = await self.ask(QUIT)
        if answer != SESSION_ENDED:
            raise ClientError(f"{self.server.where} answered q with {printable(answer)!r}")
        self.console.say(SESSION_ENDED_NOTICE)


async def run(reactor: Any, options: argparse.Namespace, console: Console) -> None:
    """Run one calculator session with the server of options."""
    server = await connect_lines(reactor, options)
    # With standard input closed (labproto calc <&-), there is no input at all.
    stdin = sys.stdin.fileno() if sys.stdin is not None else os.open(os.devnull, os.O_RDONLY)
    session = CalculatorSession(server, InputLines(reactor, stdin), console, os.isatty(stdin))
    try:
        await session.introduce(options.name)
        await session.calculate()
    finally:
        await server.close()
