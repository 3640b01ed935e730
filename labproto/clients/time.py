"""``labproto time``: ask udptime for the date or the time, round after round."""

from __future__ import annotations

import argparse
import random
from collections import deque
from dataclasses import dataclass
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from labproto import ports
from labproto.clients import arguments
from labproto.clients.common import ClientError, Console, describe_server
from labproto.clients.udp import ConnectedDatagramProtocol, ServerUnreachable, connect_udp
from labproto.text import decode_text, format_address, printable
from labproto.udptime.protocol import (
    ERROR,
    MAX_TOKEN_LENGTH,
    PADDED_REQUEST_SIZE,
    SEND_DATE,
    SEND_TIME,
)

# Tokens are the round number, wrapping to stay within the server's limit.
TOKEN_LIMIT = 10**MAX_TOKEN_LENGTH

DESCRIPTION = (
    "Ask a udptime server for the date or the time, chosen at random each round, "
    "and print each answer, pausing 1 to 2 s between rounds. Each request carries "
    "a token, so a late answer to an earlier request is never taken for the "
    "current one."
)


@dataclass(frozen=True)
class Answer:
    """The text of one answer, its token removed, and who sent it."""

    text: str
    sender: tuple[str, int]


class TimeClientProtocol(ConnectedDatagramProtocol):
    """Ask one question at a time, matching answers to it by token.

    An answer whose token is not the current request's is a late answer to
    an earlier, timed-out request: it is dropped, never taken for the
    current answer. The server's ``ERROR`` carries no token, so it is taken
    for the current answer only while no earlier request may still draw one.
    """

    # How many timed-out requests are remembered as still able to draw an
    # answer; older ones are taken to be lost for good.
    LATE_MEMORY = 64

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._token = b""
        self._answer: Deferred[Answer | None] | None = None
        self._timer: IDelayedCall | None = None
        self._unreachable: ServerUnreachable | None = None
        self._timed_out: deque[bytes] = deque(maxlen=self.LATE_MEMORY)

    def ask(self, command: str, token: str, timeout: float) -> Deferred[Answer | None]:
        """Send command with token; fire with the Answer, or None after timeout seconds."""
        if self._answer is not None:
            raise RuntimeError("ask() called while a request is outstanding")
        answer: Deferred[Answer | None] = Deferred()
        if self._unreachable is not None:
            answer.errback(self._unreachable)
            return answer
        self._token, self._answer = token.encode("ascii"), answer
        self._timer = self.clock.callLater(timeout, self._timedOut)
        self.send(f"{command} {token}".encode("ascii").ljust(PADDED_REQUEST_SIZE))
        return answer

    def _timedOut(self) -> None:
        self._timer = None
        self._timed_out.append(self._token)
        self._finish(None)

    def _finish(self, result: Answer | None | Exception) -> None:
        answer, self._answer = self._answer, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        assert answer is not None
        if isinstance(result, Exception):
            answer.errback(result)
        else:
            answer.callback(result)

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        if datagram == ERROR:
            if self._answer is not None and not self._timed_out:
                self._finish(Answer(ERROR.decode("ascii"), addr))
            return
        token, _, text = datagram.partition(b" ")
        if self._answer is not None and token == self._token:
            self._finish(Answer(printable(decode_text(text)), addr))
        elif token in self._timed_out:
            self._timed_out.remove(token)

    def serverUnreachable(self, reason: str) -> None:
        self._unreachable = ServerUnreachable(reason)
        if self._answer is not None:
            self._finish(self._unreachable)


async def ask_rounds(
    clock: IReactorTime,
    protocol: TimeClientProtocol,
    console: Console,
    rng: random.Random,
    *,
    rounds: int | None,
    timeout: float,
    min_delay: float,
    max_delay: float,
) -> int:
    """Ask a random question each round, print the outcome, pause; return how many were answered.

    rounds None means forever. There is no pause after the last round.
    """
    answered = 0
    number = 0
    while rounds is None or number < rounds:
        number += 1
        command = rng.choice((SEND_DATE, SEND_TIME))
        answer = await protocol.ask(command, str(number % TOKEN_LIMIT), timeout)
        if answer is None:
            console.complain(f"no reply to {command} (timed out)")
        else:
            answered += 1
            console.say(
                f"Client received MESSAGE = {answer.text} "
                f"from ADDR = {format_address(*answer.sender)}"
            )
        if rounds is None or number < rounds:
            await task.deferLater(clock, rng.uniform(min_delay, max_delay))
    return answered


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Describe labproto time's arguments."""
    arguments.add_server_arguments(parser, ports.UDPTIME)
    parser.add_argument(
        "--count",
        type=arguments.count_from_one,
        default=None,
        metavar="N",
        help="stop after N rounds (default: go on until Ctrl-C)",
    )
    parser.add_argument(
        "--timeout",
        type=arguments.positive_float,
        default=1.0,
        metavar="SECONDS",
        help="how long to wait for each answer (default: 1)",
    )
    parser.add_argument(
        "--min-delay",
        type=arguments.non_negative_float,
        default=1.0,
        metavar="SECONDS",
        help="shortest pause between rounds (default: 1)",
    )
    parser.add_argument(
        "--max-delay",
        type=arguments.non_negative_float,
        default=2.0,
        metavar="SECONDS",
        help="longest pause between rounds (default: 2)",
    )


def usage_problem(options: argparse.Namespace) -> str | None:
    """What is wrong with options taken together, which argparse checks one by one."""
    if options.min_delay > options.max_delay:
        return "--min-delay must not be longer than --max-delay"
    return None


async def run(reactor: Any, options: argparse.Namespace, console: Console) -> None:
    """Run the rounds and print each answer; raise ClientError when the server cannot be had."""
    server = describe_server(options.host, options.port)
    protocol = TimeClientProtocol(reactor)
    await connect_udp(reactor, protocol, options.host, options.port)
    try:
        answered = await ask_rounds(
            reactor,
            protocol,
            console,
            random.Random(),
            rounds=options.count,
            timeout=options.timeout,
            min_delay=options.min_delay,
            max_delay=options.max_delay,
        )
    except ServerUnreachable as e:
        raise ClientError(f"no server at {server} ({e.reason})") from None
    finally:
        await protocol.close()
    if answered == 0:
        raise ClientError(f"no reply from {server} to any of {options.count} requests")
