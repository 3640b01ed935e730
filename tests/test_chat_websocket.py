"""labchat's WebSocket adapter on string transports and a task.Clock: the frames on the wire."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.fakes import connected
from support.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    REJECTED_FRAMES,
    TEXT,
    client_frame,
    close_code,
    frame_header,
    handshake,
    server_frames,
)
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from labproto.chat.limits import UserLimits
from labproto.chat.origins import OriginPolicy, origin_key
from labproto.chat.protocol import ChatFactory
from labproto.chat.room import ChatRoom
from labproto.chat.sendqueue import UNSENT_WHEN_PAUSED
from labproto.chat.websocket import (
    CLOSING_GRACE,
    LONGEST_SKIPPED,
    ChatWebSocketFactory,
    text_frames,
)

PROMPT = "Welcome to labchat! Please enter your name:"


class Lab:
    """One room, with a WebSocket factory and a TCP factory on it, on a Clock."""

    def __init__(self, origins: OriginPolicy | None = None, **limits: object) -> None:
        self.clock = Clock()
        self.room = ChatRoom(self.clock)
        self.limits = UserLimits(**limits)  # type: ignore[arg-type]
        self.websockets = ChatWebSocketFactory(
            self.room, self.limits, self.clock, origins or OriginPolicy()
        )
        self.tcp = ChatFactory(self.room, self.limits, self.clock)
        self._ports = itertools.count(6000)

    def browser(self, origin: str | None = None, host: str = "127.0.0.1:8080") -> Browser:
        """A WebSocket client that has sent its opening handshake."""
        return Browser(self, origin, host, next(self._ports))

    def says(self, name: str, text: str) -> None:
        """The user logged in as name says text to the room."""
        member = self.room.find(name)
        assert member is not None
        self.room.say(member, text)
        self.clock.advance(0)

    def tcp_user(self, name: str) -> StringTransport:
        """A TCP user logged in as name, its transport cleared."""
        protocol, transport = connected(self.tcp, next(self._ports), closes_at_once=False)
        protocol.dataReceived(name.encode() + b"\n")
        self.clock.advance(0)
        transport.clear()
        return transport


class Browser:
    """The client end of one WebSocket to the lab, speaking RFC 6455 by hand."""

    def __init__(self, lab: Lab, origin: str | None, host: str, port: int) -> None:
        self.lab = lab
        address = IPv4Address("TCP", "127.0.0.1", port)
        self.protocol = lab.websockets.buildProtocol(address)
        self.transport = StringTransport(peerAddress=address)
        self.protocol.makeConnection(self.transport)
        request, self.accept = handshake(host=host, origin=origin)
        self.protocol.dataReceived(request)
        self.response, _, rest = self.transport.value().partition(b"\r\n\r\n")
        self.transport.clear()
        self._unread = rest

    def frames(self) -> list[tuple[int, bytes]]:
        """The whole frames the server has sent since the last call."""
        self.lab.clock.advance(0)
        frames, self._unread = server_frames(self._unread + self.transport.value())
        self.transport.clear()
        # The server's keep-alive pings (every PING_INTERVAL) are no part of the chat.
        return [frame for frame in frames if frame[0] != PING]

    def heard(self) -> list[str]:
        """The text frames the server has sent since the last call; any other frame fails."""
        frames = self.frames()
        assert all(opcode == TEXT for opcode, _ in frames), frames
        return [payload.decode() for _, payload in frames]

    def sends(self, payload: bytes, opcode: int = TEXT) -> None:
        self.protocol.dataReceived(client_frame(payload, opcode))
        self.lab.clock.advance(0)

    def types(self, *lines: str) -> None:
        for line in lines:
            self.sends(line.encode())

    def logs_in(self, name: str) -> Browser:
        self.types(name)
        self.heard()
        return self

    def closes(self) -> None:
        """The browser goes away (a tab closed): its TCP connection ends."""
        self.protocol.connectionLost()
        self.lab.clock.advance(0)


@pytest.fixture
def lab() -> Lab:
    return Lab()


# Frames


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_each_line_is_one_text_frame_with_the_shortest_length_field(
    length: int, header: bytes
) -> None:
    assert text_frames(b"x" * length + b"\r\n") == header + b"x" * length


def test_several_lines_are_several_frames_without_their_line_ends() -> None:
    frames, rest = server_frames(text_frames("* bob joined\r\n<bob> héllo\r\n".encode()))
    assert frames == [(TEXT, b"* bob joined"), (TEXT, "<bob> héllo".encode())]
    assert rest == b""


def test_a_broadcast_is_framed_once_for_every_member(lab: Lab) -> None:
    lines = b"<alice> hi\r\n"
    assert lab.websockets.frames(lines) is lab.websockets.frames(lines)


# Origins


def test_origins_compare_by_scheme_host_and_port_with_default_ports() -> None:
    assert origin_key("https://Lab.Example.org") == ("https", "lab.example.org", 443)
    assert origin_key("http://127.0.0.1:8080") == ("http", "127.0.0.1", 8080)
    assert origin_key("null") is None
    assert origin_key("ftp://example.org") is None
    assert origin_key("http://example.org:99999") is None


@pytest.mark.parametrize(
    ("origin", "host", "admitted"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
        ("http://lab.example.org", "lab.example.org:80", True),
        ("http://127.0.0.1:8081", "127.0.0.1:8080", False),
        ("https://127.0.0.1:8080", "127.0.0.1:8080", False),
        ("http://evil.example", "127.0.0.1:8080", False),
        ("null", "127.0.0.1:8080", False),
        (None, "127.0.0.1:8080", True),
    ],
)
def test_by_default_only_the_pages_own_origin_may_open_the_websocket(
    origin: str | None, host: str, admitted: bool
) -> None:
    assert OriginPolicy().admits(origin, host) is admitted


def test_a_secure_site_admits_its_https_origin_only() -> None:
    policy = OriginPolicy(secure=True)
    assert policy.admits("https://lab.example.org:8443", "lab.example.org:8443")
    assert not policy.admits("http://lab.example.org:8443", "lab.example.org:8443")


def test_given_origins_replace_the_pages_own_and_star_admits_any() -> None:
    policy = OriginPolicy(["https://course.example.org"])
    assert policy.admits("https://course.example.org", "127.0.0.1:8080")
    assert not policy.admits("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert OriginPolicy(["*"]).admits("http://anywhere.example", "127.0.0.1:8080")


# The handshake


def test_the_handshake_is_answered_and_then_the_login_prompt_is_one_frame(lab: Lab) -> None:
    browser = lab.browser()
    assert browser.response.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: " + browser.accept in browser.response
    assert browser.heard() == [PROMPT]


def test_a_foreign_origin_gets_http_403_and_never_reaches_the_room(lab: Lab, logged) -> None:
    browser = lab.browser(origin="http://evil.example")
    assert browser.response.startswith(b"HTTP/1.1 403 ")
    assert browser.protocol.session is None
    assert any(
        "Refused a WebSocket from ('127.0.0.1', 6000): Origin http://evil.example" in line
        for line in logged.lines()
    )


@pytest.mark.parametrize("origin", ["null", "file://", "file:///home/ada/chat.html"])
def test_star_admits_the_origin_of_a_page_opened_from_a_file(origin: str) -> None:
    browser = Lab(origins=OriginPolicy(["*"])).browser(origin=origin)
    assert browser.response.startswith(b"HTTP/1.1 101 ")
    assert browser.heard() == [PROMPT]


@pytest.mark.parametrize("origin", ["null", "file:///home/ada/chat.html"])
def test_by_default_a_page_opened_from_a_file_gets_403_and_is_logged(
    lab: Lab, logged, origin: str
) -> None:
    browser = lab.browser(origin=origin)
    assert browser.response.startswith(b"HTTP/1.1 403 ")
    assert browser.protocol.session is None
    assert (
        f"Refused a WebSocket from ('127.0.0.1', 6000): Origin {origin}"
        " is not the page's own origin"
    ) in logged.lines()


def test_the_pages_own_origin_is_admitted(lab: Lab) -> None:
    browser = lab.browser(origin="http://127.0.0.1:8080", host="127.0.0.1:8080")
    assert browser.heard() == [PROMPT]


# Chat


def test_a_websocket_user_and_a_tcp_user_share_one_room(lab: Lab) -> None:
    bob = lab.tcp_user("bob")
    alice = lab.browser()
    alice.heard()
    alice.types("alice")
    assert alice.heard() == ["Welcome alice! 2 users online: alice, bob"]
    assert bob.value() == b"* alice joined\r\n"
    alice.types("hello <b>bob</b>")
    assert alice.heard() == ["<alice> hello <b>bob</b>"]
    assert bob.value() == b"* alice joined\r\n<alice> hello <b>bob</b>\r\n"


def test_commands_work_over_the_websocket(lab: Lab) -> None:
    lab.tcp_user("bob")
    alice = lab.browser().logs_in("alice")
    alice.types("/who", "/msg bob psst", "/me waves", "/nick carol")
    assert alice.heard() == [
        "2 users online: alice, bob",
        "-> *bob* psst",
        "* alice waves",
        "* alice is now known as carol",
    ]


def test_a_line_ending_sent_inside_the_frame_is_not_part_of_the_line(lab: Lab) -> None:
    alice = lab.browser().logs_in("alice")
    alice.types("one\n", "two\r\n")
    assert alice.heard() == ["<alice> one", "<alice> two"]


def test_a_line_the_server_sends_never_holds_a_line_end(lab: Lab) -> None:
    alice = lab.browser().logs_in("alice")
    alice.types("a\rb\x1b[31mc")
    assert alice.heard() == ["<alice> abc"]


# Bad input


def test_a_frame_longer_than_max_line_is_refused_like_a_long_tcp_line(lab: Lab) -> None:
    alice = lab.browser().logs_in("alice")
    alice.types("x" * 1025)
    assert alice.heard() == ["ERROR line too long (max 1024 bytes)"]
    alice.types("x" * 1024)
    assert alice.heard() == ["<alice> " + "x" * 1024]


def test_a_long_message_in_many_frames_is_refused_and_its_parts_not_all_kept(lab: Lab) -> None:
    alice = lab.browser().logs_in("alice")
    protocol = alice.protocol
    protocol.dataReceived(client_frame(b"y" * 1000, TEXT, fin=False))
    for _ in range(100):
        protocol.dataReceived(client_frame(b"y" * 1000, CONTINUATION, fin=False))
    # Whatever the peer sends, a message holds about one line, not all of it.
    assert sum(map(len, protocol._parts)) <= 2 * 1024 + 2
    protocol.dataReceived(client_frame(b"y", CONTINUATION, fin=True))
    assert alice.heard() == ["ERROR line too long (max 1024 bytes)"]


def test_a_frame_announcing_2_to_the_62_bytes_is_refused_without_waiting_for_them(
    lab: Lab,
) -> None:
    bob = lab.tcp_user("bob")
    alice = lab.browser().logs_in("alice")
    bob.clear()
    alice.protocol.dataReceived(frame_header(1 << 62))
    frames = alice.frames()
    assert frames[0] == (TEXT, b"ERROR line too long (max 1024 bytes)")
    assert (frames[1][0], close_code(frames[1][1])) == (CLOSE, 1009)
    assert alice.transport.disconnecting
    alice.closes()
    assert bob.value() == b"* alice left (connection lost)\r\n"


def test_a_message_whose_frames_together_announce_too_much_is_refused_at_once(lab: Lab) -> None:
    alice = lab.browser().logs_in("alice")
    protocol = alice.protocol
    protocol.dataReceived(client_frame(b"y" * 1000, TEXT, fin=False))
    # A header for LONGEST_SKIPPED bytes more, and none of them.
    protocol.dataReceived(frame_header(LONGEST_SKIPPED, CONTINUATION))
    frames = alice.frames()
    assert frames[0] == (TEXT, b"ERROR line too long (max 1024 bytes)")
    assert (frames[1][0], close_code(frames[1][1])) == (CLOSE, 1009)
    assert alice.transport.disconnecting


def test_a_binary_frame_closes_the_websocket_with_1003(lab: Lab) -> None:
    bob = lab.tcp_user("bob")
    alice = lab.browser().logs_in("alice")
    bob.clear()
    alice.sends(b"\x00\x01", BINARY)
    [(opcode, payload)] = alice.frames()
    assert (opcode, close_code(payload)) == (CLOSE, 1003)
    alice.closes()
    assert bob.value() == b"* alice left (connection lost)\r\n"


@pytest.mark.parametrize("kind", REJECTED_FRAMES)
def test_a_rejected_frame_closes_the_websocket_and_reaches_nobody(
    lab: Lab, logged, kind: str
) -> None:
    frame, code = REJECTED_FRAMES[kind]
    bob = lab.tcp_user("bob")
    alice = lab.browser().logs_in("alice")
    bob.clear()
    # A good line before it in the same read still goes through.
    alice.protocol.dataReceived(client_frame(b"before") + frame + client_frame(b"after"))
    lab.clock.advance(0)
    # The close goes out at once; the room's lines of this turn would follow
    # it, and no frame of data may.
    [(opcode, payload)] = alice.frames()
    assert (opcode, close_code(payload)) == (CLOSE, code)
    assert bob.value() == b"<alice> before\r\n"
    alice.closes()
    assert bob.value() == b"<alice> before\r\n* alice left (connection lost)\r\n"
    assert [line for line in logged.lines() if line.startswith("<alice>")] == ["<alice> before"]


def test_invalid_utf8_in_a_text_frame_closes_the_websocket_with_1007(lab: Lab) -> None:
    alice = lab.browser().logs_in("alice")
    alice.sends(b"caf\xc3")
    [(opcode, payload)] = alice.frames()
    assert (opcode, close_code(payload)) == (CLOSE, 1007)


def test_a_browser_that_never_logs_in_is_timed_out(lab: Lab) -> None:
    lab = Lab(login_timeout=60.0)
    browser = lab.browser()
    browser.heard()
    lab.clock.advance(60)
    frames = browser.frames()
    assert frames[0] == (TEXT, b"ERROR login timed out")
    assert (frames[1][0], close_code(frames[1][1])) == (CLOSE, 1000)


def test_closing_the_tab_broadcasts_the_leave(lab: Lab) -> None:
    bob = lab.tcp_user("bob")
    alice = lab.browser().logs_in("alice")
    bob.clear()
    alice.closes()
    assert bob.value() == b"* alice left (connection lost)\r\n"
    assert lab.room.find("alice") is None


def test_a_tab_closed_mid_line_relays_nothing_of_the_line(lab: Lab) -> None:
    bob = lab.tcp_user("bob")
    alice = lab.browser().logs_in("alice")
    bob.clear()
    alice.protocol.dataReceived(client_frame(b"half a li", TEXT, fin=False))
    alice.closes()
    assert bob.value() == b"* alice left (connection lost)\r\n"


def test_quit_says_bye_and_closes_the_websocket_normally(lab: Lab) -> None:
    alice = lab.browser().logs_in("alice")
    alice.types("/quit")
    frames = alice.frames()
    assert frames[0] == (TEXT, b"Bye alice!")
    assert (frames[1][0], close_code(frames[1][1])) == (CLOSE, 1000)


def test_a_peer_that_never_answers_the_close_is_cut_after_the_grace(lab: Lab) -> None:
    alice = lab.browser().logs_in("alice")
    alice.types("/quit")
    lab.clock.advance(CLOSING_GRACE - 1)
    assert not alice.transport.disconnecting
    lab.clock.advance(1)
    assert alice.transport.disconnecting


# The send queue


def test_a_tab_that_stops_reading_is_cut_off_past_sendq(lab: Lab) -> None:
    lab = Lab(sendq=UNSENT_WHEN_PAUSED + 100, rate=0)
    bob = lab.tcp_user("bob")
    alice = lab.browser().logs_in("alice")
    bob.clear()
    # The connection's buffer is full: Twisted pauses its producer.
    alice.protocol.pauseProducing()
    assert alice.transport.producerState == "paused"
    # Each frame, 2 bytes of header, "<bob> " and 40 characters: two fit in 100 bytes.
    lab.says("bob", "x" * 40)
    lab.says("bob", "x" * 40)
    assert not alice.transport.disconnecting
    lab.says("bob", "x" * 40)
    assert alice.transport.disconnecting
    alice.closes()
    assert bob.value().endswith(b"* alice left (send queue exceeded)\r\n")


def test_what_waited_while_paused_goes_out_in_order_on_resume(lab: Lab) -> None:
    lab.tcp_user("bob")
    alice = lab.browser().logs_in("alice")
    alice.protocol.pauseProducing()
    lab.says("bob", "one")
    lab.says("bob", "two")
    assert alice.heard() == []
    alice.protocol.resumeProducing()
    assert alice.heard() == ["<bob> one", "<bob> two"]
    assert alice.transport.producerState == "producing"


# Figures


def test_websocket_users_are_counted_as_such(lab: Lab) -> None:
    lab.tcp_user("bob")
    lab.browser().logs_in("alice")
    assert lab.room.figures.logins == {"tcp": 1, "websocket": 1}
    assert sorted(member.kind for member in lab.room.members()) == ["tcp", "websocket"]


def test_lines_that_waited_are_dropped_once_the_peer_begins_to_close(lab: Lab) -> None:
    lab.tcp_user("bob")
    alice = lab.browser().logs_in("alice")
    alice.protocol.pauseProducing()
    lab.says("bob", "one")
    alice.sends(b"\x03\xe8", CLOSE)
    lab.says("bob", "two")
    # autobahn's answer to the close, and nothing after it: the server then
    # drops the connection, whose backlog is never sent.
    [(opcode, payload)] = alice.frames()
    assert (opcode, close_code(payload)) == (CLOSE, 1000)
    assert alice.transport.disconnecting


def test_the_log_tells_a_websocket_user_from_a_tcp_one(lab: Lab, logged) -> None:
    lab.browser(origin=None).logs_in("alice")
    assert "Connected ('127.0.0.1', 6000) over WebSocket" in logged.lines()
    assert "alice joined from ('127.0.0.1', 6000) over WebSocket" in logged.lines()


# Reading whole text frames without autobahn's machinery


CLIENT_FRAMES = st.one_of(
    st.text(max_size=40).map(lambda text: client_frame(text.encode())),
    st.text(min_size=126, max_size=300).map(lambda text: client_frame(text.encode())),
    st.binary(max_size=30).map(lambda data: client_frame(data)),
    st.binary(max_size=10).map(lambda data: client_frame(data, BINARY)),
    st.binary(max_size=10).map(lambda data: client_frame(data, PING)),
    st.text(max_size=20).map(
        lambda text: (
            client_frame(text[:3].encode(), TEXT, fin=False)
            + client_frame(text[3:].encode(), CONTINUATION)
        )
    ),
    st.just(client_frame(b"x" * 1030)),
    st.just(client_frame(b"x" * 70000)),
    # Each rejected frame closes the WebSocket: whatever follows it is not read.
    st.sampled_from([frame for frame, _ in REJECTED_FRAMES.values()]),
)


def session_of(frames: list[bytes], cuts: list[int], fast: bool) -> tuple[bytes, bytes, object]:
    """What alice (on a WebSocket) and bob (on TCP) received when alice sent frames, cut into
    chunks at cuts; with fast False, every byte goes through autobahn alone."""
    lab = Lab(rate=0)
    bob = lab.tcp_user("bob")
    alice = lab.browser().logs_in("alice")
    bob.clear()
    if not fast:
        alice.protocol._read_text_frames = lambda data: data
    data = b"".join(frames)
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    for start, end in itertools.pairwise(points):
        alice.protocol.dataReceived(data[start:end])
        lab.clock.advance(0)
    return alice.transport.value(), bob.value(), lab.room.figures


@settings(max_examples=150, deadline=None)
@given(st.lists(CLIENT_FRAMES, max_size=6), st.lists(st.integers(min_value=0), max_size=4))
def test_reading_text_frames_first_changes_nothing_anyone_receives(
    frames: list[bytes], cuts: list[int]
) -> None:
    assert session_of(frames, cuts, fast=True) == session_of(frames, cuts, fast=False)


def test_whole_text_frames_of_a_chunk_are_read_without_autobahn(lab: Lab) -> None:
    bob = lab.tcp_user("bob")
    alice = lab.browser().logs_in("alice")
    bob.clear()
    alice.protocol.processData = None  # autobahn's parser: not to be reached
    alice.protocol.dataReceived(client_frame(b"one") + client_frame("twø\n".encode()))
    lab.clock.advance(0)
    assert bob.value() == "<alice> one\r\n<alice> twø\r\n".encode()
