"""labchat --web as a real twistd process: autobahn's client on /ws, and /metrics scraped."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from prometheus_client.parser import text_string_to_metric_families
from support.certificates import make_certificate, tls_endpoint
from support.chat import PROMPT, ChatUser, Connect, chat_server, flood
from support.nodes import IN_ROOM, start_nodes
from support.processes import DEADLINE, LOOPBACK_TCP, TWISTD, ServerProcess
from support.redis import RedisServer
from support.websocket import (
    CLOSE,
    REJECTED_FRAMES,
    TEXT,
    RawWebSocket,
    client_frame,
    close_code,
    frame_header,
    handshake,
    server_frames,
)
from twisted.internet import defer, endpoints, reactor, threads

Servers = Callable[..., ServerProcess]
WEB_LISTENING = r"labchat web listening on TCP 127\.0\.0\.1:(\d+)$"
CHAT_LISTENING = r"labchat listening on TCP 127\.0\.0\.1:(\d+)$"


def web_chat(servers: Servers, *options: str) -> tuple[ServerProcess, int, int]:
    """A labchat with --web on free ports of 127.0.0.1: the server, its chat port, its web port."""
    server = servers("labchat", "--port", LOOPBACK_TCP, "--web", LOOPBACK_TCP, *options)
    port = int(server.wait_for(CHAT_LISTENING).group(1))
    return server, port, int(server.wait_for(WEB_LISTENING).group(1))


class Browserless(WebSocketClientProtocol):
    """An autobahn WebSocket client that queues what it receives for the test to await."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: defer.DeferredQueue[tuple[str, bool]] = defer.DeferredQueue()
        self.closed: defer.Deferred[tuple[int | None, str | None]] = defer.Deferred()
        # Every text frame received, in order, for counting.
        self.received: list[str] = []

    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N803
        text = payload.decode("utf-8")
        self.received.append(text)
        self.messages.put((text, isBinary))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:  # noqa: N803
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(reason))
        elif not self.closed.called:
            self.closed.callback((code, reason))

    async def next_line(self) -> str:
        """The next text frame the server sent, which must be text."""
        text, binary = await self.messages.get()
        assert not binary
        return text

    async def expect(self, *lines: str) -> None:
        assert [await self.next_line() for _ in lines] == list(lines)

    def send(self, text: str) -> None:
        self.sendMessage(text.encode("utf-8"))


class WebSockets:
    """The WebSockets a test opens, all dropped when it ends."""

    def __init__(self) -> None:
        self.opened: list[Browserless] = []

    async def open(self, port: int, origin: str | None = None) -> Browserless:
        """A WebSocket to /ws of 127.0.0.1:port, open; it fails with the server's refusal."""
        factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}/ws", origin=origin)
        factory.protocol = Browserless
        factory.opened = defer.Deferred()
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        protocol = await endpoint.connect(factory)
        self.opened.append(protocol)
        opened: Browserless = await factory.opened
        return opened

    def drop(self) -> None:
        for protocol in self.opened:
            if protocol.transport is not None:
                protocol.transport.abortConnection()


@pytest_twisted.async_yield_fixture
async def websockets() -> AsyncIterator[WebSockets]:
    """Open WebSockets for a test (WebSockets.open); every one dropped after it."""
    opened = WebSockets()
    yield opened
    opened.drop()


async def log_in(user: ChatUser, name: str) -> str:
    """Log a raw TCP user in without blocking the reactor; return its welcome line."""
    return await threads.deferToThread(user.log_in, name)


async def expect(user: ChatUser, *lines: str) -> None:
    await threads.deferToThread(user.expect, *lines)


@pytest_twisted.ensureDeferred
async def test_the_login_dialogue_and_a_broadcast_are_the_tcp_ones_frame_by_frame(
    servers: Servers, connect: Connect, websockets: WebSockets
) -> None:
    _, port, web_port = web_chat(servers)
    alice = await websockets.open(web_port)
    await alice.expect(PROMPT)
    alice.send("alice")
    await alice.expect("Welcome alice! 1 user online: alice")
    bob = connect(port)
    assert await log_in(bob, "bob") == "Welcome bob! 2 users online: alice, bob"
    await alice.expect("* bob joined")
    bob.send("hello <b>alice</b>")
    await alice.expect("<bob> hello <b>alice</b>")
    alice.send("hi bob")
    await expect(bob, "<bob> hello <b>alice</b>", "<alice> hi bob")
    await alice.expect("<alice> hi bob")
    alice.send("/quit")
    await alice.expect("Bye alice!")
    assert await alice.closed == (1000, None)
    await expect(bob, "* alice left (quit)")


@pytest_twisted.ensureDeferred
async def test_max_per_host_counts_the_websocket_and_the_tcp_door_together(
    servers: Servers, connect: Connect, websockets: WebSockets
) -> None:
    _, port, web_port = web_chat(servers, "--max-per-host", "2")
    alice = await websockets.open(web_port)
    await alice.expect(PROMPT)
    await expect(connect(port), PROMPT)
    refused = await websockets.open(web_port)
    await refused.expect("ERROR too many connections from your address")
    assert (await refused.closed)[0] == 1000
    assert await threads.deferToThread(connect(port).rest) == [
        "ERROR too many connections from your address"
    ]


@pytest_twisted.ensureDeferred
async def test_a_foreign_origin_is_refused_with_403(
    servers: Servers, websockets: WebSockets
) -> None:
    server, _, web_port = web_chat(servers)
    with pytest.raises(ConnectionError, match="403"):
        await websockets.open(web_port, origin="http://evil.example")
    server.wait_for(
        r"Refused a WebSocket from \('127\.0\.0\.1', \d+\): Origin http://evil\.example"
        r" is not the page's own origin$"
    )


def test_star_admits_a_page_opened_from_a_file(servers: Servers) -> None:
    _, _, web_port = web_chat(servers, "--web-origin", "*")
    for origin in ("null", "file://"):
        browser = RawWebSocket(web_port, origin=origin)
        try:
            assert browser.response.startswith(b"HTTP/1.1 101 "), browser.response
            assert browser.next_text() == PROMPT
        finally:
            browser.close()


def test_by_default_a_page_opened_from_a_file_is_refused_with_403(servers: Servers) -> None:
    server, _, web_port = web_chat(servers)
    browser = RawWebSocket(web_port, origin="null")
    browser.close()
    assert browser.response.startswith(b"HTTP/1.1 403 "), browser.response
    server.wait_for(
        r"Refused a WebSocket from \('127\.0\.0\.1', \d+\): Origin null"
        r" is not the page's own origin$"
    )


@pytest_twisted.ensureDeferred
async def test_the_pages_own_origin_is_admitted(servers: Servers, websockets: WebSockets) -> None:
    _, _, web_port = web_chat(servers)
    alice = await websockets.open(web_port, origin=f"http://127.0.0.1:{web_port}")
    await alice.expect(PROMPT)


@pytest_twisted.ensureDeferred
async def test_an_oversize_frame_is_refused_and_the_websocket_goes_on(
    servers: Servers, websockets: WebSockets
) -> None:
    _, _, web_port = web_chat(servers, "--max-line", "100")
    alice = await websockets.open(web_port)
    await alice.expect(PROMPT)
    alice.send("alice")
    await alice.expect("Welcome alice! 1 user online: alice")
    alice.send("x" * 101)
    await alice.expect("ERROR line too long (max 100 bytes)")
    alice.send("x" * 100)
    await alice.expect("<alice> " + "x" * 100)


@pytest_twisted.ensureDeferred
async def test_a_binary_frame_closes_the_websocket_with_1003(
    servers: Servers, websockets: WebSockets
) -> None:
    _, _, web_port = web_chat(servers)
    alice = await websockets.open(web_port)
    await alice.expect(PROMPT)
    alice.sendMessage(b"alice", isBinary=True)
    code, _ = await alice.closed
    assert code == 1003


def test_a_frame_the_server_rejects_is_never_relayed_nor_logged(
    servers: Servers, connect: Connect
) -> None:
    server, port, web_port = web_chat(servers)
    bob = connect(port)
    bob.log_in("bob")
    for number, (frame, code) in enumerate(REJECTED_FRAMES.values()):
        name = f"forger{number}"
        forger = RawWebSocket(web_port)
        try:
            assert forger.next_text() == PROMPT
            forger.send(client_frame(name.encode()))
            assert forger.next_text().startswith(f"Welcome {name}! ")
            forger.send(frame)
            opcode, payload = forger.next_frame()
            assert (opcode, close_code(payload)) == (CLOSE, code)
        finally:
            forger.close()
        # bob's next lines: the forger came and went, and said nothing.
        bob.expect(f"* {name} joined", f"* {name} left (connection lost)")
        server.wait_for(rf"\] {name} left \(connection lost\)$")
    assert not [line for line in server.lines if "<forger" in line]


def test_a_frame_announcing_2_to_the_62_bytes_ends_the_connection_at_once(
    servers: Servers,
) -> None:
    _, _, web_port = web_chat(servers)
    greedy = RawWebSocket(web_port)
    try:
        assert greedy.next_text() == PROMPT
        greedy.send(frame_header(1 << 62))
        # No byte of the frame follows, and the server does not wait for one.
        assert greedy.next_text() == "ERROR line too long (max 1024 bytes)"
        opcode, payload = greedy.next_frame()
        assert (opcode, close_code(payload)) == (CLOSE, 1009)
        assert greedy.sock.recv(1) == b""
    finally:
        greedy.close()


def test_a_plain_http_request_to_ws_is_told_to_upgrade(servers: Servers) -> None:
    _, _, web_port = web_chat(servers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{web_port}/ws", timeout=10)
    assert refused.value.code == 426
    assert refused.value.headers["Upgrade"] == "websocket"
    assert b"This is the WebSocket endpoint of labchat" in refused.value.read()


def http_exchange(web_port: int, request: bytes) -> bytes:
    """Send one raw HTTP request that asks to close after it, and return all the answer."""
    with socket.create_connection(("127.0.0.1", web_port), timeout=DEADLINE) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("path", "status"), [("/", 200), ("/chat.css", 200), ("/metrics", 200), ("/ws", 426)]
)
def test_head_answers_the_headers_of_get_without_a_body_or_a_warning(
    servers: Servers, path: str, status: int
) -> None:
    server, _, web_port = web_chat(servers)
    request = f"{{}} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    got = http_exchange(web_port, request.format("GET").encode())
    head = http_exchange(web_port, request.format("HEAD").encode())
    head_lines, _, body = head.partition(b"\r\n\r\n")
    assert head_lines.startswith(b"HTTP/1.1 %d " % status), head
    assert body == b""
    get_lines, _, get_body = got.partition(b"\r\n\r\n")

    def headers(lines: bytes) -> dict[bytes, bytes]:
        pairs = (line.partition(b": ") for line in lines.split(b"\r\n")[1:])
        return {name.lower(): value for name, _, value in pairs if name.lower() != b"date"}

    head_headers, get_headers = headers(head_lines), headers(get_lines)
    if path == "/metrics":
        # Its figures, and so their length, change between the two requests.
        assert int(head_headers.pop(b"content-length")) > 0
        get_headers.pop(b"content-length")
    else:
        assert get_headers[b"content-length"] == b"%d" % len(get_body)
    assert head_headers == get_headers
    # The access log's line for the HEAD comes after any warning about it.
    server.wait_for(rf'"HEAD {path} HTTP/1\.1" {status} ')
    assert not [line for line in server.lines if "I think I'll eat it" in line]


def test_the_page_is_served_with_a_policy_that_runs_only_its_own_script(servers: Servers) -> None:
    _, _, web_port = web_chat(servers)
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=10) as page:
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        html = page.read().decode()
    assert '<script src="chat.js"' in html
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/chat.js", timeout=10) as script:
        assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"


def scrape(web_port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics and read it with prometheus_client's own parser: {(name, labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=10) as page:
        text = page.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest_twisted.ensureDeferred
async def test_metrics_count_what_happened_in_a_loopback_chat(
    servers: Servers, connect: Connect, websockets: WebSockets
) -> None:
    _, port, web_port = web_chat(servers, "--burst", "2", "--rate", "0.01", "--max-users", "3")
    alice = await websockets.open(web_port)
    await alice.expect(PROMPT)
    alice.send("alice")
    await alice.expect("Welcome alice! 1 user online: alice")
    bob, carol = connect(port), connect(port)
    await log_in(bob, "bob")
    await log_in(carol, "carol")
    await alice.expect("* bob joined", "* carol joined")
    await expect(bob, "* carol joined")
    # Three lines against a burst of two: flood control drops the third.
    bob.send("one", "two", "three")
    await expect(bob, "<bob> one", "<bob> two", "ERROR slow down: message dropped")
    await expect(carol, "<bob> one", "<bob> two")
    await alice.expect("<bob> one", "<bob> two")
    alice.send("/msg carol psst")
    await alice.expect("-> *carol* psst")
    await expect(carol, "*alice* psst")
    # The room is full: the next connection is turned away.
    dave = connect(port)
    assert await threads.deferToThread(dave.rest) == ["ERROR room full"]
    carol.send("/quit")
    await expect(carol, "Bye carol!")
    bob.sock.close()
    await alice.expect("* carol left (quit)", "* bob left (connection lost)")

    figures = scrape(web_port)
    online = {
        labels: value for (name, labels), value in figures.items() if name == "labchat_users_online"
    }
    assert online == {(("transport", "tcp"),): 0, (("transport", "websocket"),): 1}
    assert figures[("labchat_logins_total", (("transport", "tcp"),))] == 2
    assert figures[("labchat_logins_total", (("transport", "websocket"),))] == 1
    # bob's two messages and alice's /msg.
    assert figures[("labchat_lines_relayed_total", ())] == 3
    assert figures[("labchat_flood_dropped_total", ())] == 1
    disconnects = {
        dict(labels)["reason"]: value
        for (name, labels), value in figures.items()
        if name == "labchat_disconnects_total"
    }
    assert disconnects == {
        "quit": 1,
        "connection_lost": 1,
        "send_queue_exceeded": 0,
        "login_timeout": 0,
        "room_full": 1,
        "too_many_from_host": 0,
        "server_shutting_down": 0,
    }
    # Every line any of the four connections received was one delivery.
    received = len(alice.received) + sum(len(user.lines) for user in (bob, carol, dave))
    assert figures[("labchat_deliveries_total", ())] == received


def wss_handshake(web_port: int, ca_file: Path, origin: str) -> tuple[bytes, ssl.SSLSocket]:
    """Open a TLS connection to the web port and send a WebSocket handshake with origin.

    Returns the server's response head and the socket, which the caller closes.
    """
    context = ssl.create_default_context(cafile=str(ca_file))
    raw = socket.create_connection(("127.0.0.1", web_port), timeout=DEADLINE)
    sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
    request, _ = handshake(host=f"127.0.0.1:{web_port}", origin=origin)
    sock.sendall(request)
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            break
        response += chunk
    return response, sock


def test_over_ssl_the_page_is_https_and_its_websocket_wss(servers: Servers, tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path)
    server = servers("labchat", "--port", LOOPBACK_TCP, "--web", tls_endpoint(certificate))
    web_port = int(server.wait_for(r"labchat web listening on TCP 127\.0\.0\.1:(\d+) \(TLS\)$")[1])
    response, sock = wss_handshake(
        web_port, certificate.certificate, f"https://127.0.0.1:{web_port}"
    )
    with sock:
        assert response.startswith(b"HTTP/1.1 101 "), response
        frames, _ = server_frames(response.partition(b"\r\n\r\n")[2] or sock.recv(4096))
        assert frames == [(TEXT, PROMPT.encode())]
    # The same page served over http would be another origin.
    response, sock = wss_handshake(
        web_port, certificate.certificate, f"http://127.0.0.1:{web_port}"
    )
    with sock:
        assert response.startswith(b"HTTP/1.1 403 "), response


def test_the_chat_port_helper_finds_the_chat_port_not_the_web_one(servers: Servers) -> None:
    server, port = chat_server(servers, "--web", LOOPBACK_TCP)
    assert port == int(server.wait_for(CHAT_LISTENING).group(1))
    assert port != int(server.wait_for(WEB_LISTENING).group(1))


def test_the_page_has_an_icon_of_its_own(servers: Servers) -> None:
    _, _, web_port = web_chat(servers)
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/favicon.svg", timeout=10) as icon:
        assert icon.headers["Content-Type"] == "image/svg+xml"
        assert icon.read().startswith(b"<svg ")


def test_a_websocket_that_stops_reading_is_cut_off_past_sendq(
    servers: Servers, connect: Connect
) -> None:
    server, port, web_port = web_chat(servers, "--sendq", "64K", "--rate", "0", "--quiet")
    talker = connect(port)
    talker.log_in("talker")
    # A browser tab that stops reading, behind a small receive buffer.
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.settimeout(DEADLINE)
    with slow:
        slow.connect(("127.0.0.1", web_port))
        request, _ = handshake(host=f"127.0.0.1:{web_port}")
        slow.sendall(request)
        # A client waits for the server's answer before its first frame (RFC 6455, 4.1).
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += slow.recv(4096)
        assert answer.startswith(b"HTTP/1.1 101 ")
        slow.sendall(client_frame(b"slowtab"))
        talker.expect("* slowtab joined")
        # Far more than the kernel's buffers hold: the server must hold the
        # rest, up to --sendq, and then let the tab go.
        expected = flood(talker, [talker], 8 * 1024)
        assert [line for line in talker.lines if line.startswith("<")] == expected
        assert [line for line in talker.lines[talker.seen :] if not line.startswith("<")] == [
            "* slowtab left (send queue exceeded)"
        ]
        server.wait_for(r"\] slowtab left \(send queue exceeded\)$")


@pytest_twisted.ensureDeferred
async def test_a_browser_user_is_a_member_of_a_room_shared_through_redis(
    redis_server: RedisServer, servers: Servers, connect: Connect, websockets: WebSockets
) -> None:
    # redis_server is asked for first, so that the nodes stop before it.
    node_a = servers(
        "labchat", "--port", LOOPBACK_TCP, "--web", LOOPBACK_TCP, "--redis", redis_server.url
    )
    web_port = int(node_a.wait_for(WEB_LISTENING).group(1))
    node_a.wait_for(IN_ROOM)
    (node_b,) = start_nodes(servers, [redis_server.url])
    bob = connect(node_b.port)
    assert await log_in(bob, "bob") == "Welcome bob! 1 user online: bob"
    alice = await websockets.open(web_port)
    await alice.expect(PROMPT)
    alice.send("BOB")
    await alice.expect("ERROR name taken: BOB")
    alice.send("alice")
    await alice.expect("Welcome alice! 2 users online: alice, bob")
    await expect(bob, "* alice joined")
    alice.send("/msg bob psst")
    await alice.expect("-> *bob* psst")
    await expect(bob, "*alice* psst")
    bob.send("hi alice")
    await alice.expect("<bob> hi alice")
    alice.send("/quit")
    await alice.expect("Bye alice!")
    await expect(bob, "<bob> hi alice", "* alice left (quit)")


# Under prlimit, the open-file limit labchat cannot raise: a quarter of it,
# 64, is what its web port's HTTP connections may hold.
SMALL_FILE_LIMIT = 256


@pytest.mark.slow
def test_slow_requests_from_many_addresses_leave_the_chat_door_open(
    tmp_path: Path, connect: Connect
) -> None:
    server = ServerProcess(
        [
            "prlimit",
            f"--nofile={SMALL_FILE_LIMIT}:{SMALL_FILE_LIMIT}",
            TWISTD,
            "--nodaemon",
            "--pidfile=",
            "labchat",
            "--port",
            LOOPBACK_TCP,
            "--web",
            "tcp:0:interface=0.0.0.0",
            "--max-users",
            "50",
        ],
        tmp_path,
    )
    attackers: list[socket.socket] = []
    try:
        port = int(server.wait_for(CHAT_LISTENING).group(1))
        web_port = int(server.wait_for(r"labchat web listening on TCP 0\.0\.0\.0:(\d+)$")[1])
        # Twice as many unfinished requests as the process has files, from
        # twenty addresses of the loopback network (which the count in all
        # holds): each holds its connection with half a header, as a slow
        # sender would.
        for number in range(2 * SMALL_FILE_LIMIT):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            attackers.append(sock)
            sock.settimeout(DEADLINE)
            sock.bind((f"127.0.0.{2 + number % 20}", 0))
            sock.connect(("127.0.0.1", web_port))
            sock.sendall(b"GET / HTTP/1.1\r\nHo")
        # A chat user still gets in, over TCP, and the log says why.
        user = connect(port)
        user.expect(PROMPT)
        server.wait_for(r"Refused a web connection from \('127\.0\.0\.\d+', \d+\): ")
    finally:
        for sock in attackers:
            sock.close()
        server.stop()
