"""The web port's HTTP connections on string transports and a task.Clock: deadlines and counts."""

from __future__ import annotations

import pytest
from support.websocket import handshake
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from labproto.chat import webdoor
from labproto.chat.limits import UserLimits
from labproto.chat.metrics import room_registry
from labproto.chat.origins import OriginPolicy
from labproto.chat.room import ChatRoom
from labproto.chat.web import web_site
from labproto.chat.webdoor import HTTP_CONNECTIONS_PER_ADDRESS, REQUEST_DEADLINE
from labproto.chat.websocket import ChatWebSocketFactory

GET = b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n"


class Port:
    """A web site on a Clock, and the connections made to it."""

    def __init__(self) -> None:
        self.clock = Clock()
        room = ChatRoom(self.clock)
        websockets = ChatWebSocketFactory(room, UserLimits(), self.clock, OriginPolicy())
        self.site = web_site(websockets, room_registry(room), self.clock)
        self._ports = iter(range(5000, 65000))

    def connect(self, host: str = "10.0.0.1") -> StringTransport:
        """A new connection from host, made; its transport."""
        address = IPv4Address("TCP", host, next(self._ports))
        protocol = self.site.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        transport.protocol = protocol
        return transport


@pytest.fixture
def port() -> Port:
    return Port()


def test_a_request_sent_a_byte_a_second_is_cut_at_the_deadline(port: Port) -> None:
    transport = port.connect()
    for byte in b"GET / HTTP/1.1\r\nHost: lab\r\nX-Slow: 1234567"[: int(REQUEST_DEADLINE) - 1]:
        transport.protocol.dataReceived(bytes((byte,)))
        port.clock.advance(1)
    assert not transport.disconnecting
    port.clock.advance(1)
    assert transport.disconnecting


def test_a_whole_request_is_answered_and_not_cut(port: Port) -> None:
    transport = port.connect()
    port.clock.advance(REQUEST_DEADLINE - 1)
    transport.protocol.dataReceived(GET)
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert transport.value().rstrip().endswith(b"</html>")
    port.clock.advance(REQUEST_DEADLINE - 1)
    assert not transport.disconnecting


def test_a_connection_kept_alive_gets_a_new_deadline_for_its_next_request(port: Port) -> None:
    transport = port.connect()
    transport.protocol.dataReceived(GET)
    port.clock.advance(REQUEST_DEADLINE - 1)
    transport.protocol.dataReceived(GET)
    assert transport.value().count(b"HTTP/1.1 200 ") == 2
    port.clock.advance(REQUEST_DEADLINE - 1)
    assert not transport.disconnecting
    port.clock.advance(1)
    assert transport.disconnecting


def test_a_websocket_is_not_cut_by_the_deadline_and_leaves_the_count(port: Port) -> None:
    transport = port.connect()
    request, _ = handshake(host="lab")
    transport.protocol.dataReceived(request)
    assert transport.value().startswith(b"HTTP/1.1 101 ")
    assert port.site.http_connections() == 0
    port.clock.advance(3 * REQUEST_DEADLINE)
    assert not transport.disconnecting


def test_past_the_limit_per_address_a_connection_is_told_503_and_closed(port: Port, logged) -> None:
    held = [port.connect() for _ in range(HTTP_CONNECTIONS_PER_ADDRESS)]
    busy = port.connect()
    assert busy.value().startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert busy.disconnecting
    assert [line for line in logged.lines() if line.startswith("Refused")] == [
        "Refused a web connection from ('10.0.0.1', 5032): its address has all the requests"
        " in progress it may (1 refused since the last such line)"
    ]
    # Another address is let in; and this one again once one of its own has gone.
    assert not port.connect("10.0.0.2").disconnecting
    held[0].protocol.connectionLost(None)
    assert not port.connect().disconnecting


def test_this_computers_own_connections_are_not_counted_by_address(port: Port) -> None:
    for _ in range(HTTP_CONNECTIONS_PER_ADDRESS + 1):
        assert not port.connect("127.0.0.1").disconnecting


def test_past_the_limit_in_all_a_connection_is_told_503(
    port: Port, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webdoor, "HTTP_CONNECTIONS", 3)
    for number in range(3):
        assert not port.connect(f"10.0.0.{number}").disconnecting
    assert port.connect("10.0.0.9").value().startswith(b"HTTP/1.1 503 ")


def test_the_limit_in_all_is_at_most_a_quarter_of_the_open_files(
    port: Port, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webdoor, "open_file_limit", lambda: 256)
    assert port.site.http_connections_limit() == 64


def test_refusals_under_attack_are_logged_once_per_deadline(port: Port, logged) -> None:
    for _ in range(HTTP_CONNECTIONS_PER_ADDRESS + 100):
        port.connect()
    port.clock.advance(REQUEST_DEADLINE)
    port.connect()
    refusals = [line for line in logged.lines() if line.startswith("Refused")]
    assert len(refusals) == 2
    assert refusals[1].endswith("(100 refused since the last such line)")
