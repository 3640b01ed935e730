"""Fakes for unit tests: a datagram transport, a string-transport connection, and a reactor
whose shutdown a test starts."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.base import _ThreePhaseEvent
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.testing import (
    FakeDatagramTransport,
    MemoryReactorClock,
    StringTransport,
    StringTransportWithDisconnection,
)


class FakeSocket:
    """Stands in for a UDP socket: holds the pending error that SO_ERROR reads."""

    def __init__(self) -> None:
        self.pending_error = 0

    def getsockopt(self, level: int, option: int) -> int:
        assert (level, option) == (socket.SOL_SOCKET, socket.SO_ERROR)
        error, self.pending_error = self.pending_error, 0
        return error


@dataclass
class DatagramPort(FakeDatagramTransport):  # type: ignore[misc]
    """A fake listening UDP port: records writes, can be connected, can refuse like a real one."""

    host: IPv4Address = field(default_factory=lambda: IPv4Address("UDP", "0.0.0.0", 4321))
    connected_to: tuple[str, int] | None = None
    written: list[tuple[bytes, object]] = field(default_factory=list)
    socket: FakeSocket = field(default_factory=FakeSocket)
    send_error: OSError | None = None
    protocol: DatagramProtocol | None = None

    def attach(self, protocol: DatagramProtocol) -> DatagramPort:
        """Start protocol on this port, as listenUDP does."""
        self.protocol = protocol
        protocol.makeConnection(self)
        return self

    def write(self, packet: bytes, addr: object = FakeDatagramTransport.noAddr) -> None:
        if self.send_error is not None:
            raise self.send_error
        self.written.append((packet, addr))

    def getHost(self) -> IPv4Address:
        return self.host

    def connect(self, host: str, port: int) -> None:
        self.connected_to = (host, port)

    def stopListening(self) -> None:
        assert self.protocol is not None
        self.protocol.doStop()

    def lose_to_socket_error(self, number: int = errno.ECONNREFUSED) -> None:
        """Close the port as Twisted's epoll reactor does when an ICMP error arrives."""
        self.socket.pending_error = number
        self.stopListening()

    def sent(self) -> list[bytes]:
        """The datagrams written so far, without their addresses."""
        return [packet for packet, _ in self.written]


class ShutdownReactor(MemoryReactorClock):
    """A MemoryReactorClock whose shutdown triggers work as the real reactor's do."""

    def __init__(self) -> None:
        super().__init__()
        self.shutdown = _ThreePhaseEvent()

    def addSystemEventTrigger(
        self, phase: str, event_type: str, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any:
        assert event_type == "shutdown"
        return self.shutdown.addTrigger(phase, callable, *args, **kw)

    def removeSystemEventTrigger(self, trigger_id: Any) -> None:
        self.shutdown.removeTrigger(trigger_id)

    def begin_shutdown(self) -> None:
        """Start stopping, as Ctrl-C does: run the before-shutdown triggers."""
        self.shutdown.fireEvent()


def connected(
    factory: Factory, port: int, closes_at_once: bool, lenient: bool = False
) -> tuple[Protocol, StringTransport]:
    """A connection from 127.0.0.1:port to a protocol of factory, on a string transport.

    With closes_at_once, the transport reports the loss as soon as the
    protocol closes it; otherwise it stays open until the test says it is
    lost, as a real one does a moment after an abort (lenient: it then also
    takes writes after its close).
    """
    address = IPv4Address("TCP", "127.0.0.1", port)
    protocol = factory.buildProtocol(address)
    assert protocol is not None
    transport: StringTransport
    if closes_at_once:
        transport = StringTransportWithDisconnection(peerAddress=address)
        transport.protocol = protocol
    else:
        transport = StringTransport(peerAddress=address, lenient=lenient)
    protocol.makeConnection(transport)
    return protocol, transport
