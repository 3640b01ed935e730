"""``labproto echo``: send a message to udpecho and wait for its Ok, resending as UDP needs."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from labproto import ports
from labproto.clients import arguments
from labproto.clients.common import EXIT_USAGE, ClientError, Console, describe_server
from labproto.clients.udp import ConnectedDatagramProtocol, ServerUnreachable, connect_udp
from labproto.text import decode_text, format_address, printable

DEFAULT_MESSAGE = "I could tell you a UDP joke but I'm not sure you'll get it."
# udpecho answers no datagram shorter than its two-byte answer.
SHORTEST_MESSAGE = 2
# What one UDP datagram over IPv4 can carry.
MAX_UDP_PAYLOAD = 65507

DESCRIPTION = (
    "Send one message to a udpecho server and print its answer. UDP may lose "
    "datagrams, so an unanswered message is sent again, each wait twice the one "
    "before (1, 2, 4, 8 s by default), before the client gives up with status 1; "
    "each resend is told on standard error unless --quiet."
)


class NoReply(Exception):
    """Every try went unanswered."""

    def __init__(self, tries: int) -> None:
        super().__init__(tries)
        self.tries = tries


class EchoClientProtocol(ConnectedDatagramProtocol):
    """Send one message until it is answered, the tries run out or the server is unreachable.

    The first wait is timeout seconds and each later wait twice the one
    before, so a busy network gets room to recover instead of more traffic.
    Each resend is told to retrying(try_number, tries, wait), so that the
    user knows why nothing shows yet.
    """

    def __init__(
        self,
        clock: IReactorTime,
        message: bytes,
        timeout: float,
        retries: int,
        retrying: Callable[[int, int, float], None] = lambda try_number, tries, wait: None,
    ) -> None:
        self.clock = clock
        self.message = message
        self.timeout = timeout
        self.retries = retries
        self.retrying = retrying
        self.tries = 0
        self.reply: Deferred[tuple[bytes, tuple[str, int]]] = Deferred()
        self._waiting: IDelayedCall | None = None

    def start(self) -> Deferred[tuple[bytes, tuple[str, int]]]:
        """Start sending; the Deferred fires with the reply and its sender, or fails."""
        self._try()
        return self.reply

    def _try(self) -> None:
        wait = self.timeout * 2**self.tries
        self.tries += 1
        # Armed before the send, because a refusal can be reported inside it.
        self._waiting = self.clock.callLater(wait, self._timedOut)
        self.send(self.message)

    def _timedOut(self) -> None:
        self._waiting = None
        if self.tries <= self.retries:
            self.retrying(self.tries + 1, self.retries + 1, self.timeout * 2**self.tries)
            self._try()
        else:
            self.reply.errback(NoReply(self.tries))

    def _stopWaiting(self) -> bool:
        if self.reply.called:
            return False
        if self._waiting is not None:
            self._waiting.cancel()
            self._waiting = None
        return True

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        if self._stopWaiting():
            self.reply.callback((datagram, addr))

    def serverUnreachable(self, reason: str) -> None:
        if self._stopWaiting():
            self.reply.errback(ServerUnreachable(reason))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Describe labproto echo's arguments."""
    arguments.add_server_arguments(parser, ports.UDPECHO)
    parser.add_argument(
        "message",
        nargs="?",
        default=DEFAULT_MESSAGE,
        help="the message to send (default: the lab's UDP joke)",
    )
    parser.add_argument(
        "--timeout",
        type=arguments.positive_float,
        default=1.0,
        metavar="SECONDS",
        help="how long to wait for the first answer; each resend waits twice as long (default: 1)",
    )
    parser.add_argument(
        "--retries",
        type=arguments.count_from_zero,
        default=3,
        metavar="N",
        help="how many times to resend an unanswered message (default: 3)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="do not say on standard error when a message is sent again",
    )


def retry_notice(try_number: int, tries: int, wait: float) -> str:
    """The line that tells the user the message goes again: what would otherwise be silence."""
    return f"no reply yet, retrying in {wait:g} s ({try_number}/{tries})"


async def run(reactor: Any, options: argparse.Namespace, console: Console) -> None:
    """Send the message and print the server's answer; raise ClientError when there is none."""
    # As the shell passed it: an argument that is not UTF-8 is sent as it is.
    message = os.fsencode(options.message)
    if len(message) < SHORTEST_MESSAGE:
        raise ClientError(
            f"the message must be at least {SHORTEST_MESSAGE} bytes long: udpecho "
            "never answers with more bytes than it received",
            status=EXIT_USAGE,
        )
    if len(message) > MAX_UDP_PAYLOAD:
        raise ClientError(
            f"the message must be at most {MAX_UDP_PAYLOAD} bytes long: "
            "that is all one UDP datagram can carry",
            status=EXIT_USAGE,
        )
    server = describe_server(options.host, options.port)
    def retrying(try_number: int, tries: int, wait: float) -> None:
        if not options.quiet:
            console.complain(retry_notice(try_number, tries, wait))

    protocol = EchoClientProtocol(
        reactor, message, options.timeout, options.retries, retrying
    )
    await connect_udp(reactor, protocol, options.host, options.port)
    try:
        answer, sender = await protocol.start()
    except NoReply as e:
        raise ClientError(f"no reply from {server} after {e.tries} tries") from None
    except ServerUnreachable as e:
        raise ClientError(f"no server at {server} ({e.reason})") from None
    finally:
        await protocol.close()
    console.say(
        f"Client received MESSAGE= {printable(decode_text(answer))} "
        f"from ADDR= {format_address(*sender)}"
    )
