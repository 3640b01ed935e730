"""Opening a client's UDP socket towards one server."""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from twisted.internet import abstract, threads
from twisted.internet.defer import maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.protocol import DatagramProtocol

from labproto.clients.common import ClientError, describe_server


async def resolve_host(reactor: IReactorThreads, host: str) -> str:
    """Return an IP address for host, looking names up (IPv4 or IPv6) off the reactor thread."""
    if abstract.isIPAddress(host) or abstract.isIPv6Address(host):
        return host
    try:
        found = await threads.deferToThreadPool(
            reactor,
            reactor.getThreadPool(),
            socket.getaddrinfo,
            host,
            None,
            type=socket.SOCK_DGRAM,
        )
    except OSError as e:
        raise ClientError(f"cannot resolve host {host}: {e.strerror or e}") from None
    # IPv4 first: the servers listen on every IPv4 interface by default, and
    # "localhost" may name ::1 before 127.0.0.1.
    found.sort(key=lambda entry: entry[0] != socket.AF_INET)
    return str(found[0][4][0])


class ServerUnreachable(Exception):
    """The network said that the server cannot be reached (ICMP port or host unreachable)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _describe_errno(number: int) -> str:
    reason = os.strerror(number)
    return reason[:1].lower() + reason[1:]


class ConnectedDatagramProtocol(DatagramProtocol):
    """A client's datagram protocol on a connected socket, told when its server is unreachable.

    Twisted's select reactor reports an ICMP "port unreachable" through
    connectionRefused(), but its poll and epoll reactors close the port
    instead (Twisted issues #5377, #6467). Both paths end in
    serverUnreachable(), with the socket's own error as the reason.
    """

    _closing = False
    # Twisted sets transport to None before stopProtocol(), which still needs
    # the port's socket to read the error that closed it.
    _port: Any = None

    def startProtocol(self) -> None:
        self._port = self.transport

    def serverUnreachable(self, reason: str) -> None:
        """Called once the network has said the server cannot be reached."""
        raise NotImplementedError

    def send(self, datagram: bytes) -> None:
        """Send datagram to the server, turning a send error into serverUnreachable()."""
        assert self.transport is not None
        try:
            # No address: the socket is connected to the server.
            self.transport.write(datagram, None)
        except OSError as e:
            self.serverUnreachable(_describe_errno(e.errno) if e.errno else str(e))

    def connectionRefused(self) -> None:
        self.serverUnreachable(_describe_errno(errno.ECONNREFUSED))

    def stopProtocol(self) -> None:
        if self._closing:
            return
        pending = self._port.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        # No error: the reactor is shutting down (Ctrl-C), which is no failure.
        if pending:
            self.serverUnreachable(_describe_errno(pending))

    async def close(self) -> None:
        """Stop listening, on purpose: no serverUnreachable() for this."""
        self._closing = True
        if self.transport is not None:
            await maybeDeferred(self.transport.stopListening)


async def connect_udp(
    reactor: Any, protocol: ConnectedDatagramProtocol, host: str, port: int
) -> None:
    """Listen on a free local port for protocol and connect it to host:port.

    A connected UDP socket receives only the server's datagrams, and the
    kernel tells it when nothing listens at the server's port (ICMP port
    unreachable), which the protocol hears as serverUnreachable().
    """
    address = await resolve_host(reactor, host)
    local = "::" if abstract.isIPv6Address(address) else ""
    try:
        listening = reactor.listenUDP(0, protocol, interface=local)
    except CannotListenError as e:
        raise ClientError(
            f"cannot open a UDP socket towards {describe_server(host, port)}: {e.socketError}"
        ) from None
    try:
        listening.connect(address, port)
    except OSError as e:
        await protocol.close()
        raise ClientError(
            f"cannot reach {describe_server(host, port)}: {e.strerror or e}"
        ) from None
