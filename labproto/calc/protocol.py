"""The labcalc server: a name first, then one answer per expression, until ``q``.

::

    S: Welcome to labcalc. What's your name?
    C: gautamop
    S: Hello gautamop! Send an expression like 12 + 42, or q to quit.
    C: 12 + 42
    S: 54.0
    C: q
    S: Session ended            (then the server closes the connection)

The name is the connection's state: it is remembered for the whole session
and names the client in every log line about it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from labproto.calc.parser import EXAMPLE, answer
from labproto.lines import DEFAULT_MAX_LINE, LineProtocol, LineServerFactory
from labproto.text import has_controls, printable

WELCOME = "Welcome to labcalc. What's your name?"
QUIT = "q"
# Every word that ends a session, in any case: people type what they know.
QUIT_WORDS = frozenset({QUIT, "quit", "exit"})
SESSION_ENDED = "Session ended"
MAX_NAME_LENGTH = 64
NAME_RULE = f"use 1 to {MAX_NAME_LENGTH} characters and no control characters"
INVALID_NAME = f"ERROR invalid name: {NAME_RULE}"


def hello(name: str) -> str:
    """The greeting that tells a named client what to send next."""
    return f"Hello {name}! Send an expression like {EXAMPLE}, or {QUIT} to quit."


def is_quit(text: str) -> bool:
    """Whether a line (trimmed) asks to end the session: ``q``, ``quit`` or ``exit``, any case."""
    return text.lower() in QUIT_WORDS


def parse_name(text: str) -> str | None:
    """The name that text gives, trimmed, or None when it is not a valid name."""
    name = text.strip()
    if 1 <= len(name) <= MAX_NAME_LENGTH and not has_controls(name):
        return name
    return None


class CalculatorProtocol(LineProtocol):
    """One client's session: its name, then its expressions and their answers.

    A quiet session does not log each request (twistd's ``--quiet``), so
    that a benchmark measures the service rather than its log.
    """

    log = Logger()

    def __init__(self, max_line: int, quiet: bool = False) -> None:
        super().__init__(max_line)
        self.quiet = quiet
        # None until the client has named itself: the session's one state.
        self.name: str | None = None

    def connectionMade(self) -> None:
        self.log.info("Connection from {peer}", peer=self.peer())
        self.send_text(WELCOME)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.name is None:
            self.log.info("Connection closed before a name from {peer}", peer=self.peer())
        else:
            self.log.info("Session ended ({name})", name=printable(self.name))

    def textReceived(self, text: str) -> None:
        if self.name is None:
            self.name_received(text)
        else:
            self.expression_received(text.strip())

    def name_received(self, text: str) -> None:
        """Remember the client's name, or refuse it and keep asking."""
        name = parse_name(text)
        if name is None:
            self.send_text(INVALID_NAME)
            return
        self.name = name
        # The name is the peer's text: shown escaped, as every peer text in a log.
        self.log.info("{peer} is {name}", peer=self.peer(), name=printable(name))
        self.send_text(hello(name))

    def expression_received(self, expression: str) -> None:
        """Answer one expression, or end the session on ``q``, ``quit`` or ``exit``."""
        if is_quit(expression):
            self.send_text(SESSION_ENDED)
            self.hang_up()
            return
        result = answer(expression)
        # Expressions come only once the client has named itself.
        assert self.name is not None
        if not self.quiet:
            self.log.info(
                "{name}: {expression} = {answer}",
                name=printable(self.name),
                expression=printable(expression),
                answer=result,
            )
        self.send_text(result)


class CalculatorFactory(LineServerFactory):
    """Makes one CalculatorProtocol per connection; each session keeps its own name."""

    protocol: Any = CalculatorProtocol

    def __init__(self, max_line: int = DEFAULT_MAX_LINE, quiet: bool = False) -> None:
        super().__init__(max_line)
        self.quiet = quiet

    def buildProtocol(self, addr: Any) -> CalculatorProtocol:
        protocol: CalculatorProtocol = self.protocol(self.max_line, quiet=self.quiet)
        protocol.factory = self
        return protocol
