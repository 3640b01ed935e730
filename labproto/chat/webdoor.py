"""The web port's HTTP side: how many requests it holds, for how long, and HEAD.

Every connection to --web starts as HTTP, and an unfinished request holds
an open file for as long as it lasts. Twisted's idle timeout starts again
with every byte, so a peer sending a header byte every few seconds holds
its connection for ever, and a thousand such peers take every file the
process may open: the TCP door of the chat, which shares them, then
accepts nobody. Here each request gets a deadline for all of it, and the
connections still speaking HTTP are counted, in all and per address; past
either count a new connection is answered 503 and closed at once. A
connection that becomes a WebSocket leaves the count: the room holds it
to its own limits (--max-users) from then on.

Apart from labproto.chat.web so that the WebSocket resource, which that
module imports, can use head_answer too.
"""

from __future__ import annotations

import ipaddress
import resource
from collections import Counter
from typing import Any

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from labproto.lines import describe_peer, peer_host

log = Logger()

# Seconds from a connection's start, or from the end of its last answer,
# to the end of its next request, head and body: a browser sends a request
# in one go, and a connection kept alive between requests is closed if it
# sends none by then.
REQUEST_DEADLINE = 10.0
# HTTP connections (requests on their way, answers going out, connections
# kept alive between requests) the web port holds at once, from all
# addresses, and from one. A browser opens at most six to a site at once,
# so one address holds a few browsers behind one router too.
HTTP_CONNECTIONS = 512
HTTP_CONNECTIONS_PER_ADDRESS = 32
# Whatever HTTP_CONNECTIONS says, they hold at most this share of the
# process's open files (its soft limit): the rest is the chat users'.
OPEN_FILES_SHARE = 4
# What a connection past a limit is answered.
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 47\r\n"
    b"Retry-After: 10\r\n"
    b"Connection: close\r\n"
    b"\r\n"
    b"labchat's web port is busy: try again shortly.\n"
)


def head_answer(request: Request, body: bytes) -> bytes:
    """Answer a HEAD request whose GET would have answered body: its length, and no body.

    Twisted sends the same for a resource that returns a body to HEAD, but
    logs a warning that it ate it for every such request (``curl -I``).
    """
    request.setHeader("Content-Length", b"%d" % len(body))
    return b""


def open_file_limit() -> int:
    """The process's soft limit on open files, now (labchat raises it as it starts)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class Busy(Protocol):
    """A connection past the web port's limits: told 503, and closed."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(BUSY)
        self.transport.loseConnection()


class WebConnection(HTTPChannel):
    """An HTTP connection of the web port, closed if a request is not whole in time."""

    site: WebSite
    _deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._start_deadline()

    def allContentReceived(self) -> None:
        self._stop_deadline()
        super().allContentReceived()
        if self.transport is None:
            # The request took the connection over: a WebSocket (see
            # autobahn's WebSocketResource), which the room limits now.
            self.site.left(self)

    def requestDone(self, request: Request) -> None:
        # Before the next request, which may be waiting in the buffer and
        # be whole at once: its end stops the deadline.
        if self.persistent:
            self._start_deadline()
        super().requestDone(request)

    def connectionLost(self, reason: Any = None) -> None:
        self._stop_deadline()
        self.site.left(self)
        super().connectionLost(reason)

    def _start_deadline(self) -> None:
        self._stop_deadline()
        self._deadline = self.callLater(REQUEST_DEADLINE, self._too_slow)

    def _stop_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        # Twisted's own end of an idle connection: it logs the peer, closes,
        # and aborts the connection if the peer does not let it close.
        self.timeoutConnection()


class WebSite(Site):
    """The web port's Site: its HTTP connections limited in number, and each request in time."""

    protocol = WebConnection  # type: ignore[assignment]

    def __init__(self, root: IResource, clock: IReactorTime) -> None:
        super().__init__(root, reactor=clock)
        self.clock = clock
        self._hosts: Counter[str] = Counter()
        # Each HTTP connection, and the address it is counted under (None: not by address).
        self._connections: dict[WebConnection, str | None] = {}
        # Refusals since the last one logged: under attack, one line for many.
        self._refused = 0
        self._next_report = 0.0

    def http_connections(self) -> int:
        """How many HTTP connections the port holds now."""
        return len(self._connections)

    def http_connections_limit(self) -> int:
        """How many HTTP connections the port holds at once now."""
        return min(HTTP_CONNECTIONS, open_file_limit() // OPEN_FILES_SHARE)

    def buildProtocol(self, addr: IAddress | None) -> Any:
        # A UNIX socket's peers have no address to count by, and this
        # computer's own (a benchmark logs hundreds in at once from there)
        # are not counted by address either: the count in all holds them.
        host = peer_host(addr) if addr is not None else None
        if host is not None and ipaddress.ip_address(host).is_loopback:
            host = None
        if len(self._connections) >= self.http_connections_limit():
            return self._refuse(addr, "the web port holds all the requests it may")
        if host is not None and self._hosts[host] >= HTTP_CONNECTIONS_PER_ADDRESS:
            return self._refuse(addr, "its address has all the requests in progress it may")
        channel = super().buildProtocol(addr)
        self._connections[channel] = host
        if host is not None:
            self._hosts[host] += 1
        return channel

    def left(self, channel: WebConnection) -> None:
        """channel is no longer an HTTP connection of this port: it ended or became a WebSocket."""
        if channel not in self._connections:
            return
        host = self._connections.pop(channel)
        if host is not None:
            self._hosts[host] -= 1
            if not self._hosts[host]:
                del self._hosts[host]

    def _refuse(self, addr: IAddress | None, why: str) -> Busy:
        self._refused += 1
        now = self.clock.seconds()
        if now >= self._next_report:
            log.warn(
                "Refused a web connection from {peer}: {why}"
                " ({count} refused since the last such line)",
                peer=describe_peer(addr) if addr is not None else "(unknown)",
                why=why,
                count=self._refused,
            )
            self._refused = 0
            self._next_report = now + REQUEST_DEADLINE
        return Busy()
