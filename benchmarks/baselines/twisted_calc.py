"""The minimal Twisted LineReceiver calculator: the rate labcalc's requests/s is compared with.

It stands for what any Twisted line service costs per request: the
reactor's read, LineReceiver's framing, one float operation and the write.
It speaks the part of labcalc's dialogue that the benchmark uses::

    S: Welcome to labcalc. What's your name?
    C: bench007
    S: Hello bench007! Send an expression like 12 + 42, or q to quit.
    C: 12 + 42
    S: 54.0
    C: q
    S: Session ended            (then the server closes the connection)

Lines end with LF in (one CR before it dropped) and CRLF out, and results
are formatted as labcalc formats them (``%.15g``, whole numbers with ``.0``).

It leaves out everything labcalc adds for its users: the number grammar and
its checks (``float()`` takes ``nan`` here, ``eval`` is still never used),
name checks, the ``--max-line`` rule and its error line, back-pressure on a
peer that does not read, half-close handling, the log of each request,
``--trace``, TLS and other endpoints, and the twistd plugin machinery. Any
failure to compute is the bare line ``ERROR``. Run it with::

    python -m benchmarks.baselines.twisted_calc --port P [--host 127.0.0.1]
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver

from benchmarks.baselines import TCP_BACKLOG, run

WELCOME = b"Welcome to labcalc. What's your name?"
SESSION_ENDED = b"Session ended"
OPERATIONS: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


class MinimalCalculator(LineReceiver):
    """A name, then one answer per ``A OP B`` line, until ``q``; nothing logged."""

    delimiter = b"\n"
    name: str | None = None

    def connectionMade(self) -> None:
        self.sendLine(WELCOME)

    def sendLine(self, line: bytes) -> None:
        # Lines are read up to LF, as nc sends them, but written with CRLF, as labcalc does.
        assert self.transport is not None
        self.transport.write(line + b"\r\n")

    def lineReceived(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").strip()
        if self.name is None:
            self.name = text
            self.sendLine(f"Hello {text}! Send an expression like 12 + 42, or q to quit.".encode())
            return
        if text == "q":
            self.sendLine(SESSION_ENDED)
            assert self.transport is not None
            self.transport.loseConnection()
            return
        try:
            left, op, right = text.split()
            result = f"{OPERATIONS[op](float(left), float(right)):.15g}"
            if not any(mark in result for mark in ".en"):
                result += ".0"
        except Exception:
            result = "ERROR"
        self.sendLine(result.encode("ascii"))


class MinimalCalculatorFactory(Factory):
    protocol = MinimalCalculator
    noisy = False


def main(argv: list[str] | None = None) -> None:
    run(
        "twisted_calc",
        "The minimal Twisted LineReceiver calculator, a baseline for labcalc.",
        "TCP",
        lambda reactor, port, host: reactor.listenTCP(
            port, MinimalCalculatorFactory(), backlog=TCP_BACKLOG, interface=host
        ),
        argv,
    )


if __name__ == "__main__":
    main()
