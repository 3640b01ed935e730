"""The clients against the servers in one process, on real loopback sockets and the real reactor.

These run the code paths that only a real kernel exercises: the connected
socket, and the ICMP "port unreachable" that the epoll reactor turns into a
closed port.
"""

from __future__ import annotations

import re

import pytest_twisted
from twisted.internet import reactor

from labproto.clients.echo import EchoClientProtocol
from labproto.clients.time import TimeClientProtocol
from labproto.clients.udp import ServerUnreachable, connect_udp
from labproto.udpecho.protocol import EchoServerProtocol
from labproto.udptime.protocol import Calendar, TimeServerProtocol


@pytest_twisted.ensureDeferred
async def test_echo_round_trip() -> None:
    listening = reactor.listenUDP(0, EchoServerProtocol(), interface="127.0.0.1")
    port = listening.getHost().port
    client = EchoClientProtocol(reactor, b"hello", 5.0, 0)
    try:
        await connect_udp(reactor, client, "127.0.0.1", port)
        assert await client.start() == (b"Ok", ("127.0.0.1", port))
    finally:
        await client.close()
        await listening.stopListening()


@pytest_twisted.ensureDeferred
async def test_time_round_trip_with_token() -> None:
    server = TimeServerProtocol(Calendar(time_format="%H:%M", utc=True), reactor)
    listening = reactor.listenUDP(0, server, interface="127.0.0.1")
    client = TimeClientProtocol(reactor)
    try:
        await connect_udp(reactor, client, "localhost", listening.getHost().port)
        answer = await client.ask("SEND_TIME", "42", 5.0)
        assert answer is not None and re.fullmatch(r"\d\d:\d\d", answer.text)
    finally:
        await client.close()
        await listening.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_closed_port_is_reported_as_refused_by_the_real_reactor(
    closed_port: int,
) -> None:
    client = EchoClientProtocol(reactor, b"hello", 5.0, 3)
    await connect_udp(reactor, client, "127.0.0.1", closed_port)
    try:
        await client.start()
    except ServerUnreachable as e:
        assert e.reason == "connection refused"
    else:
        raise AssertionError("no refusal")
    finally:
        await client.close()
