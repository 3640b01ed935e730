"""A Twisted TCP connection on one end of a real socket pair, for tests of what reaches the wire."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor


@contextmanager
def connection_on_a_socket_pair(
    protocol: Protocol,
) -> Iterator[tuple[tcp.Connection, socket.socket, MemoryReactor]]:
    """protocol's connection, the plain socket of its peer, and the (memory) reactor it uses.

    Nothing runs the reactor: the test calls doWrite() where Twisted would.
    """
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    reactor = MemoryReactor()
    connection = tcp.Connection(ours, protocol, reactor)
    connection.connected = True
    try:
        yield connection, theirs, reactor
    finally:
        ours.close()
        theirs.close()


def received(peer: socket.socket) -> bytes:
    """Everything the peer's socket holds now."""
    chunks = []
    while True:
        try:
            chunks.append(peer.recv(1 << 20))
        except BlockingIOError:
            return b"".join(chunks)
