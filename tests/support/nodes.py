"""Several labchat nodes sharing one Redis (--redis), and a gate that cuts one node off it."""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from support.chat import PROMPT, ChatUser, wait_until
from support.processes import DEADLINE, LOOPBACK_TCP, TCP_LISTENING, ServerProcess

# What a node logs once it has registered with Redis: from then on it takes logins.
IN_ROOM = r"In room redis://"


@dataclass
class Node:
    """One labchat process of a room spread over Redis, and the port its users connect to."""

    server: ServerProcess
    port: int


def start_nodes(
    servers: Callable[..., ServerProcess],
    redis_urls: list[str],
    *options: str,
    in_room: bool = True,
) -> list[Node]:
    """Start a labchat node for each of redis_urls, on free ports of 127.0.0.1, all given options.

    They start together, and this returns once each listens and, if in_room,
    has registered with Redis (so takes logins). servers is the conftest fixture.
    """
    started = [
        servers("labchat", "--port", LOOPBACK_TCP, "--redis", url, *options) for url in redis_urls
    ]
    nodes = []
    for server in started:
        port = int(server.wait_for(TCP_LISTENING).group(1))
        server.wait_for(rf"labchat listening on TCP 127\.0\.0\.1:{port}$")
        if in_room:
            server.wait_for(IN_ROOM)
        nodes.append(Node(server, port))
    return nodes


def log_in_all(users: list[ChatUser], names: list[str]) -> list[str]:
    """Send each user's name once all have the prompt, and return their first answers.

    The logins go out together, without waiting for one another.
    """
    wait_until(users, lambda user: len(user.lines) >= 1)
    for user, name in zip(users, names, strict=True):
        assert user.lines == [PROMPT], user
        user.seen = 1
        user.name = name
        user.send(name)
    wait_until(users, lambda user: len(user.lines) >= 2)
    answers = [user.lines[1] for user in users]
    for user in users:
        user.seen = 2
    return answers


class RedisGate:
    """A TCP relay on a free port of 127.0.0.1 to a Redis, that the test can close and reopen.

    A node given gate.url instead of the Redis's own reaches the same Redis
    while the gate is open. close() cuts every connection through it, as a
    network that drops the node would; a connection made while it is closed
    is held, unanswered, and goes through the moment open() is called. So a
    node kept out comes back as soon as the test lets it, not at its next try.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._open = True
        self._stopping = False
        # Each relayed socket, to the socket it relays to; and those held.
        self._peers: dict[socket.socket, socket.socket] = {}
        self._held: list[socket.socket] = []
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._wake_read, self._wake_write = socket.socketpair()
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The Redis behind the gate, as a node's --redis takes it."""
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        """Cut every connection through the gate, and hold new ones until open()."""
        self._set(is_open=False)

    def open(self) -> None:
        """Let the connections held, and new ones, through."""
        self._set(is_open=True)

    def stop(self) -> None:
        """Cut everything and stop relaying, for good."""
        self._set(is_open=False, stopping=True)
        self._thread.join(DEADLINE)
        self._selector.close()
        for sock in (self._listener, self._wake_read, self._wake_write):
            sock.close()

    def _set(self, is_open: bool, stopping: bool = False) -> None:
        with self._lock:
            self._open, self._stopping = is_open, stopping
        # Wakes the relaying thread, which cuts or lets through at once.
        self._wake_write.send(b"x")

    def _run(self) -> None:
        while True:
            with self._lock:
                stopping, is_open = self._stopping, self._open
            if stopping:
                self._cut_all()
                for client in self._held:
                    client.close()
                return
            if is_open:
                held, self._held = self._held, []
                for client in held:
                    self._pass(client)
            else:
                self._cut_all()
            for key, _ in self._selector.select():
                sock = key.fileobj
                if sock is self._wake_read:
                    self._wake_read.recv(4096)
                elif sock is self._listener:
                    self._accept()
                else:
                    assert isinstance(sock, socket.socket)
                    self._relay(sock)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        # As the gate is now, not as it was when this turn began: once close()
        # has returned, nothing new goes through.
        with self._lock:
            is_open = self._open
        if is_open:
            self._pass(client)
        else:
            self._held.append(client)

    def _pass(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=DEADLINE)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._peers[client], self._peers[upstream] = upstream, client
        self._selector.register(client, selectors.EVENT_READ)
        self._selector.register(upstream, selectors.EVENT_READ)

    def _relay(self, sock: socket.socket) -> None:
        peer = self._peers.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(256 * 1024)
            if data:
                peer.sendall(data)
                return
        except OSError:
            pass
        # Either end gone: both go, as one broken link.
        self._cut(sock)

    def _cut(self, sock: socket.socket) -> None:
        peer = self._peers.pop(sock)
        self._peers.pop(peer, None)
        for each in (sock, peer):
            self._selector.unregister(each)
            each.close()

    def _cut_all(self) -> None:
        while self._peers:
            self._cut(next(iter(self._peers)))
