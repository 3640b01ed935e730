"""labchat over TCP against fake transports: the bytes on the wire, framing, and the send queue."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from support.fakes import connected
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from labproto.chat.limits import UserLimits
from labproto.chat.protocol import CLOSING_GRACE, ChatFactory, ChatProtocol
from labproto.chat.room import ChatRoom
from labproto.chat.sendqueue import UNSENT_WHEN_PAUSED
from labproto.chat.session import Stage

PROMPT = b"Welcome to labchat! Please enter your name:\r\n"
# The send queue the tests allow: room for 100 bytes once a connection has paused.
SENDQ = UNSENT_WHEN_PAUSED + 100
# "<alice> " + 40 characters + CRLF: two of these fit in the send queue, three do not.
LINE_OF_40 = "x" * 40
RELAYED_40 = b"<alice> " + LINE_OF_40.encode() + b"\r\n"


class Client:
    """One TCP connection to the test server: its protocol and its fake transport."""

    def __init__(self, protocol: ChatProtocol, transport: StringTransport, clock: Clock) -> None:
        self.protocol = protocol
        self.transport = transport
        self.clock = clock

    def sends(self, data: bytes) -> None:
        """Bytes arrive from the peer, in a turn of the reactor that then ends."""
        self.protocol.dataReceived(data)
        self.clock.advance(0)

    def heard(self) -> bytes:
        """Everything written to the peer since the last call, by the end of the turn."""
        self.clock.advance(0)
        data = self.transport.value()
        self.transport.clear()
        return data

    def closed(self) -> bool:
        """Whether the server has closed or aborted the connection."""
        return self.transport.disconnecting or not self.transport.connected

    def loses_connection(self, reason: BaseException | None = None) -> None:
        """The transport reports the connection gone, as a real one does a moment after a close."""
        self.protocol.connectionLost(Failure(reason or ConnectionLost()))
        self.clock.advance(0)


class Server:
    """A ChatFactory on a task.Clock and the connections made to it."""

    def __init__(self, max_users: int = 1000, quiet: bool = False, **limits: Any) -> None:
        self.clock = Clock()
        self.room = ChatRoom(self.clock, max_users=max_users, quiet=quiet)
        self.factory = ChatFactory(self.room, UserLimits(**limits), self.clock)
        self._ports = itertools.count(5000)

    def connect(self, closes_at_once: bool = True) -> Client:
        """A new connection; by default its transport reports the loss as soon as it closes.

        A transport that does not (closes_at_once=False) stays open until
        the test calls loses_connection(), as a real one does after an abort;
        it is lenient, so that a test may resume a connection it has closed.
        """
        protocol, transport = connected(
            self.factory, next(self._ports), closes_at_once, lenient=True
        )
        assert isinstance(protocol, ChatProtocol)
        return Client(protocol, transport, self.clock)

    def user(self, name: str, closes_at_once: bool = True) -> Client:
        """A new connection logged in as name, with nothing heard yet."""
        client = self.connect(closes_at_once)
        client.sends(name.encode() + b"\r\n")
        client.heard()
        return client

    def users(self, *names: str, closes_at_once: bool = True) -> list[Client]:
        """New users logged in under names, in that order, with nothing heard yet."""
        clients = [self.user(name, closes_at_once) for name in names]
        for client in clients:
            client.heard()
        return clients


def test_a_new_connection_gets_the_login_prompt() -> None:
    client = Server().connect()
    assert client.heard() == PROMPT


def test_a_new_connection_is_logged_with_its_address(logged) -> None:
    Server().connect()
    assert logged.lines() == ["Connected ('127.0.0.1', 5000)"]


def test_a_join_is_logged_with_the_peer_address(logged) -> None:
    Server().user("alice")
    assert logged.lines()[-1] == "alice joined from ('127.0.0.1', 5000)"


def test_the_factory_gives_each_connection_the_line_limit() -> None:
    server = Server(max_line=64)
    assert server.factory.max_line == 64
    assert server.connect().protocol.max_line == 64


def test_the_contract_dialogue_gives_the_contract_bytes() -> None:
    server = Server()
    bob = server.user("bob")
    alice = server.connect()
    alice.sends(b"alice\r\nhello\r\n/me waves\r\n/msg bob psst\r\n/who\r\n")
    alice.sends(b"/nick carol\r\n/quit gone fishing\r\n")
    assert alice.heard() == (
        PROMPT + b"Welcome alice! 2 users online: alice, bob\r\n"
        b"<alice> hello\r\n"
        b"* alice waves\r\n"
        b"-> *bob* psst\r\n"
        b"2 users online: alice, bob\r\n"
        b"* alice is now known as carol\r\n"
        b"Bye carol!\r\n"
    )
    assert bob.heard() == (
        b"* alice joined\r\n"
        b"<alice> hello\r\n"
        b"* alice waves\r\n"
        b"*alice* psst\r\n"
        b"* alice is now known as carol\r\n"
        b"* carol left (gone fishing)\r\n"
    )
    assert alice.closed()


def test_lines_ending_in_lf_alone_are_accepted() -> None:
    server = Server()
    alice = server.connect()
    alice.heard()
    alice.sends(b"alice\nhello\n")
    assert alice.heard() == b"Welcome alice! 1 user online: alice\r\n<alice> hello\r\n"


def test_a_line_split_across_chunks_is_one_line() -> None:
    alice, bob = Server().users("alice", "bob")
    alice.sends(b"hel")
    alice.sends(b"lo\r")
    alice.sends(b"\n")
    assert bob.heard() == b"<alice> hello\r\n"


def test_invalid_utf8_is_relayed_with_replacement_characters() -> None:
    alice, bob = Server().users("alice", "bob")
    alice.sends(b"caf\xc3\xa9 \xff\xfe!\r\n")
    assert bob.heard() == "<alice> café \ufffd\ufffd!\r\n".encode()


def test_invalid_utf8_in_a_name_is_an_invalid_name() -> None:
    client = Server().connect()
    client.heard()
    client.sends(b"al\xffice\r\n")
    assert client.heard() == b"ERROR invalid name: use 1 to 24 ASCII letters, digits, _, - or .\r\n"


def test_ansi_escapes_and_bidi_overrides_never_reach_another_user() -> None:
    alice, bob = Server().users("alice", "bob")
    alice.sends(b"\x1b[2J\x1b]0;owned\x07hi \xe2\x80\xae\xc2\x9b31mthere\r\n")
    assert bob.heard() == b"<alice> hi there\r\n"


def test_a_too_long_line_is_refused_and_the_session_goes_on() -> None:
    alice, bob = Server(max_line=16).users("alice", "bob")
    alice.sends(b"x" * 17 + b"\r\nhello\r\n")
    assert alice.heard() == b"ERROR line too long (max 16 bytes)\r\n<alice> hello\r\n"
    assert bob.heard() == b"<alice> hello\r\n"


def test_a_too_long_line_in_login_is_refused_and_the_connection_stays_in_login() -> None:
    client = Server(max_line=16).connect()
    client.heard()
    client.sends(b"x" * 100 + b"\r\n")
    assert client.heard() == b"ERROR line too long (max 16 bytes)\r\n"
    assert client.protocol.session.stage is Stage.LOGIN


def test_a_line_of_exactly_max_line_bytes_is_accepted() -> None:
    alice, bob = Server(max_line=16).users("alice", "bob")
    alice.sends(b"x" * 16 + b"\r\n")
    assert bob.heard() == b"<alice> " + b"x" * 16 + b"\r\n"


def test_quit_says_bye_closes_and_tells_the_others() -> None:
    alice, bob = Server().users("alice", "bob")
    alice.sends(b"/quit\r\n")
    assert alice.heard() == b"Bye alice!\r\n"
    assert alice.closed()
    assert bob.heard() == b"* alice left (quit)\r\n"


def test_lines_after_quit_in_the_same_chunk_are_not_handled() -> None:
    alice, bob = Server().users("alice", "bob")
    alice.sends(b"/quit\r\nhello\r\n")
    assert alice.heard() == b"Bye alice!\r\n"
    assert bob.heard() == b"* alice left (quit)\r\n"


def test_a_dropped_connection_tells_the_others_connection_lost() -> None:
    alice, bob = Server().users("alice", "bob")
    alice.loses_connection()
    assert bob.heard() == b"* alice left (connection lost)\r\n"


def test_a_dropped_connection_is_logged_as_a_leave(logged) -> None:
    (alice,) = Server().users("alice")
    alice.loses_connection()
    assert logged.lines()[-1] == "alice left (connection lost)"


@pytest.mark.parametrize("leave", [b"/quit\r\n", b"/quit bye now\r\n", None])
def test_a_name_is_free_at_once_after_its_user_leaves(leave: bytes | None) -> None:
    server = Server()
    alice, bob = server.users("alice", "bob")
    if leave is None:
        bob.loses_connection()
    else:
        bob.sends(leave)
    newcomer = server.connect()
    newcomer.sends(b"Bob\r\n")
    assert newcomer.heard() == PROMPT + b"Welcome Bob! 2 users online: alice, Bob\r\n"


def test_a_connection_not_logged_in_in_time_is_told_and_closed() -> None:
    server = Server(login_timeout=5)
    client = server.connect()
    client.heard()
    server.clock.advance(5)
    assert client.heard() == b"ERROR login timed out\r\n"
    assert client.closed()
    assert len(server.room) == 0


def test_a_connection_to_a_full_room_is_refused_and_closed() -> None:
    server = Server(max_users=1)
    server.users("alice")
    client = server.connect()
    assert client.heard() == b"ERROR room full\r\n"
    assert client.closed()


def test_a_login_to_a_room_that_filled_meanwhile_is_refused_and_closed() -> None:
    server = Server(max_users=1)
    early, late = server.connect(), server.connect()
    early.sends(b"alice\r\n")
    late.heard()
    late.sends(b"bob\r\n")
    assert late.heard() == b"ERROR room full\r\n"
    assert late.closed()


def test_the_flood_limits_reach_each_connection() -> None:
    alice, bob = Server(burst=2, rate=1.0).users("alice", "bob")
    alice.sends(b"1\r\n2\r\n3\r\n")
    assert alice.heard() == b"<alice> 1\r\n<alice> 2\r\nERROR slow down: message dropped\r\n"
    assert bob.heard() == b"<alice> 1\r\n<alice> 2\r\n"


# The send queue: a reader too slow for its output is cut off.


def slow_room() -> tuple[Client, Client, Client]:
    """alice, bob and carol, with a send queue of SENDQ, over transports that close lazily."""
    alice, bob, carol = Server(sendq=SENDQ).users("alice", "bob", "carol", closes_at_once=False)
    return alice, bob, carol


def say_40(client: Client, times: int) -> None:
    client.sends(b"".join(LINE_OF_40.encode() + b"\r\n" for _ in range(times)))


def test_a_connection_that_keeps_up_is_never_cut_off() -> None:
    alice, bob, _ = slow_room()
    say_40(alice, 20)
    assert bob.heard() == RELAYED_40 * 20
    assert not bob.closed()


def test_lines_for_a_paused_connection_wait_in_its_backlog() -> None:
    alice, bob, _ = slow_room()
    bob.protocol.pauseProducing()
    say_40(alice, 2)
    assert bob.heard() == b""
    assert not bob.closed()


def test_a_resumed_connection_gets_its_backlog_in_order() -> None:
    alice, bob, _ = slow_room()
    bob.protocol.pauseProducing()
    say_40(alice, 1)
    alice.sends(b"then this\r\n")
    bob.protocol.resumeProducing()
    assert bob.heard() == RELAYED_40 + b"<alice> then this\r\n"


def test_a_paused_connection_past_its_send_queue_is_aborted() -> None:
    alice, bob, _ = slow_room()
    bob.protocol.pauseProducing()
    say_40(alice, 3)
    assert bob.heard() == b""
    assert bob.transport.disconnected


def test_nothing_more_is_written_to_a_connection_cut_off() -> None:
    alice, bob, _ = slow_room()
    bob.protocol.pauseProducing()
    say_40(alice, 3)
    bob.heard()
    alice.sends(b"/msg bob still there?\r\nhello\r\n")
    bob.protocol.resumeProducing()
    alice.sends(b"hello again\r\n")
    assert bob.heard() == b""


def test_the_others_receive_the_broadcast_that_cut_a_slow_reader_off() -> None:
    alice, bob, carol = slow_room()
    bob.protocol.pauseProducing()
    say_40(alice, 3)
    assert alice.heard() == RELAYED_40 * 3
    assert carol.heard() == RELAYED_40 * 3


def test_a_slow_reader_leaves_with_send_queue_exceeded_once_its_connection_is_lost() -> None:
    alice, bob, carol = slow_room()
    bob.protocol.pauseProducing()
    say_40(alice, 3)
    alice.heard()
    carol.heard()
    bob.loses_connection(ConnectionAborted())
    assert alice.heard() == carol.heard() == b"* bob left (send queue exceeded)\r\n"


def test_a_slow_reader_is_logged_as_leaving_for_its_send_queue(logged) -> None:
    alice, bob, _ = slow_room()
    bob.protocol.pauseProducing()
    say_40(alice, 3)
    bob.loses_connection(ConnectionAborted())
    assert logged.lines()[-1] == "bob left (send queue exceeded)"


def test_a_slow_readers_name_is_free_once_its_connection_is_lost() -> None:
    server = Server(sendq=SENDQ)
    alice, bob = server.users("alice", "bob", closes_at_once=False)
    bob.protocol.pauseProducing()
    say_40(alice, 3)
    bob.loses_connection(ConnectionAborted())
    newcomer = server.connect()
    newcomer.sends(b"BOB\r\n")
    assert newcomer.heard() == PROMPT + b"Welcome BOB! 2 users online: alice, BOB\r\n"


def test_a_reader_that_catches_up_starts_its_count_afresh() -> None:
    alice, bob, _ = slow_room()
    bob.protocol.pauseProducing()
    say_40(alice, 2)
    bob.protocol.resumeProducing()
    bob.protocol.pauseProducing()
    say_40(alice, 2)
    bob.protocol.resumeProducing()
    assert bob.heard() == RELAYED_40 * 4
    assert not bob.closed()


def test_pausing_again_without_resuming_does_not_restart_the_count() -> None:
    alice, bob, _ = slow_room()
    bob.protocol.pauseProducing()
    say_40(alice, 2)
    bob.protocol.pauseProducing()
    say_40(alice, 1)
    assert bob.transport.disconnected


class FillingTransport(StringTransport):
    """A transport that pauses its producer whenever more than `room` bytes wait in it."""

    room = 60

    def write(self, data: bytes) -> None:
        super().write(data)
        if len(self.value()) > self.room and self.producer is not None:
            self.producer.pauseProducing()


def test_a_resumed_connection_is_fed_from_its_backlog_only_until_it_is_full_again() -> None:
    server = Server(sendq=UNSENT_WHEN_PAUSED + 1000)
    alice = server.user("alice")
    address = IPv4Address("TCP", "127.0.0.1", 6000)
    protocol = server.factory.buildProtocol(address)
    transport = FillingTransport(peerAddress=address)
    protocol.makeConnection(transport)
    protocol.dataReceived(b"bob\r\n")
    transport.clear()
    protocol.pauseProducing()
    # Four turns of the reactor: four broadcasts, each one entry of the backlog.
    for _ in range(4):
        say_40(alice, 1)
    protocol.resumeProducing()
    # Two lines pass 60 bytes: the connection pauses again, the rest waits.
    assert transport.value() == RELAYED_40 * 2
    transport.clear()
    protocol.resumeProducing()
    assert transport.value() == RELAYED_40 * 2


def test_a_paused_connection_closed_at_shutdown_still_gets_its_backlog_and_the_notice() -> None:
    server = Server(sendq=SENDQ)
    alice, bob = server.users("alice", "bob", closes_at_once=False)
    bob.protocol.pauseProducing()
    say_40(alice, 1)
    server.room.shut_down()
    assert bob.heard() == RELAYED_40 + b"* server shutting down\r\n"
    assert bob.transport.disconnecting


# Closing: a connection closed by the server is cut if its peer will not read.


def test_a_closed_connection_whose_peer_does_not_read_is_cut_after_a_grace() -> None:
    server = Server(login_timeout=1)
    client = server.connect(closes_at_once=False)
    server.clock.advance(1)
    assert client.transport.disconnecting
    assert not client.transport.disconnected
    server.clock.advance(CLOSING_GRACE)
    assert client.transport.disconnected


def test_a_connection_that_closes_in_time_is_not_cut() -> None:
    server = Server(login_timeout=1)
    client = server.connect(closes_at_once=False)
    server.clock.advance(1)
    client.loses_connection()
    assert server.clock.getDelayedCalls() == []


# Half-closed connections: the user can send nothing more.


def test_a_user_whose_connection_is_half_closed_leaves_at_once() -> None:
    alice, bob, _ = Server().users("alice", "bob", "carol", closes_at_once=False)
    bob.protocol.readConnectionLost()
    assert alice.heard() == b"* bob left (connection lost)\r\n"
    assert bob.transport.disconnecting


def test_a_half_closed_connection_still_gets_what_was_already_sent() -> None:
    alice, bob, _ = slow_room()
    bob.protocol.pauseProducing()
    say_40(alice, 1)
    bob.protocol.readConnectionLost()
    assert bob.heard() == RELAYED_40


class NagleRecordingTransport(StringTransport):
    """A transport that records whether Nagle's algorithm was turned off."""

    no_delay = False

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.no_delay = enabled


def test_a_connection_sends_each_line_at_once_without_nagle_delay() -> None:
    server = Server()
    protocol = server.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = NagleRecordingTransport()
    protocol.makeConnection(transport)
    assert transport.no_delay
    assert transport.value() == PROMPT


def test_a_connection_without_nagle_to_turn_off_is_served_as_well() -> None:
    # A UNIX socket's transport refuses TCP_NODELAY.
    server = Server()
    client = server.connect()
    assert client.heard() == PROMPT


def test_paused_readers_that_drop_in_one_turn_both_leave_and_the_room_goes_on() -> None:
    alice, bob, carol = slow_room()
    bob.protocol.pauseProducing()
    carol.protocol.pauseProducing()
    # One turn: a message is held, then both connections are lost; each
    # leaving member is handed what it has waiting, which nothing can send.
    alice.protocol.dataReceived(b"hello\r\n")
    bob.protocol.connectionLost(Failure(ConnectionLost()))
    carol.protocol.connectionLost(Failure(ConnectionLost()))
    alice.clock.advance(0)
    assert alice.heard() == (
        b"<alice> hello\r\n* bob left (connection lost)\r\n* carol left (connection lost)\r\n"
    )
    room = alice.protocol.factory.room
    assert (room.find("bob"), room.find("carol"), len(room)) == (None, None, 1)
    alice.sends(b"still here\r\n")
    assert alice.heard() == b"<alice> still here\r\n"
