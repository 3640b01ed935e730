"""Talking to a real labchat: raw-socket users read with deadlines, and the client at a terminal."""

from __future__ import annotations

import selectors
import socket
import ssl
import time
from collections.abc import Callable, Iterable

import pexpect

from support.processes import DEADLINE, LABPROTO, ServerProcess, child_environment, tcp_server

PROMPT = "Welcome to labchat! Please enter your name:"


class ChatUser:
    """One connection to labchat: lines out, and every line the server sent, read with a deadline.

    lines holds every whole line received so far, without its CRLF; the
    read methods hand them out in order from the cursor ``seen`` on.
    """

    def __init__(self, sock: socket.socket, name: str = "") -> None:
        self.sock = sock
        self.name = name
        self.lines: list[str] = []
        self.seen = 0
        # The server closed the connection (EOF or reset); nothing more will come.
        self.ended = False
        # It did so by a reset, dropping what it had not sent yet.
        self.reset = False
        self._partial = b""

    def __repr__(self) -> str:
        return f"<ChatUser {self.name or '(not logged in)'}: last lines {self.lines[-5:]!r}>"

    def send(self, *lines: str) -> None:
        """Send lines, each ended by LF."""
        self.sock.sendall("".join(line + "\n" for line in lines).encode("utf-8"))

    def receive(self) -> None:
        """Take in what one recv() returns; call it only when the socket is readable."""
        try:
            data = self.sock.recv(256 * 1024)
            # A TLS socket hands out one record at a time, and select() does
            # not see the rest that it has already read and decrypted.
            while isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
                data += self.sock.recv(self.sock.pending())
        except (ConnectionResetError, ssl.SSLEOFError):
            data = b""
            self.reset = True
        if not data:
            self.ended = True
            return
        *whole, self._partial = (self._partial + data).split(b"\r\n")
        self.lines.extend(line.decode("utf-8") for line in whole)

    def wait(self, done: Callable[[ChatUser], bool]) -> None:
        """Read until done(self) holds."""
        wait_until([self], done)

    def next_lines(self, count: int) -> list[str]:
        """The next count lines from the server."""
        self.wait(lambda user: len(user.lines) >= user.seen + count)
        taken = self.lines[self.seen : self.seen + count]
        self.seen += count
        return taken

    def expect(self, *lines: str) -> None:
        """Assert that the next lines from the server are exactly these."""
        assert self.next_lines(len(lines)) == list(lines)

    def lines_through(self, last: str) -> list[str]:
        """The lines from the server up to and including the next one equal to last."""
        self.wait(lambda user: last in user.lines[user.seen :])
        end = self.lines.index(last, self.seen) + 1
        taken = self.lines[self.seen : end]
        self.seen = end
        return taken

    def rest(self) -> list[str]:
        """Every line left before the server closes the connection, which it must do cleanly."""
        self.wait(lambda user: user.ended)
        assert not self.reset, "the server reset the connection"
        assert self._partial == b"", f"an unfinished last line: {self._partial!r}"
        taken = self.lines[self.seen :]
        self.seen = len(self.lines)
        return taken

    def log_in(self, name: str) -> str:
        """Answer the prompt with name and return the welcome line."""
        self.expect(PROMPT)
        self.send(name)
        self.name = name
        [welcome] = self.next_lines(1)
        assert welcome.startswith(f"Welcome {name}! "), welcome
        return welcome


def wait_until(
    users: Iterable[ChatUser], done: Callable[[ChatUser], bool], deadline: float = DEADLINE
) -> None:
    """Read from every user's socket as data comes, until done holds for each of them."""
    give_up = time.monotonic() + deadline
    waiting = {user for user in users if not done(user)}
    with selectors.DefaultSelector() as selector:
        for user in waiting:
            selector.register(user.sock, selectors.EVENT_READ, user)
        while waiting:
            left = give_up - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{len(waiting)} users still waiting, e.g. {next(iter(waiting))!r}"
                )
            for key, _ in selector.select(left):
                user = key.data
                user.receive()
                if done(user):
                    selector.unregister(user.sock)
                    waiting.discard(user)
                elif user.ended:
                    raise AssertionError(f"the server closed the connection of {user!r}")


class ChatConnections:
    """Connections to labchat servers, opened by a test and all closed by close()."""

    def __init__(self) -> None:
        self.opened: list[ChatUser] = []

    def open(
        self, port: int, receive_buffer: int | None = None, tls: ssl.SSLContext | None = None
    ) -> ChatUser:
        """A new connection to the server on port of 127.0.0.1, TLS if given a context."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            # Before connect(), so that the window the server sees is small from the start.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        # Each line goes out at once, as from a person typing: without this, a
        # client that sends again before its last send is acknowledged waits
        # for the server's delayed ACK (40 ms on Linux), over and over.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(DEADLINE)
        sock.connect(("127.0.0.1", port))
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
        self.opened.append(ChatUser(sock))
        return self.opened[-1]

    def close(self) -> None:
        """Close every connection opened."""
        for user in self.opened:
            user.sock.close()


# The conftest fixture connect: opens a ChatUser on a port (ChatConnections.open).
Connect = Callable[..., "ChatUser"]


def chat_server(servers: Callable[..., ServerProcess], *options: str) -> tuple[ServerProcess, int]:
    """Start labchat with options on a free port of 127.0.0.1 (servers: the conftest fixture)."""
    server, port = tcp_server(servers, "labchat", *options)
    server.wait_for(rf"labchat listening on TCP 127\.0\.0\.1:{port}(?: \(TLS\))?$")
    return server, port


def chat_at_a_terminal(port: int, *arguments: str) -> pexpect.spawn:
    """``labproto chat`` on a pseudo-terminal, as a person would run it."""
    return pexpect.spawn(
        LABPROTO,
        ["chat", "--port", str(port), *arguments],
        env={**child_environment(), "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"},
        encoding="utf-8",
        timeout=DEADLINE,
        dimensions=(24, 80),
    )


FILLER = "x" * 1000
# Messages sent at once; the talker sends more only once the readers have
# all but the last WINDOW of them, so that the few dozen KiB in flight always
# fit the kernel's buffers: at --sendq 64K, a reader that kept the server
# waiting for a moment would be cut off too.
WINDOW = 32


def more_lines_than(count: int) -> Callable[[ChatUser], bool]:
    """Whether a user has received more than count lines past its cursor."""
    return lambda user: len(user.lines) - user.seen > count


def flood(
    talker: ChatUser,
    readers: list[ChatUser],
    count: int,
    after_each_window: Callable[[], object] = lambda: None,
) -> list[str]:
    """Have talker send count numbered messages of about 1 KiB, as fast as readers take them.

    readers, talker among them, read every line from their cursor on; the
    lines every one of them must have heard at the end are returned.
    """
    for first in range(0, count, WINDOW):
        talker.send(*(f"{number:06d} {FILLER}" for number in range(first, first + WINDOW)))
        # All but the last window, and maybe one line that is not a message.
        wait_until(readers, more_lines_than(first))
        after_each_window()
    expected = [f"<{talker.name}> {number:06d} {FILLER}" for number in range(count)]
    wait_until(readers, lambda user: expected[-1] in user.lines[-2:])
    return expected
