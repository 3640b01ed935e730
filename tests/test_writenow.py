"""write_now() on real sockets: at once when nothing waits, through Twisted's buffer otherwise."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from support.sockets import connection_on_a_socket_pair, received
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor, StringTransport

from labproto.writenow import can_write_now, write_now


@pytest.fixture
def pair() -> Iterator[tuple[tcp.Connection, socket.socket, MemoryReactor]]:
    """A Twisted TCP connection on one end of a socket pair, the plain socket on the other."""
    with connection_on_a_socket_pair(Protocol()) as pair:
        yield pair


def test_a_connection_with_nothing_waiting_sends_at_once_without_the_reactor(pair) -> None:
    connection, peer, reactor = pair
    write_now(connection, b"<alice> hello\r\n")
    assert received(peer) == b"<alice> hello\r\n"
    assert reactor.getWriters() == []


def test_bytes_already_waiting_in_twisteds_buffer_go_first(pair) -> None:
    connection, peer, reactor = pair
    connection.write(b"one\r\n")
    write_now(connection, b"two\r\n")
    assert received(peer) == b""
    assert reactor.getWriters() == [connection]
    connection.doWrite()
    assert received(peer) == b"one\r\ntwo\r\n"


def test_what_a_full_socket_does_not_take_waits_in_twisteds_buffer_in_order(pair) -> None:
    connection, peer, _ = pair
    big = bytes(range(256)) * 8192
    write_now(connection, big)
    write_now(connection, b"after\r\n")
    assert connection.dataBuffer or connection._tempDataBuffer
    got = received(peer)
    while len(got) < len(big) + 7:
        connection.doWrite()
        got += received(peer)
    assert got == big + b"after\r\n"


def test_a_closing_connection_gets_a_plain_write(pair) -> None:
    connection, peer, _ = pair
    connection.disconnecting = True
    write_now(connection, b"late\r\n")
    assert received(peer) == b""
    assert connection._tempDataBuffer == [b"late\r\n"]


def test_a_failed_connection_leaves_the_error_to_twisteds_own_write(pair) -> None:
    connection, peer, reactor = pair
    peer.close()
    write_now(connection, b"to nobody\r\n")
    assert connection._tempDataBuffer == [b"to nobody\r\n"]
    assert reactor.getWriters() == [connection]


def test_only_a_plain_tcp_connection_can_be_written_at_once(pair) -> None:
    connection, _, _ = pair
    assert can_write_now(connection)
    assert not can_write_now(StringTransport())
    connection.TLS = True
    assert not can_write_now(connection)


def test_an_aborted_connection_sends_nothing_more(pair) -> None:
    connection, peer, _ = pair
    connection._aborting = True
    write_now(connection, b"after the abort\r\n")
    assert received(peer) == b""
