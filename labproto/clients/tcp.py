"""A client's line connection to one TCP server: connect (TLS too), send lines, await answers."""

from __future__ import annotations

import argparse
import os
import re
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet import defer, error
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from labproto.clients.arguments import positive_float
from labproto.clients.common import ClientError, Interrupted, describe_server
from labproto.text import decode_text, printable

# Far more than any labproto server's line; a server sending more without a
# line end is not one.
MAX_SERVER_LINE = 64 * 1024
# Lines received and not yet asked for, past which the client stops reading.
MAX_UNREAD_LINES = 256
CONNECT_TIMEOUT = 10.0
# How long a client stopped by Ctrl-C waits to say farewell to its server.
FAREWELL_TIMEOUT = 2.0
# How much of another service's first line a client quotes, in characters.
QUOTED_LINE_LIMIT = 100

_T = TypeVar("_T")


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --tls and --ca-file, for a server listening on an ssl: endpoint."""
    parser.add_argument(
        "--tls",
        action="store_true",
        help="connect with TLS, to a server started with --port ssl:...; the server's "
        "certificate must be valid for --host",
    )
    parser.add_argument(
        "--ca-file",
        metavar="PEM",
        type=Path,
        help="trust the certificates in this PEM file (such as a lab's self-signed "
        "one) instead of the system's; implies --tls",
    )


def add_timeout_argument(parser: argparse.ArgumentParser) -> None:
    """Add --timeout: how long the client waits for each answer."""
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for each answer before giving up (default: 10)",
    )


class ServerMisbehaved(Exception):
    """The server broke the line protocol, and the client hung up on it."""


class LineClientProtocol(LineReceiver):
    """The client's end of a line connection: lines come in to a queue, go out with CRLF."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_SERVER_LINE

    def __init__(self) -> None:
        self._received: deque[str] = deque()
        self._waiting: defer.Deferred[str] | None = None
        self.lost: Failure | None = None
        self._lost_watchers: list[defer.Deferred[None]] = []

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        text = decode_text(line)
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            waiting.callback(text)
            return
        self._received.append(text)
        if len(self._received) >= MAX_UNREAD_LINES:
            # Stop reading a server that sends what nobody has asked for yet,
            # rather than hold all of it.
            self.pauseProducing()

    def lineLengthExceeded(self, line: bytes) -> None:
        transport: Any = self.transport
        self.lost = Failure(
            ServerMisbehaved(f"the server sent a line longer than {MAX_SERVER_LINE} bytes")
        )
        transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.lost is None:
            self.lost = reason
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            waiting.errback(self.lost)
        watchers, self._lost_watchers = self._lost_watchers, []
        for watcher in watchers:
            watcher.callback(None)

    def when_lost(self) -> defer.Deferred[None]:
        """A Deferred that fires once the connection is lost; cancel it to stop watching."""
        if self.lost is not None:
            return defer.succeed(None)

        def forget(cancelled: defer.Deferred[None]) -> None:
            self._lost_watchers.remove(cancelled)

        watcher: defer.Deferred[None] = defer.Deferred(forget)
        self._lost_watchers.append(watcher)
        return watcher

    def next_line(self) -> defer.Deferred[str]:
        """The next line from the server; fails with the reason if the connection is lost first."""
        if self._received:
            line = self._received.popleft()
            if self.paused and self.lost is None and len(self._received) < MAX_UNREAD_LINES // 2:
                self.resumeProducing()
            return defer.succeed(line)
        if self.lost is not None:
            return defer.fail(self.lost)

        def forget(cancelled: defer.Deferred[str]) -> None:
            self._waiting = None

        self._waiting = defer.Deferred(forget)
        return self._waiting

    def send(self, text: str) -> None:
        """Send text as one line."""
        assert self.transport is not None
        self.transport.write(text.encode("utf-8") + b"\r\n")


def _openssl_reasons(exception: BaseException) -> str:
    """The reasons that a pyOpenSSL error carries, as a list of (library, function, reason)."""
    errors = exception.args[0] if exception.args else []
    if not isinstance(errors, list):
        return ""
    return "; ".join(str(entry[-1]) for entry in errors if isinstance(entry, tuple))


def _why_lost(reason: Failure, host: str) -> str:
    if reason.type.__module__.startswith("service_identity"):
        # The certificate is trusted but names other hosts than the one asked for.
        return f"TLS failed: the server's certificate is not valid for {printable(host)}"
    if reason.type.__module__.startswith("OpenSSL"):
        return f"TLS failed: {_openssl_reasons(reason.value) or reason.getErrorMessage()}"
    if reason.check(error.ConnectionDone):
        return "the server closed the connection"
    if reason.check(error.ConnectionLost):
        return "the connection was cut off"
    return reason.getErrorMessage()


class _Failed:
    """A failure carried as a result, through what would otherwise ignore it."""

    def __init__(self, failure: Failure) -> None:
        self.failure = failure


class ServerConnection:
    """A connected server, with the answers and failures a client's user should read.

    Every way the server can fail the client (refusing the connection, not
    answering in time, hanging up) ends in a ClientError, which the
    labproto command prints as one line with exit status 1. When the user
    stops the client (Ctrl-C), the connection says farewell, a line such as
    ``q`` that ends the session politely, and hangs up; what waited on the
    server then ends in Interrupted, which is no failure.
    """

    def __init__(
        self,
        reactor: Any,
        protocol: LineClientProtocol,
        host: str,
        port: int,
        timeout: float,
        farewell: str | None = None,
    ) -> None:
        self.reactor = reactor
        self.protocol = protocol
        self.host = host
        self.where = describe_server(host, port)
        self.timeout = timeout
        self.farewell = farewell
        self.interrupted = False
        self._on_shutdown: Any = reactor.addSystemEventTrigger(
            "before", "shutdown", self._hang_up
        )

    def _hang_up(self) -> defer.Deferred[None] | None:
        # The reactor is stopping with the connection still open: the user
        # pressed Ctrl-C, or the client's work is done without close().
        self.interrupted = True
        self._on_shutdown = None
        transport: Any = self.protocol.transport
        if self.protocol.lost is not None or transport is None:
            return None
        if self.farewell is not None:
            self.protocol.send(self.farewell)
        transport.loseConnection()
        gone = self.protocol.when_lost()
        gone.addTimeout(FAREWELL_TIMEOUT, self.reactor)
        gone.addErrback(lambda failure: None)  # Shut down anyway.
        return gone

    def send(self, text: str) -> None:
        """Send text to the server as one line."""
        if self.protocol.lost is not None:
            raise self._connection_lost()
        self.protocol.send(text)

    async def receive(self, *, wait_forever: bool = False) -> str:
        """The server's next line, or ClientError if it does not come within the timeout.

        With wait_forever, only a lost connection ends the wait: the next
        line of a chat room may come in a second or in an hour.
        """
        answer = self.protocol.next_line()
        if not wait_forever:
            answer.addTimeout(self.timeout, self.reactor)
        try:
            return await answer
        except defer.TimeoutError:
            raise ClientError(
                f"no answer from {self.where} within {self.timeout:g} s"
            ) from None
        except defer.CancelledError:
            raise
        except Exception:
            raise self._connection_lost() from None

    async def receive_first(self, service: str, expected: Callable[[str], bool]) -> str:
        """The server's first line, or ClientError when expected(line) says no service sends it.

        A client given another service's port (``labproto chat --port
        43391``, labcalc's) then says so at once, and fails, rather than
        showing the other service's lines as its own and waiting in vain.
        """
        line = await self.receive()
        if not expected(line):
            shown = printable(line)
            if len(shown) > QUOTED_LINE_LIMIT:
                shown = shown[:QUOTED_LINE_LIMIT] + "..."
            raise ClientError(f"{self.where} is not a {service} server (it said: {shown})")
        return line

    async def while_connected(self, waiting: defer.Deferred[_T]) -> _T:
        """The result of waiting, or ClientError if the connection is lost first.

        For what a client waits on besides the server, such as its user's
        next line: a server that hangs up meanwhile is reported at once.
        """
        # race() fires with the first success and ignores failures, so a
        # failure of waiting travels to here as a result, to be raised.
        contenders: list[defer.Deferred[Any]] = [
            waiting.addErrback(_Failed),
            self.protocol.when_lost(),
        ]
        winner, result = await defer.race(contenders)
        if winner == 1:
            raise self._connection_lost()
        if isinstance(result, _Failed):
            result.failure.raiseException()
        return result

    def _connection_lost(self) -> Exception:
        assert self.protocol.lost is not None
        if self.interrupted:
            return Interrupted()
        why = _why_lost(self.protocol.lost, self.host)
        return ClientError(f"lost the connection to {self.where}: {why}")

    async def close(self) -> None:
        """Hang up once whatever was sent has been written, and wait for the hang-up."""
        if self._on_shutdown is not None:
            self.reactor.removeSystemEventTrigger(self._on_shutdown)
            self._on_shutdown = None
        transport: Any = self.protocol.transport
        if self.protocol.lost is None and transport is not None:
            transport.loseConnection()
        closed = self.protocol.when_lost()
        closed.addTimeout(self.timeout, self.reactor)
        try:
            await closed
        except defer.TimeoutError:
            # A server that never lets go must not keep the client waiting.
            if transport is not None:
                transport.abortConnection()


def client_endpoint(reactor: Any, options: argparse.Namespace) -> IStreamClientEndpoint:
    """The endpoint that options' --host, --port, --tls and --ca-file describe."""
    endpoint: IStreamClientEndpoint = HostnameEndpoint(
        reactor, options.host, options.port, timeout=CONNECT_TIMEOUT
    )
    if not (options.tls or options.ca_file):
        return endpoint
    from twisted.internet import ssl

    trust: Any = None
    if options.ca_file is not None:
        trust = ssl.trustRootFromCertificates(_certificates_in(options.ca_file))
    try:
        tls = ssl.optionsForClientTLS(options.host, trustRoot=trust)
    except ValueError:
        # The IDNA encoding of a name that is no host name (lab_server, "."),
        # which a certificate could never name.
        raise ClientError(
            f"cannot resolve host {printable(options.host)}: not a valid host name"
        ) from None
    return wrapClientTLS(tls, endpoint)


_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL
)


def _certificates_in(path: Path) -> list[Any]:
    """Every certificate in a PEM file, or ClientError (a usage error) saying why there is none."""
    from twisted.internet import ssl

    try:
        blocks = _PEM_CERTIFICATE.findall(path.read_bytes())
        if not blocks:
            raise ValueError("no certificate in it")
        return [ssl.Certificate.loadPEM(block) for block in blocks]
    except OSError as e:
        reason = e.strerror or str(e)
    except Exception as e:  # ValueError, or OpenSSL's error for a broken block
        reason = _openssl_reasons(e) or str(e)
    raise ClientError(f"cannot read --ca-file {path}: {reason}", status=2)


def connect_error_reason(e: error.ConnectError) -> str:
    """The system's words for why a connection failed, as Twisted's reactor reports it.

    The reactor gives the errno as osError and its strerror text as the
    first argument (twisted.internet.error.getConnectError).
    """
    if e.args and e.args[0]:
        return str(e.args[0])
    if isinstance(e.osError, int):
        return os.strerror(e.osError)
    return str(e.osError or e)


async def connect_lines(
    reactor: Any, options: argparse.Namespace, farewell: str | None = None
) -> ServerConnection:
    """Connect to the server of options (--host, --port, --tls, --ca-file, --timeout).

    farewell is the line to send if the user stops the client (Ctrl-C).
    """
    where = describe_server(options.host, options.port)
    endpoint = client_endpoint(reactor, options)
    try:
        protocol = await connectProtocol(endpoint, LineClientProtocol())
    except ValueError:
        # Twisted refuses to look up a name that is not a valid host name,
        # such as one with an underscore or an empty label.
        raise ClientError(
            f"cannot resolve host {printable(options.host)}: not a valid host name"
        ) from None
    except error.ConnectionRefusedError:
        raise ClientError(f"no server at {where} (connection refused)") from None
    except error.DNSLookupError:
        raise ClientError(f"cannot resolve host {printable(options.host)}") from None
    except error.TimeoutError:
        raise ClientError(f"no server at {where} (timed out connecting)") from None
    except error.ConnectError as e:
        raise ClientError(f"cannot connect to {where}: {connect_error_reason(e)}") from None
    return ServerConnection(
        reactor, protocol, options.host, options.port, options.timeout, farewell
    )
