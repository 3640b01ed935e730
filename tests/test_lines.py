"""Line framing shared by the TCP services: LF or CRLF in, CRLF out, and a bounded line length."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.sockets import connection_on_a_socket_pair, received
from twisted.internet import tcp
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from labproto.lines import (
    LINES_PER_TURN,
    LineProtocol,
    LineServerFactory,
    describe_peer,
    line_too_long,
    peer_host,
)

PEER = IPv4Address("TCP", "127.0.0.1", 5000)
MAX_LINE = 16
TOO_LONG = b"ERROR line too long (max 16 bytes)\r\n"


class Recorder(LineProtocol):
    """A line service that answers nothing and records every line it receives."""

    def __init__(self, max_line: int) -> None:
        super().__init__(max_line)
        self.texts: list[str] = []

    def textReceived(self, text: str) -> None:
        self.texts.append(text)


class Echo(LineProtocol):
    """A line service that answers each line with its repr, so the transcript shows the order."""

    def textReceived(self, text: str) -> None:
        self.send_text(f"got {text!r}")


class RecorderFactory(LineServerFactory):
    protocol = Recorder


class EchoFactory(LineServerFactory):
    protocol = Echo


def connected(max_line: int = MAX_LINE) -> tuple[Recorder, StringTransport]:
    protocol = RecorderFactory(max_line).buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    return protocol, transport


def echoing(max_line: int = MAX_LINE) -> tuple[Echo, StringTransport]:
    protocol = EchoFactory(max_line).buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    return protocol, transport


def feed_bytewise(protocol: LineProtocol, data: bytes) -> None:
    for i in range(len(data)):
        protocol.dataReceived(data[i : i + 1])


def test_the_factory_gives_each_protocol_its_max_line_and_itself() -> None:
    factory = RecorderFactory(2048)
    protocol = factory.buildProtocol(PEER)
    assert (protocol.max_line, protocol.factory) == (2048, factory)


@pytest.mark.parametrize("line", [b"hello\n", b"hello\r\n"])
def test_lf_and_crlf_endings_give_the_same_text(line: bytes) -> None:
    protocol, _ = connected()
    protocol.dataReceived(line)
    assert protocol.texts == ["hello"]


def test_only_one_cr_before_the_lf_is_dropped() -> None:
    protocol, _ = connected()
    protocol.dataReceived(b"hello\r\r\n")
    assert protocol.texts == ["hello\r"]


def test_a_cr_inside_a_line_is_part_of_it() -> None:
    protocol, _ = connected()
    protocol.dataReceived(b"a\rb\n")
    assert protocol.texts == ["a\rb"]


def test_an_empty_line_is_received_as_empty_text() -> None:
    protocol, _ = connected()
    protocol.dataReceived(b"\r\n\n")
    assert protocol.texts == ["", ""]


def test_several_lines_in_one_chunk_are_received_in_order() -> None:
    protocol, _ = connected()
    protocol.dataReceived(b"one\ntwo\r\nthree\n")
    assert protocol.texts == ["one", "two", "three"]


def test_a_line_is_not_received_before_its_lf() -> None:
    protocol, _ = connected()
    protocol.dataReceived(b"hello\r")
    assert protocol.texts == []


def test_lines_fed_byte_by_byte_are_received_whole() -> None:
    protocol, _ = connected()
    feed_bytewise(protocol, b"one\r\ntwo\nthree\r\n")
    assert protocol.texts == ["one", "two", "three"]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_a_line_of_exactly_max_line_bytes_is_accepted(ending: bytes) -> None:
    protocol, transport = connected()
    protocol.dataReceived(b"x" * MAX_LINE + ending)
    assert (protocol.texts, transport.value()) == (["x" * MAX_LINE], b"")


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_a_line_of_exactly_max_line_bytes_fed_byte_by_byte_is_accepted(ending: bytes) -> None:
    protocol, transport = connected()
    feed_bytewise(protocol, b"x" * MAX_LINE + ending)
    assert (protocol.texts, transport.value()) == (["x" * MAX_LINE], b"")


def test_max_line_counts_bytes_not_characters() -> None:
    protocol, transport = connected()
    protocol.dataReceived("é".encode() * 8 + b"\n" + "é".encode() * 8 + b"a\n")
    assert (protocol.texts, transport.value()) == (["é" * 8], TOO_LONG)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_a_line_one_byte_too_long_is_refused_with_the_exact_error_line(ending: bytes) -> None:
    protocol, transport = connected()
    protocol.dataReceived(b"x" * (MAX_LINE + 1) + ending)
    assert (protocol.texts, transport.value()) == ([], TOO_LONG)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_a_line_one_byte_too_long_fed_byte_by_byte_is_refused_once(ending: bytes) -> None:
    protocol, transport = connected()
    feed_bytewise(protocol, b"x" * (MAX_LINE + 1) + ending)
    assert (protocol.texts, transport.value()) == ([], TOO_LONG)


def test_the_error_line_names_the_configured_limit() -> None:
    assert line_too_long(1024) == "ERROR line too long (max 1024 bytes)"


def test_a_refused_line_keeps_the_connection_open() -> None:
    protocol, transport = connected()
    protocol.dataReceived(b"x" * 100 + b"\n")
    assert not transport.disconnecting


def test_the_line_after_a_too_long_line_in_the_same_chunk_is_received() -> None:
    protocol, transport = connected()
    protocol.dataReceived(b"x" * 100 + b"\r\nnext\r\nand more\n")
    assert (protocol.texts, transport.value()) == (["next", "and more"], TOO_LONG)


def test_the_line_after_a_too_long_line_fed_byte_by_byte_is_received() -> None:
    protocol, transport = connected()
    feed_bytewise(protocol, b"x" * 100 + b"\r\nnext\r\n")
    assert (protocol.texts, transport.value()) == (["next"], TOO_LONG)


def test_the_lf_ending_a_discarded_line_may_end_its_chunk() -> None:
    protocol, transport = connected()
    for chunk in (b"x" * 100, b"x" * 100 + b"\n", b"next\n"):
        protocol.dataReceived(chunk)
    assert (protocol.texts, transport.value()) == (["next"], TOO_LONG)


def test_each_too_long_line_gets_its_own_error_line() -> None:
    protocol, transport = connected()
    protocol.dataReceived(b"x" * 100 + b"\nok\n" + b"y" * 17 + b"\n")
    assert (protocol.texts, transport.value()) == (["ok"], TOO_LONG * 2)


def test_ten_megabytes_in_64k_chunks_get_one_error_and_bounded_memory() -> None:
    protocol, transport = connected(max_line=1024)
    chunk = 64 * 1024
    data = b"z" * (10 * 1024 * 1024) + b"\nnext\n"
    buffered = []
    for start in range(0, len(data), chunk):
        protocol.dataReceived(data[start : start + chunk])
        buffered.append(protocol.held_bytes)
    assert transport.value() == b"ERROR line too long (max 1024 bytes)\r\n"
    assert protocol.texts == ["next"]
    assert max(buffered) <= protocol.max_line + 1


def test_invalid_utf8_becomes_the_replacement_character() -> None:
    protocol, _ = connected()
    protocol.dataReceived(b"caf\xc3\n\xff\xfeok\n")
    assert protocol.texts == ["caf\ufffd", "\ufffd\ufffdok"]


def test_nul_and_esc_reach_the_service_as_characters() -> None:
    protocol, _ = connected()
    protocol.dataReceived(b"a\x00b\x1b[2J\n")
    assert protocol.texts == ["a\x00b\x1b[2J"]


def test_the_server_ends_its_lines_with_crlf() -> None:
    protocol, transport = connected()
    protocol.send_text("héllo")
    assert transport.value() == b"h\xc3\xa9llo\r\n"


def test_a_half_close_closes_the_connection_after_the_answers_are_written() -> None:
    protocol, transport = echoing()
    protocol.dataReceived(b"last words\n")
    protocol.readConnectionLost()
    assert transport.value() == b"got 'last words'\r\n"
    assert transport.disconnecting


def test_an_unfinished_line_is_dropped_on_half_close() -> None:
    protocol, transport = connected()
    protocol.dataReceived(b"no line end")
    protocol.readConnectionLost()
    assert (protocol.texts, transport.disconnecting) == ([], True)


def test_a_peer_that_stops_reading_is_disconnected() -> None:
    protocol, transport = connected()
    protocol.writeConnectionLost()
    assert transport.disconnecting


def test_the_connection_may_pause_the_protocol_once_the_peer_has_spoken() -> None:
    protocol, transport = echoing()
    assert transport.producer is None  # Over TLS the handshake is still going on.
    protocol.dataReceived(b"hello\n")
    assert (transport.producer, transport.streaming) == (protocol, True)


def test_while_its_answers_wait_unsent_the_protocol_stops_reading() -> None:
    protocol, transport = echoing()
    protocol.dataReceived(b"one\n")
    protocol.pauseProducing()  # What the connection does when its send buffer fills.
    protocol.dataReceived(b"two\nthree\n")
    assert transport.producerState == "paused"
    assert transport.value() == b"got 'one'\r\n"


def test_the_lines_held_while_paused_are_answered_on_resuming() -> None:
    protocol, transport = echoing()
    protocol.dataReceived(b"one\n")
    protocol.pauseProducing()
    protocol.dataReceived(b"two\n" + b"x" * 40 + b"\nthree\n")
    protocol.resumeProducing()
    assert transport.producerState == "producing"
    assert transport.value() == (
        b"got 'one'\r\ngot 'two'\r\n" + TOO_LONG + b"got 'three'\r\n"
    )


def test_hanging_up_lets_go_of_the_connection_before_closing_it() -> None:
    # Twisted's TLS closes a connection only once it has no producer.
    protocol, transport = echoing()
    protocol.dataReceived(b"bye\n")
    protocol.hang_up()
    assert (transport.producer, transport.disconnecting) == (None, True)


def test_an_ipv4_peer_is_described_as_the_python_tuple() -> None:
    assert describe_peer(IPv4Address("TCP", "127.0.0.1", 5000)) == "('127.0.0.1', 5000)"


def test_an_ipv6_peer_is_described_as_the_python_tuple() -> None:
    assert describe_peer(IPv6Address("TCP", "::1", 5000)) == "('::1', 5000)"


def test_an_unnamed_unix_peer_is_described_as_a_local_peer() -> None:
    assert describe_peer(UNIXAddress(None)) == "'local peer'"


def test_a_named_unix_peer_is_described_by_its_path_as_text() -> None:
    # Twisted keeps a UNIX address's name as bytes; a Python server prints the
    # path it got from accept() as a str.
    assert describe_peer(UNIXAddress("/tmp/client.sock")) == "'/tmp/client.sock'"


def test_the_protocol_describes_its_transports_peer() -> None:
    protocol, _ = connected()
    assert protocol.peer() == "('127.0.0.1', 5000)"


def expected_transcript(data: bytes, max_line: int) -> bytes:
    """What Echo should send for data, a whole number of lines: the framing rules, spelled out."""
    sent = []
    for line in data.split(b"\n")[:-1]:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > max_line:
            sent.append(line_too_long(max_line).encode() + b"\r\n")
        else:
            sent.append(f"got {line.decode('utf-8', 'replace')!r}".encode() + b"\r\n")
    return b"".join(sent)


LINE_BYTES = st.lists(st.sampled_from([b"a", b"\r", b"\xc3", b"\xa9", b"\x00"]), max_size=30)


@given(
    lines=st.lists(LINE_BYTES.map(b"".join), max_size=8),
    max_line=st.integers(min_value=1, max_value=12),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=20),
)
def test_any_chunking_of_any_lines_follows_the_framing_rules(
    lines: list[bytes], max_line: int, cuts: list[int]
) -> None:
    data = b"".join(line + b"\n" for line in lines)
    protocol, transport = echoing(max_line)
    points = sorted({0, len(data), *(cut for cut in cuts if cut < len(data))})
    for start, end in pairwise(points):
        protocol.dataReceived(data[start:end])
        assert protocol.held_bytes <= max_line + 1
    assert transport.value() == expected_transcript(data, max_line)


# On a real TCP connection (here one end of a socket pair, with a reactor that
# never runs), an answer goes out at once when its line is the last one read:
# see labproto.writenow.


@pytest.fixture
def socket_pair() -> Iterator[tuple[Echo, tcp.Connection, socket.socket]]:
    """An Echo service on a Twisted TCP connection, and the socket of its peer."""
    protocol = EchoFactory(MAX_LINE).buildProtocol(PEER)
    with connection_on_a_socket_pair(protocol) as (connection, peer, _):
        protocol.makeConnection(connection)
        yield protocol, connection, peer


def test_the_answer_to_a_lone_line_goes_out_at_once(socket_pair) -> None:
    protocol, connection, peer = socket_pair
    protocol.dataReceived(b"one\n")
    assert received(peer) == b"got 'one'\r\n"
    protocol.dataReceived(b"tw")
    protocol.dataReceived(b"o\r\n")
    assert received(peer) == b"got 'two'\r\n"
    assert not connection.dataBuffer and not connection._tempDataBuffer


def test_the_answers_to_the_lines_of_one_chunk_go_out_together_in_order(socket_pair) -> None:
    protocol, connection, peer = socket_pair
    protocol.dataReceived(b"one\ntwo\nthree\n")
    assert received(peer) == b""  # All of them wait for the reactor, in one send.
    connection.doWrite()
    assert received(peer) == b"got 'one'\r\ngot 'two'\r\ngot 'three'\r\n"


def test_the_lines_after_a_too_long_line_are_answered_after_its_error(socket_pair) -> None:
    protocol, connection, peer = socket_pair
    protocol.dataReceived(b"x" * 40 + b"\nafter\n")
    assert received(peer) == b""  # Both wait for the reactor, in one send.
    connection.doWrite()
    assert received(peer) == TOO_LONG + b"got 'after'\r\n"
    protocol.dataReceived(b"y" * 40 + b"\n")
    assert received(peer) == TOO_LONG


def test_an_answer_goes_out_after_those_waiting_for_the_reactor(socket_pair) -> None:
    protocol, connection, peer = socket_pair
    protocol.dataReceived(b"one\ntwo\n")
    protocol.dataReceived(b"three\n")
    connection.doWrite()
    assert received(peer) == b"got 'one'\r\ngot 'two'\r\ngot 'three'\r\n"


def test_the_answer_before_hanging_up_is_sent_before_the_close(socket_pair) -> None:
    protocol, connection, peer = socket_pair
    protocol.dataReceived(b"bye\n")
    protocol.hang_up()
    assert received(peer) == b"got 'bye'\r\n"
    assert connection.disconnecting


# A peer that sends many lines at once: at most LINES_PER_TURN of them a turn


def clocked(max_line: int = MAX_LINE) -> tuple[Recorder, StringTransport, Clock]:
    factory = RecorderFactory(max_line)
    factory.clock = Clock()
    protocol = factory.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    return protocol, transport, factory.clock


def test_a_chunk_of_more_lines_than_a_turn_takes_waits_for_the_next_turns() -> None:
    protocol, transport, clock = clocked()
    protocol.dataReceived(b"".join(b"%d\n" % number for number in range(LINES_PER_TURN * 2 + 1)))
    assert protocol.texts == [str(number) for number in range(LINES_PER_TURN)]
    # The peer waits on TCP's flow control meanwhile, not on the server's memory.
    assert transport.producerState == "paused"
    clock.advance(0)
    assert protocol.texts == [str(number) for number in range(LINES_PER_TURN * 2 + 1)]
    assert transport.producerState == "producing"


def test_lines_that_wait_for_the_next_turn_keep_their_order_with_those_that_follow() -> None:
    protocol, _, clock = clocked()
    protocol.dataReceived(b"x\n" * LINES_PER_TURN + b"late\npart")
    protocol.dataReceived(b"ial\n")
    clock.advance(0)
    assert protocol.texts[-2:] == ["late", "partial"]


def test_a_connection_paused_for_its_output_is_not_resumed_by_the_next_turn() -> None:
    protocol, transport, clock = clocked()
    protocol.dataReceived(b"x\n" * (LINES_PER_TURN + 5))
    protocol.pauseProducing()
    clock.advance(0)
    assert len(protocol.texts) == LINES_PER_TURN
    assert transport.producerState == "paused"
    protocol.resumeProducing()
    assert len(protocol.texts) == LINES_PER_TURN + 5
    assert transport.producerState == "producing"


class Failing(Recorder):
    """A line service that fails on the line "boom", as a bug would."""

    def textReceived(self, text: str) -> None:
        if text == "boom":
            raise RuntimeError("a bug")
        super().textReceived(text)


def test_a_line_that_fails_in_a_later_turn_closes_the_connection_and_is_logged(logged) -> None:
    factory = RecorderFactory(MAX_LINE)
    factory.protocol = Failing
    factory.clock = Clock()
    protocol = factory.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    protocol.dataReceived(b"x\n" * LINES_PER_TURN + b"boom\nnever\n")
    factory.clock.advance(0)
    # Not left waiting for answers that never come: the connection is cut.
    assert transport.disconnecting
    assert "never" not in protocol.texts
    assert logged.lines()[-1] == "Handling the lines of ('127.0.0.1', 5000)"


def test_a_line_too_long_is_refused_after_the_answers_to_the_lines_before_it() -> None:
    protocol, transport = echoing()
    protocol.dataReceived(b"one\n" + b"x" * (MAX_LINE + 2))
    protocol.dataReceived(b"xx\ntwo\n")
    assert transport.value() == b"got 'one'\r\n" + TOO_LONG + b"got 'two'\r\n"


def test_an_ipv4_client_of_an_ipv6_listener_has_its_ipv4_address_as_host() -> None:
    assert peer_host(IPv6Address("TCP", "::ffff:192.0.2.7", 5000)) == "192.0.2.7"
    assert peer_host(IPv6Address("TCP", "2001:db8::7", 5000)) == "2001:db8::7"
    assert peer_host(UNIXAddress(b"/tmp/socket")) is None
