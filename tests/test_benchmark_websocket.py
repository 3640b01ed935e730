"""The chat load generator's WebSocket users: its RFC 6455 client, and a mixed room end to end.

The frames and the handshake are checked against the examples of RFC 6455
itself and against autobahn's masker (a reference the generator must not
use: it stays raw sockets, cheaper than the server it measures). The end to
end runs use the real twistd labchat with --web on a tiny load. Nothing here
asserts on a rate or a duration.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.bench import assert_failed, generate, measured
from support.processes import LOOPBACK_TCP, ServerProcess

from benchmarks import chatload, run, websocket
from benchmarks.chatload import BenchmarkFailed, ChatLoad, User

Start = Callable[..., ServerProcess]
USERS = 6

# RFC 6455, 1.3: the example key and the accept value it gives (as
# `printf %s KEY258EAFA5-E914-47DA-95CA-C5AB0DC85B11 | openssl sha1 -binary | base64`
# gives it too).
RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def answer(key: bytes, *extra: str, status: str = "101 Switching Protocols") -> bytes:
    """A server's answer to the handshake sent with key."""
    lines = [
        f"HTTP/1.1 {status}",
        "Server: test",
        "Upgrade: WebSocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {websocket.accept_key(key).decode()}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# The handshake.


def test_the_accept_key_of_rfc_6455s_example() -> None:
    assert websocket.accept_key(RFC_KEY) == RFC_ACCEPT


def test_each_key_is_16_random_bytes_in_base64() -> None:
    import base64

    keys = {websocket.new_key() for _ in range(10)}
    assert len(keys) == 10
    assert all(len(base64.b64decode(key, validate=True)) == 16 for key in keys)


def test_the_request_asks_to_upgrade_and_sends_no_origin() -> None:
    request = websocket.handshake_request("127.0.0.1", 8080, "/ws", RFC_KEY)
    assert request == (
        b"GET /ws HTTP/1.1\r\n"
        b"Host: 127.0.0.1:8080\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"\r\n"
    )


def test_an_answer_is_read_whole_and_the_frames_after_it_are_left() -> None:
    frames = websocket.server_frame(b"Welcome to labchat! Please enter your name:")
    data = answer(RFC_KEY) + frames
    head = len(data) - len(frames)
    for cut in range(head):
        assert websocket.handshake_response(data[:cut], RFC_KEY) is None
    assert websocket.handshake_response(data, RFC_KEY) == head


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (answer(RFC_KEY, status="403 Forbidden"), "answered 'HTTP/1.1 403 Forbidden', not 101"),
        (answer(b"another key"), "Sec-WebSocket-Accept is"),
        (
            answer(RFC_KEY, "Sec-WebSocket-Extensions: permessage-deflate"),
            "the server chose sec-websocket-extensions 'permessage-deflate'",
        ),
        (
            answer(RFC_KEY).replace(b"Upgrade: WebSocket\r\n", b""),
            "101 without Upgrade: websocket",
        ),
        (b"Welcome to labchat! Please enter your name:\r\n", "something other than HTTP"),
    ],
)
def test_an_answer_that_does_not_upgrade_is_refused(data: bytes, complaint: str) -> None:
    with pytest.raises(websocket.ProtocolError) as refused:
        websocket.handshake_response(data, RFC_KEY)
    assert complaint in str(refused.value)


# The frames.


def test_a_masked_text_frame_of_rfc_6455s_examples() -> None:
    # RFC 6455, 5.7: "A single-frame masked text message" of "Hello".
    frame = websocket.client_frame(b"Hello", key=bytes.fromhex("37fa213d"))
    assert frame == bytes.fromhex("818537fa213d7f9f4d5158")


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 63, 125, 126, 1000, 65535, 65536])
def test_masking_agrees_with_autobahns(size: int) -> None:
    from autobahn.websocket.xormasker import create_xor_masker

    payload, key = bytes(range(256)) * (size // 256) + bytes(range(size % 256)), b"\x01\xfe\x80\x7f"
    masked = websocket.mask(payload, key)
    assert masked == create_xor_masker(key, size).process(payload)
    assert websocket.mask(masked, key) == payload


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (5, "8105"),
        (125, "817d"),
        (126, "817e007e"),
        # RFC 6455, 5.7: 256 bytes in a 16-bit length, 64 KiB in a 64-bit one.
        (256, "817e0100"),
        (65535, "817effff"),
        (65536, "817f0000000000010000"),
    ],
)
def test_a_frame_has_the_shortest_length_and_arrives_in_any_pieces(size: int, header: str) -> None:
    payload = b"x" * size
    frame = websocket.server_frame(payload)
    assert frame == bytes.fromhex(header) + payload
    after = websocket.server_frame(b"next")
    data = b"junk" + frame + after
    # Every cut short of the frame's end, inside its header or its payload.
    cuts = range(4, len(frame) + 4) if size < 1000 else [4, 5, 6, 9, 12, len(frame) + 3]
    for cut in cuts:
        assert websocket.parse_frame(data[:cut], 4) is None
    first, parsed, end = websocket.parse_frame(data, 4) or (0, b"", 0)
    assert (first, parsed, end) == (0x81, payload, 4 + len(frame))
    assert websocket.parse_frame(data, end) == (0x81, b"next", len(data))


def test_a_client_frame_has_the_mask_bit_and_the_shortest_length() -> None:
    lengths = [
        (125, 0xFD, b""),
        (126, 0xFE, bytes.fromhex("007e")),
        (70000, 0xFF, bytes.fromhex("0000000000011170")),
    ]
    for size, second, extended in lengths:
        frame = websocket.client_frame(b"y" * size, key=b"\x00\x00\x00\x00")
        assert frame[: 2 + len(extended)] == bytes((0x81, second)) + extended
        assert frame[2 + len(extended) + 4 :] == b"y" * size


def test_a_masked_frame_from_the_server_is_an_error() -> None:
    with pytest.raises(websocket.ProtocolError, match="masked frame"):
        websocket.parse_frame(websocket.client_frame(b"hi"))


def test_a_close_frame_says_its_code_and_reason() -> None:
    assert websocket.close_reason(b"\x03\xefbad text") == "code 1007 (bad text)"
    assert websocket.close_reason(b"\x03\xe8") == "code 1000"
    assert websocket.close_reason(b"") == "no status code"


# The generator's WebSocket users, fed frames by hand.


@pytest.fixture
def load() -> Iterator[ChatLoad]:
    generator = ChatLoad(
        chatload.parse_arguments(
            ["--port", "1", "--web-port", "2", "--users", "4", "--websocket-share", "0.5"]
        )
    )
    yield generator
    generator.close()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def counting_user(
    load: ChatLoad, sock: socket.socket, observer: bool, sender: bool = False, parses: bool = False
) -> User:
    """A WebSocket user of load that has just settled, as user 3."""
    user = User(3, sock, observer=observer, sender=sender, websocket_user=True)
    user.parses = observer or parses
    load.by_fd[user.fd] = user
    load.settled_user(user)
    return user


def relayed(sender: int, sequence: int) -> bytes:
    """A load line as labchat relays it, as the frame a WebSocket user receives."""
    return websocket.server_frame(b"<u%05d> m %d %d 1 xxxxxxxxxx" % (sender, sender, sequence))


def feed(load: ChatLoad, user: User, data: bytes, piece: int) -> None:
    for start in range(0, len(data), piece):
        load.read_frames(user, data[start : start + piece])


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 1000])
def test_a_websocket_observer_reads_frames_in_any_pieces_and_checks_the_order(
    load: ChatLoad, pair: tuple[socket.socket, socket.socket], piece: int
) -> None:
    user = counting_user(load, pair[0], observer=True)
    stream = b"".join(relayed(sender, n) for n in range(3) for sender in (0, 2))
    feed(load, user, stream, piece)
    assert user.received == 6
    assert user.heard == {0: 2, 2: 2}
    assert len(load.websocket_latencies) == 6 and not load.latencies
    with pytest.raises(BenchmarkFailed, match="received line 4 of u00000 where line 3"):
        feed(load, user, relayed(0, 4), piece)


@pytest.mark.parametrize("piece", [1, 2, 5, 1000])
def test_a_websocket_user_that_counts_counts_frame_starts_and_finds_its_own_lines(
    load: ChatLoad, pair: tuple[socket.socket, socket.socket], piece: int
) -> None:
    counter = counting_user(load, pair[0], observer=False, sender=True)
    counter.in_flight = 4
    stream = b"".join(relayed(sender, n) for n in range(4) for sender in (0, 3))
    feed(load, counter, stream, piece)
    assert (counter.received, counter.in_flight) == (8, 0)


@pytest.mark.parametrize("piece", [1, 2, 3, 13, 1000])
def test_a_user_that_counts_frame_starts_leaves_a_ping_out_and_answers_it(
    load: ChatLoad, pair: tuple[socket.socket, socket.socket], piece: int
) -> None:
    counter = counting_user(load, pair[0], observer=False)
    # labchat's pings carry a time and a number: any bytes, 0x81 and 0x89 among them.
    ping = websocket.server_frame(b"\x81\x89\x81\x00" * 3, websocket.PING)
    stream = relayed(0, 0) + ping + relayed(0, 1) + ping + ping + relayed(2, 0)
    feed(load, counter, stream, piece)
    assert (counter.received, counter.control) == (3, b"")
    pongs = pair[1].recv(1000)
    assert len(pongs) == 3 * 18
    for pong in (pongs[:18], pongs[18:36], pongs[36:]):
        assert pong[:2] == b"\x8a\x8c"
        assert websocket.mask(pong[6:], pong[2:6]) == b"\x81\x89\x81\x00" * 3


def test_a_user_settles_in_the_middle_of_a_read_and_counts_the_rest(
    load: ChatLoad, pair: tuple[socket.socket, socket.socket]
) -> None:
    user = User(3, pair[0], observer=False, sender=False, websocket_user=True)
    load.by_fd[user.fd] = user
    user.stage = "settling"
    stream = websocket.server_frame(b"* u00009 joined") + websocket.server_frame(
        b"<u00000> " + load.marker
    )
    stream += relayed(0, 0) + relayed(2, 0)
    load.read_frames(user, stream[:-3])
    assert (user.stage, user.received, load.counters) == ("counting", 2, {user.fd: user})
    load.read_frames(user, stream[-3:])
    assert user.received == 2


def test_frames_too_long_to_count_by_their_first_bytes_are_parsed(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    arguments = ["--port", "1", "--web-port", "2", "--websocket-share", "1", "--line-bytes", "200"]
    load = ChatLoad(chatload.parse_arguments(arguments))
    try:
        assert not load.short_frames
        user = counting_user(load, pair[0], observer=False, parses=True)
        assert load.counters == {}
        # A 16-bit length whose bytes hold 0x81: counting them would count it twice.
        text = b"<u00000> m 0 0 1 "
        long_line = websocket.server_frame(text + b"x" * (0x181 - len(text)))
        assert long_line[2:4] == b"\x01\x81"
        feed(load, user, long_line * 2, 100)
        assert user.received == 2
    finally:
        load.close()


def test_a_ping_is_answered_with_a_masked_pong(
    load: ChatLoad, pair: tuple[socket.socket, socket.socket]
) -> None:
    user = counting_user(load, pair[0], observer=True)
    load.read_frames(user, websocket.server_frame(b"are you there", websocket.PING))
    pong = pair[1].recv(100)
    assert pong[0] == 0x8A and pong[1] == 0x80 | 13
    assert websocket.mask(pong[6:], pong[2:6]) == b"are you there"


@pytest.mark.parametrize(
    ("frame", "complaint"),
    [
        (
            websocket.server_frame(b"\x03\xefbad", websocket.CLOSE),
            "the server closed u00003's WebSocket in the counting stage (code 1007 (bad))",
        ),
        (websocket.server_frame(b"<u00000> m 0 0 1 x\r\n"), "a frame with a line ending in it"),
        (websocket.server_frame(b"\x00", websocket.BINARY), "not a whole text frame (0x82)"),
        (b"\x01\x05hello", "not a whole text frame (0x01)"),
        (b"\xc1\x05hello", "reserved bits set (0xc1)"),
    ],
)
def test_a_frame_labchat_never_sends_ends_the_run(
    load: ChatLoad, pair: tuple[socket.socket, socket.socket], frame: bytes, complaint: str
) -> None:
    user = counting_user(load, pair[0], observer=True)
    with pytest.raises(BenchmarkFailed) as failed:
        load.read_frames(user, frame)
    assert complaint in str(failed.value)


def test_the_websocket_users_are_a_share_of_every_kind_spread_over_the_room() -> None:
    load = ChatLoad(
        chatload.parse_arguments(
            ["--port", "1", "--web-port", "2", "--users", "100", "--websocket-share", "0.5"]
        )
    )
    load.close()
    chosen = load.websocket_indexes
    assert len(chosen) == 50
    assert len(chosen & load.sender_indexes) == 5
    assert len(chosen & load.observer_indexes) == 4
    # Early, middle and late in the join order.
    assert min(chosen) < 10 and max(chosen) > 90
    assert chatload.websocket_users(10, 0.0, {0}, {1}) == set()
    assert chatload.websocket_users(10, 1.0, {0}, {1}) == set(range(10))


def test_a_share_needs_the_web_port() -> None:
    done = generate("chatload", "--port", "1", "--websocket-share", "0.5")
    assert done.returncode == 2
    assert "--websocket-share needs the server's --web-port" in done.stderr


# Against the real labchat --web.


def web_labchat(servers: Start, *options: str) -> tuple[ServerProcess, int, int]:
    """Start labchat with its web port on free ports; return it, its chat port and web port."""
    server = servers(
        "labchat", "--port", LOOPBACK_TCP, "--web", LOOPBACK_TCP, "--rate", "0", *options
    )
    web = int(server.wait_for(r"labchat web listening on TCP \S+:(\d+)$").group(1))
    port = int(server.wait_for(r"labchat listening on TCP \S+:(\d+)$").group(1))
    return server, port, web


def mixed_load(server: ServerProcess, port: int, web: int, *extra: str) -> dict[str, Any]:
    return measured(
        "chatload", "--port", str(port), "--web-port", str(web),
        "--server-pid", str(server.process.pid), "--users", str(USERS), "--senders", "2",
        "--observers", "2", "--seconds", "0.3", *extra,
    )  # fmt: skip


def test_chatload_measures_a_room_of_tcp_and_websocket_users(servers: Start) -> None:
    server, port, web = web_labchat(servers, "--quiet")
    figures = mixed_load(server, port, web, "--websocket-share", "0.5")
    assert figures["websocket_users"] == USERS // 2
    assert figures["lines_sent"] > 0
    assert figures["deliveries"] == figures["lines_sent"] * USERS
    assert figures["websocket_deliveries"] == figures["lines_sent"] * USERS // 2
    assert (figures["lost"], figures["duplicated"]) == (0, 0)
    # One observer of each kind, each timing every line.
    assert figures["websocket_latency_samples"] == figures["lines_sent"]
    assert figures["latency_samples"] == 2 * figures["lines_sent"]
    assert 0 < figures["websocket_latency_p50_ms"] <= figures["websocket_latency_p99_ms"]
    assert 0 < figures["tcp_latency_p50_ms"] <= figures["tcp_latency_p99_ms"]


def test_chatload_measures_a_room_of_websocket_users_with_long_lines(servers: Start) -> None:
    # 300-byte lines: frames with a 16-bit length, which every WebSocket user parses.
    server, port, web = web_labchat(servers, "--quiet")
    figures = mixed_load(
        server, port, web, "--websocket-share", "1", "--line-bytes", "300", "--lines", "20"
    )
    assert figures["websocket_users"] == USERS
    assert (figures["lines_sent"], figures["deliveries"]) == (40, 40 * USERS)
    assert figures["websocket_deliveries"] == 40 * USERS
    assert figures["lost"] == 0


def test_chatload_at_a_path_without_a_websocket_says_what_it_was_answered(
    servers: Start,
) -> None:
    server, port, web = web_labchat(servers, "--quiet")
    result = generate(
        "chatload", "--port", str(port), "--web-port", str(web), "--web-path", "/nothing",
        "--users", "1", "--websocket-share", "1",
    )  # fmt: skip
    assert_failed(
        result, "u00000's WebSocket: the handshake was answered 'HTTP/1.1 404 Not Found', not 101"
    )


def test_chatload_at_a_closed_web_port_fails_with_one_line(closed_tcp_port: int) -> None:
    result = generate(
        "chatload", "--port", "1", "--web-port", str(closed_tcp_port), "--users", "1",
        "--websocket-share", "1",
    )  # fmt: skip
    assert_failed(
        result, f"connection refused: nothing listens on ws://127.0.0.1:{closed_tcp_port}/ws"
    )


# The runner's figures of the mixed room.


def rounds(server: str, cpu: list[float], **figures: Any) -> list[dict[str, Any]]:
    return [
        {
            "server": server, "users": 100, "round": number, "server_cpu_us_per_delivery": cost,
            "deliveries_per_second": 1000.0, "latency_p50_ms": 1.0, "latency_p99_ms": 2.0,
            "deliveries": 100, **figures,
        }  # fmt: skip
        for number, cost in enumerate(cpu)
    ]


def test_the_websocket_cost_is_the_median_of_the_per_round_ratios_and_its_derived_share() -> None:
    mixed_figures = {
        "websocket_deliveries": 50, "tcp_latency_p99_ms": 2.0, "websocket_latency_p99_ms": 3.0
    }  # fmt: skip
    chat = {
        ("labchat", 100): rounds("labchat", [1.0, 1.0, 2.0]),
        (run.MIXED, 100): rounds(run.MIXED, [1.2, 3.0, 2.8], **mixed_figures),
    }
    cost = run.websocket_cost(chat, 100)
    assert cost is not None
    # Round by round: 1.2, 3.0, 1.4 -> median 1.4, not 2.8 / 1.0.
    assert cost["ratio"] == pytest.approx(1.4)
    # A WebSocket delivery alone: (1.2 - 0.5) / 0.5, (3 - 0.5) / 0.5, (2.8 - 1) / 0.5.
    assert cost["websocket_cpu_us"] == pytest.approx(3.6)
    assert cost["websocket_ratio"] == pytest.approx(1.8)
    target = run.websocket_target(chat, 100)
    assert (target.ratio, target.met()) == (pytest.approx(1.4), True)
    assert target.row().startswith("chat CPU per delivery, labchat-mixed / labchat, 100 users")
    assert target.row().endswith("1.40  met")
    assert run.websocket_target(chat, 1000).met() is None
    section = "\n".join(run.websocket_section(chat, [100, 1000]))
    assert [line.split()[0] for line in section.splitlines()[3:4]] == ["100"]
    assert "\n  1000 " not in section
    assert run.websocket_cost(chat, 1000) is None
    assert run.websocket_section({}, [100]) == []


def test_an_observer_splits_short_text_frames_as_a_tcp_one_splits_lines() -> None:
    one, empty = websocket.server_frame(b"<u00001> m 1 2 3"), websocket.server_frame(b"")
    assert chatload.split_short_frames(one + empty + one[:3]) == (
        [b"<u00001> m 1 2 3", b""],
        one[:3],
    )
    assert chatload.split_short_frames(b"") == ([], b"")
    assert chatload.split_short_frames(one[:1]) == ([], one[:1])


@pytest.mark.parametrize(
    "data",
    [
        websocket.server_frame(b"hi") + websocket.server_frame(b"\x81\x81", websocket.PING),
        websocket.server_frame(b"a\r\nb"),
        websocket.server_frame(b"x" * 200),
        b"\x01" + websocket.server_frame(b"hi"),
        websocket.server_frame(b"hi")[:-1] + websocket.server_frame(b"hi"),
    ],
)
def test_anything_but_short_text_frames_is_left_to_the_full_parse(data: bytes) -> None:
    assert chatload.split_short_frames(data) is None
