"""The chat load generator: N users in one room, S of them talking, everyone counting.

Drives any server that speaks the part of labchat's contract every chat
server shares: a one-line prompt, a name, a one-line welcome, and then each
message line relayed to every user, the sender included, as ``<name> text``.
A user who has its welcome must hear every message sent after it. Join
notices and other lines of the login phase are allowed and ignored.

The run, all in this one process::

    1. log in    N users connect and log in, at most --login-concurrency at once;
    2. settle    user 0 sends a marker line; once every user has received it,
                 every join notice has been delivered too (lines of one
                 connection arrive in order), and the room is quiet;
    3. load      S senders each keep at most --window lines in flight (sent,
                 not yet back at the sender) for --seconds or --lines;
    4. drain     until every user has every line sent, or nothing arrives for
                 --drain-timeout seconds: what is missing then is lost.

Deliveries per second count every line every user received in the load and
drain phases, over the time from the first send to the last delivery. The
latency of a line, from its send to its arrival, is read by --observers
users spread over the join order; a sender only looks for its own lines,
to free its window, and every other user only counts line ends: that is
what keeps the generator cheaper than the servers it measures. It uses epoll
and plain non-blocking sockets for that reason, not Twisted: each event
costs it a few microseconds of Python.

With --websocket-share, that fraction of the users (of the senders, of the
observers and of the rest alike, spread over the join order) connect to the
server's WebSocket endpoint instead (--web-port, --web-path: labchat's
``--web``), where each line is one text frame each way (benchmarks.websocket
is the client, as small as the generator needs). Such a user logs in, sends
and is counted as a TCP user is: an observer parses every frame it receives
and checks each sender's order as a TCP observer does. A user that only
counts its frames counts their first bytes instead of line ends: 0x81 (a
whole text frame) starts every frame the server sends it, and can appear
nowhere else while the frames are short (the second byte is then the length,
under 0x80) and their text is ASCII, as every line of the load is (names are
ASCII, and the server strips control characters). A ping, the one other
frame the server sends meanwhile, starts with 0x89, which is found as
cheaply; it is read apart and answered. With lines too long for short frames
(--line-bytes), every WebSocket user parses its frames.

A room may be spread over several nodes (labchat --redis): --port then
takes the port of each, separated by commas (and --web-port likewise), and
the users are dealt to the nodes in turn, the senders, the other observers
and the rest each on their own, so that every node has its share of each
kind. Every user of every node must still receive every line once, and every
observer each sender's lines in order, wherever the sender is. A node not yet
in its room answers a login with "ERROR room unavailable, try again": the
user sends its name again a moment later, until --login-timeout.

The server's CPU time and resident memory are read from /proc/PID of
--server-pid, so that only the load is counted; given several pids (the
nodes and their redis-server, say), their figures are summed, and the CPU
time of each is reported too. One JSON line is printed.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import select
import socket
import time
from collections.abc import Callable
from typing import Any

from benchmarks import websocket
from benchmarks.measure import (
    BenchmarkFailed,
    generator_parser,
    meters_for,
    numbers,
    percentile,
    raise_open_file_limit,
    report,
)

_READ_SIZE = 256 * 1024
# What ends each line a TCP user receives, and what starts each frame a
# WebSocket user receives: a counting user counts these.
_LINE_END = b"\n"
_FRAME_START = bytes((websocket.TEXT_FRAME,))
# What starts a ping from the server, and nothing else in the frames of the load.
_PING_START = bytes((websocket.FIN | websocket.PING,))
# What labchat puts before a relayed line: "<u00012> ".
_NAME_TAG_BYTES = len(b"<u00000> ")
# What a labchat node not (yet, or no longer) in its shared room answers a
# login with, and how long a user waits before it sends its name again.
_ROOM_UNAVAILABLE = b"ERROR room unavailable, try again"
_LOGIN_RETRY_SECONDS = 0.1


class User:
    """One connection of the generator, and what it has received."""

    __slots__ = (
        "index", "name", "sock", "fd", "stage", "pending", "tail", "outbox",
        "observer", "sender", "received", "in_flight", "sent", "last_line", "tag", "heard",
        "websocket", "key", "delimiter", "parses", "control", "node", "port",
    )

    def __init__(
        self, index: int, sock: socket.socket, observer: bool, sender: bool,
        websocket_user: bool = False, node: int = 0, port: int = 0,
    ) -> None:
        self.index = index
        self.name = f"u{index:05d}".encode()
        self.sock = sock
        self.fd = sock.fileno()
        # "connecting", ("handshake",) "prompt", "welcome", "settling" then "counting".
        self.stage = "connecting"
        # Bytes of a line (a frame, for a WebSocket user) not yet complete,
        # for the users that read lines.
        self.pending = b""
        # The end of the data before, for a marker split between two reads.
        self.tail = b""
        self.outbox = b""
        self.observer = observer
        self.sender = sender
        self.received = 0
        self.in_flight = 0
        self.sent = 0
        self.last_line = b""
        # An observer's last sequence number heard from each sender.
        self.heard: dict[int, int] = {}
        # What starts each of its lines as the server relays them: "<u00012> m 12 ".
        self.tag = b"<%s> m %d " % (self.name, index)
        # Whether it speaks to the WebSocket endpoint, with which handshake key.
        self.websocket = websocket_user
        self.key = websocket.new_key() if websocket_user else b""
        # What a user that only counts counts: one per line, or per frame.
        self.delimiter = _FRAME_START if websocket_user else _LINE_END
        # Whether it reads each line it receives, not only counts them: an
        # observer does, and so does a WebSocket user whose frames may be
        # too long to count by their first bytes (ChatLoad.connect says).
        self.parses = observer
        # The part read so far of a control frame (a ping), for a user that
        # counts frames by their first bytes.
        self.control = b""
        # Which of the server's nodes it is a user of (0 for a server of
        # one), at which port.
        self.node = node
        self.port = port


def split_short_frames(data: bytes) -> tuple[list[bytes], bytes] | None:
    """The payloads of the whole frames of data and the start of the next, if data holds
    nothing but short text frames of ASCII; None if it may hold anything else.

    As a TCP observer splits its lines at their ends, in one call: 0x81
    starts each such frame and appears nowhere else (see the module's
    docstring), and each frame's second byte, its length, says whether the
    split found it whole. A ping (0x89), a line ending in a frame, or a
    length that does not fit leaves the frames to be parsed one by one.
    """
    if b"\x89" in data or b"\n" in data or b"\r" in data:
        return None
    pieces = data.split(b"\x81")
    if pieces[0]:
        return None
    rest = pieces.pop()
    payloads = []
    for piece in pieces[1:]:
        if not piece or piece[0] != len(piece) - 1:
            return None
        payloads.append(piece[1:])
    if not rest and len(pieces) == 0:
        return payloads, b""
    if rest and rest[0] == len(rest) - 1:
        payloads.append(rest[1:])
        return payloads, b""
    if rest and rest[0] > 125:
        return None
    return payloads, b"\x81" + rest


class ChatLoad:
    """One run of the generator: the room, the phases and the figures."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.poller = select.epoll()
        self.users: list[User] = []
        self.by_fd: dict[int, User] = {}
        # The users that only count their lines, by file descriptor: the hot path.
        self.counters: dict[int, User] = {}
        self.meter = meters_for(options.server_pid)
        self.marker = b"settle-%d" % os.getpid()
        self.latencies: list[float] = []
        self.websocket_latencies: list[float] = []
        self.phase = "login"
        self.logging_in = 0
        self.welcomed = 0
        self.settled = 0
        self.sending = False
        self.last_delivery = 0.0
        users, senders = options.users, min(options.senders, options.users)
        # Senders and observers spread evenly over the join order, where a
        # server's loop over its users puts them early, middle and late.
        self.sender_indexes = {round(i * users / senders) for i in range(senders)}
        observers = min(options.observers, users)
        self.observer_indexes = {round(i * users / observers) for i in range(observers)}
        self.websocket_indexes = websocket_users(
            users, options.websocket_share, self.sender_indexes, self.observer_indexes
        )
        self.nodes = nodes_of_users(
            users, len(options.port), self.sender_indexes, self.observer_indexes
        )
        # Users who were told the room is unavailable: when each sends its name again.
        self.retries: list[tuple[float, User]] = []
        self.login_retries = 0
        self.line_size = options.line_bytes
        # Whether a WebSocket user that only counts may count first bytes
        # (see the module's docstring): every frame of the load is short.
        self.short_frames = (
            _NAME_TAG_BYTES + max(self.line_size - 2, len(self.marker)) <= websocket.SHORT_PAYLOAD
        )

    # The event loop.

    def wait(self, until: Any, deadline: float, what: str | Callable[[], str]) -> None:
        """Handle events until until() is true; fail with what (or what it returns, as things
        are then) if deadline passes first."""
        by_fd, counters, poll = self.by_fd, self.counters, self.poller.poll
        buffer = bytearray(_READ_SIZE)
        while not until():
            now = time.monotonic()
            if now > deadline:
                raise BenchmarkFailed(f"timed out {what() if callable(what) else what}")
            events = poll(min(0.05, deadline - now))
            for fd, event in events:
                # The hot path, inlined: a user who only counts the lines it receives.
                counter = counters.get(fd)
                if counter is not None and event == select.EPOLLIN:
                    try:
                        size = counter.sock.recv_into(buffer)
                    except BlockingIOError:
                        continue
                    except OSError:
                        size = 0
                    if size:
                        if counter.websocket and (
                            counter.control or buffer.find(_PING_START, 0, size) >= 0
                        ):
                            # A ping among the frames: read apart (count_frame_starts).
                            self.count(counter, bytes(buffer[:size]))
                        else:
                            counter.received += buffer.count(counter.delimiter, 0, size)
                        continue
                user = by_fd[fd]
                if event & select.EPOLLOUT:
                    self.flush(user)
                if event & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                    self.read(user)
            if events and self.phase == "load":
                self.last_delivery = time.monotonic()
            self.after_events()

    def after_events(self) -> None:
        """Called after each batch of events: start more logins, send more lines."""
        if self.phase == "login":
            if self.retries:
                self.retry_logins()
            while (
                len(self.users) < self.options.users
                and self.logging_in < self.options.login_concurrency
            ):
                self.connect(len(self.users))
        elif self.sending:
            self.send_lines()

    def retry_logins(self) -> None:
        """Send again the names of the users whose wait after a refusal is over."""
        now = time.monotonic()
        due = [user for when, user in self.retries if when <= now]
        if due:
            self.retries = [(when, user) for when, user in self.retries if when > now]
            for user in due:
                self.send_line(user, user.name)

    def connect(self, index: int) -> None:
        options = self.options
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        websocket_user = index in self.websocket_indexes
        node = self.nodes[index]
        port = options.web_port[node] if websocket_user else options.port[node]
        user = User(
            index, sock, index in self.observer_indexes, index in self.sender_indexes,
            websocket_user, node, port,
        )  # fmt: skip
        if user.websocket and not self.short_frames:
            user.parses = True
        self.users.append(user)
        self.by_fd[user.fd] = user
        self.logging_in += 1
        code = sock.connect_ex((options.host, port))
        if code not in (0, errno.EINPROGRESS):
            raise BenchmarkFailed(f"cannot connect to {self.where(user)}: {os.strerror(code)}")
        self.poller.register(user.fd, select.EPOLLIN)
        if user.websocket:
            # The server speaks first on TCP; on a WebSocket, the client's
            # handshake does. Sent as soon as the connection is made (write()
            # keeps it until then).
            user.stage = "handshake"
            self.write(
                user, websocket.handshake_request(options.host, port, options.web_path, user.key)
            )
        else:
            user.stage = "prompt"

    def where(self, user: User) -> str:
        options = self.options
        if user.websocket:
            return f"ws://{options.host}:{user.port}{options.web_path}"
        return f"TCP {options.host}:{user.port}"

    def read(self, user: User) -> None:
        try:
            data = user.sock.recv(_READ_SIZE)
        except BlockingIOError:
            return
        except ConnectionRefusedError:
            raise BenchmarkFailed(
                f"connection refused: nothing listens on {self.where(user)}"
            ) from None
        except OSError as e:
            raise BenchmarkFailed(f"{user.name.decode()}'s connection failed: {e}") from None
        if not data:
            raise BenchmarkFailed(
                f"the server closed {user.name.decode()}'s connection in the {user.stage} stage"
                f" after the line {user.last_line!r}"
            )
        stage = user.stage
        if user.websocket:
            self.read_frames(user, data)
        elif stage == "counting":
            self.count(user, data)
        elif stage == "settling":
            self.settle(user, data)
        else:
            self.log_in(user, data)

    def read_frames(self, user: User, data: bytes) -> None:
        """A WebSocket user's bytes: the handshake's answer, then one line per frame."""
        if user.stage == "counting" and not user.parses:
            self.count(user, data)
            return
        data = user.pending + data if user.pending else data
        if user.stage == "counting" and self.short_frames:
            split = split_short_frames(data)
            if split is not None:
                lines, user.pending = split
                self.check_lines(user, lines)
                return
        start = 0
        try:
            if user.stage == "handshake":
                frames_start = websocket.handshake_response(data, user.key)
                if frames_start is None:
                    user.pending = data
                    return
                start, user.stage = frames_start, "prompt"
            lines = []
            while True:
                if user.stage == "counting" and not user.parses:
                    # Settled in this read: the rest is counted as any later read.
                    user.pending = b""
                    self.count(user, data[start:])
                    return
                frame = websocket.parse_frame(data, start)
                if frame is None:
                    break
                first, payload, start = frame
                if first != websocket.TEXT_FRAME:
                    self.control_frame(user, first, payload)
                    continue
                if b"\n" in payload or b"\r" in payload:
                    raise BenchmarkFailed(
                        f"{user.name.decode()} received a frame with a line ending in it: "
                        f"{payload!r}"
                    )
                if user.stage == "counting":
                    lines.append(payload)
                else:
                    self.websocket_line(user, payload)
        except websocket.ProtocolError as e:
            raise BenchmarkFailed(f"{user.name.decode()}'s WebSocket: {e}") from None
        user.pending = data[start:]
        if lines:
            if user.observer:
                self.check_lines(user, lines)
            else:
                # Lines too long to count by their first bytes: counted one by one.
                user.received += len(lines)
                if user.sender:
                    user.in_flight -= sum(1 for line in lines if line.startswith(user.tag))

    def control_frame(self, user: User, first: int, payload: bytes) -> None:
        """Anything but a whole text frame: a ping is answered, the rest ends the run."""
        opcode = first & 0x0F
        if first & websocket.RESERVED:
            raise BenchmarkFailed(
                f"{user.name.decode()} received a frame with reserved bits set ({first:#04x}),"
                " though no extension was agreed"
            )
        if opcode == websocket.PING and first & websocket.FIN:
            self.write(user, websocket.client_frame(payload, websocket.PONG))
        elif opcode == websocket.PONG and first & websocket.FIN:
            pass
        elif opcode == websocket.CLOSE:
            raise BenchmarkFailed(
                f"the server closed {user.name.decode()}'s WebSocket in the {user.stage} stage"
                f" ({websocket.close_reason(payload)}) after the line {user.last_line!r}"
            )
        else:
            # A binary frame, or a line split into fragments: labchat sends
            # each line as one whole text frame.
            raise BenchmarkFailed(
                f"{user.name.decode()} received a frame that is not a whole text frame"
                f" ({first:#04x}): {payload[:80]!r}"
            )

    def websocket_line(self, user: User, line: bytes) -> None:
        """One line of a WebSocket user before it counts: the login, then the settling."""
        if user.stage == "settling":
            if self.marker in line:
                self.settled_user(user)
            return
        self.login_line(user, line)

    def login_line(self, user: User, line: bytes) -> None:
        """One line of the login dialogue, of either transport: the prompt, then the welcome."""
        user.last_line = line
        if user.stage == "prompt":
            user.stage = "welcome"
            self.send_line(user, user.name)
        elif line == _ROOM_UNAVAILABLE:
            # A node not in its shared room yet: the name, again, in a moment.
            self.retries.append((time.monotonic() + _LOGIN_RETRY_SECONDS, user))
            self.login_retries += 1
        elif not line.startswith(b"Welcome"):
            raise BenchmarkFailed(
                f"{user.name.decode()} was not welcomed: the server said {line!r}"
            )
        else:
            user.stage = "settling"
            self.logging_in -= 1
            self.welcomed += 1

    def send_line(self, user: User, line: bytes) -> None:
        """Send line (without its end) as the user's transport carries it."""
        if user.websocket:
            self.write(user, websocket.client_frame(line))
        else:
            # CRLF, as telnet sends it: every chat server takes it, some take nothing else.
            self.write(user, line + b"\r\n")

    def log_in(self, user: User, data: bytes) -> None:
        user.pending += data
        while user.stage in ("prompt", "welcome") and b"\n" in user.pending:
            line, _, user.pending = user.pending.partition(b"\n")
            self.login_line(user, line.rstrip(b"\r"))
        if user.stage == "settling" and user.pending:
            data, user.pending = user.pending, b""
            self.settle(user, data)

    def settle(self, user: User, data: bytes) -> None:
        seen = user.tail + data
        found = seen.find(self.marker)
        if found < 0:
            user.tail = seen[-len(self.marker) :]
            return
        end = seen.find(b"\n", found)
        if end < 0:
            user.tail = seen[found:]
            return
        user.tail = b""
        self.settled_user(user)
        rest = seen[end + 1 :]
        if rest:
            self.count(user, rest)

    def settled_user(self, user: User) -> None:
        """user has the marker: every line it receives from now on is one of the load's."""
        user.stage = "counting"
        if not user.parses and not user.sender:
            self.counters[user.fd] = user
        self.settled += 1

    def count(self, user: User, data: bytes) -> None:
        """Count the lines of data; an observer also times them, a sender finds its own.

        A WebSocket user gets here only when it counts its frames by their
        first bytes (see the module's docstring), not when it parses them.
        """
        if user.observer:
            self.read_lines(user, data)
            return
        if user.websocket:
            self.count_frame_starts(user, data)
        else:
            user.received += data.count(_LINE_END)
        if user.sender:
            # Its own lines coming back free its window. Searching for its tag
            # costs far less than reading every line; the tail catches a tag
            # split between two reads, and is too short to hold a whole one.
            seen = user.tail + data
            user.in_flight -= seen.count(user.tag)
            user.tail = seen[1 - len(user.tag) :]

    def count_frame_starts(self, user: User, data: bytes) -> None:
        """Count the text frames of data by their first bytes, and answer any ping among them.

        Every frame the server sends in the load is a short text frame of
        ASCII (see the module's docstring), except a ping now and then
        (labchat pings each WebSocket every 30 s). A ping's first byte,
        0x89, can appear nowhere else, but its payload is any bytes, 0x81
        among them: the ping is read whole, even across reads, and left out
        of the count.
        """
        start, end = 0, len(data)
        while start < end:
            if user.control:
                # A control frame is at most 127 bytes: 2 of header, 125 of payload.
                seen = user.control + data[start : start + 127]
                try:
                    frame = websocket.parse_frame(seen)
                except websocket.ProtocolError as e:
                    raise BenchmarkFailed(f"{user.name.decode()}'s WebSocket: {e}") from None
                if frame is None:
                    if len(seen) >= 127:
                        raise BenchmarkFailed(
                            f"{user.name.decode()} received a ping longer than 125 bytes"
                        )
                    user.control = seen
                    return
                first, payload, frame_end = frame
                start += frame_end - len(user.control)
                user.control = b""
                self.control_frame(user, first, payload)
                continue
            ping = data.find(_PING_START, start)
            if ping < 0:
                user.received += data.count(_FRAME_START, start)
                return
            user.received += data.count(_FRAME_START, start, ping)
            user.control, start = data[ping : ping + 1], ping + 1

    def read_lines(self, user: User, data: bytes) -> None:
        """Count a TCP observer's lines, and time each one from its send."""
        lines = (user.pending + data).split(b"\n")
        user.pending = lines.pop()
        self.check_lines(user, lines)

    def check_lines(self, user: User, lines: list[bytes]) -> None:
        """Count an observer's lines, time each one from its send, and check each sender's order."""
        now = time.monotonic_ns()
        user.received += len(lines)
        # Kept apart by the observer's kind, so that the two can be compared.
        latencies = self.websocket_latencies if user.websocket else self.latencies
        heard = user.heard
        for line in lines:
            # "<u00012> m SENDER SEQUENCE SENT_NS padding"
            fields = line.split(b" ", 5)
            if len(fields) < 5 or fields[1] != b"m":
                raise BenchmarkFailed(f"{user.name.decode()} received an unexpected line {line!r}")
            latencies.append((now - int(fields[4])) / 1e6)
            sender, sequence = int(fields[2]), int(fields[3])
            # Each sender's lines must come one after the other, none missing
            # and none twice: a count of lines alone would miss a loss that a
            # duplicate made up for.
            expected = heard.get(sender, -1) + 1
            if sequence != expected:
                raise BenchmarkFailed(
                    f"{user.name.decode()} received line {sequence} of u{sender:05d} "
                    f"where line {expected} should have come"
                )
            heard[sender] = sequence
            if sender == user.index:
                user.in_flight -= 1

    def write(self, user: User, data: bytes) -> None:
        if user.outbox:
            user.outbox += data
            return
        try:
            sent = user.sock.send(data)
        except BlockingIOError:
            sent = 0
        except ConnectionRefusedError:
            # A WebSocket user's handshake is sent before anything is read.
            raise BenchmarkFailed(
                f"connection refused: nothing listens on {self.where(user)}"
            ) from None
        except OSError as e:
            raise BenchmarkFailed(f"{user.name.decode()} could not send: {e}") from None
        if sent < len(data):
            user.outbox = data[sent:]
            self.poller.modify(user.fd, select.EPOLLIN | select.EPOLLOUT)

    def flush(self, user: User) -> None:
        data, user.outbox = user.outbox, b""
        self.poller.modify(user.fd, select.EPOLLIN)
        self.write(user, data)

    def send_lines(self) -> None:
        now = time.monotonic()
        if now >= self.load_ends:
            self.sending = False
            return
        window, limit = self.options.window, self.options.lines or float("inf")
        for user in self.senders:
            while user.in_flight < window and user.sent < limit:
                self.write(user, self.message(user))
                user.sent += 1
                user.in_flight += 1
        if all(user.sent >= limit for user in self.senders):
            self.sending = False

    def message(self, user: User) -> bytes:
        head = b"m %d %d %d " % (user.index, user.sent, time.monotonic_ns())
        text = head + b"x" * max(1, self.line_size - len(head) - 2)
        if user.websocket:
            # The same line less its end, which a frame does not carry.
            return websocket.client_frame(text)
        # CRLF, as telnet sends it: every chat server takes it, some take nothing else.
        return text + b"\r\n"

    # The phases.

    def run(self) -> dict[str, Any]:
        options = self.options
        result: dict[str, Any] = {
            "users": options.users,
            "senders": len(self.sender_indexes),
            "window": options.window,
            "line_bytes": options.line_bytes,
            "websocket_users": len(self.websocket_indexes),
            "ports": options.port,
            "server_pids": options.server_pid or [],
        }
        rss_before = self.meter.rss_bytes()
        cpu_before_login = self.meter.cpu_seconds()
        start = time.monotonic()
        self.wait(
            lambda: self.welcomed == options.users,
            start + options.login_timeout,
            lambda: f"logging in {options.users} users ({self.welcomed} welcomed"
            + (
                f", {self.login_retries} logins refused as the room was unavailable)"
                if self.login_retries
                else ")"
            ),
        )
        welcomed = time.monotonic()
        self.phase = "settle"
        self.send_line(self.users[0], self.marker)
        self.wait(
            lambda: self.settled == options.users,
            welcomed + options.login_timeout,
            lambda: f"waiting for the room to settle ({self.settled} of {options.users} users)",
        )
        settled = time.monotonic()
        rss_full = self.meter.rss_bytes()
        result.update(
            login_retries=self.login_retries,
            login_seconds=welcomed - start,
            settle_seconds=settled - start,
            login_server_cpu_seconds=self.meter.cpu_seconds() - cpu_before_login,
            server_rss_before_bytes=rss_before,
            server_rss_bytes=rss_full,
            server_rss_per_user_bytes=(rss_full - rss_before) / options.users,
        )

        self.phase = "load"
        self.senders = [user for user in self.users if user.sender]
        cpu_before_each = self.meter.cpu_seconds_each()
        own_before = os.times()
        load_start = time.monotonic()
        self.load_ends = load_start + options.seconds
        self.last_delivery = load_start
        self.sending = True
        self.send_lines()
        self.wait(lambda: not self.sending, self.load_ends + 60, "sending")
        sent = sum(user.sent for user in self.senders)
        self.wait(
            lambda: all(user.received >= sent for user in self.users)
            or time.monotonic() - self.last_delivery > options.drain_timeout,
            time.monotonic() + 600,
            "draining",
        )
        cpu_each = [
            after - before
            for after, before in zip(self.meter.cpu_seconds_each(), cpu_before_each, strict=True)
        ]
        cpu = sum(cpu_each)
        own = os.times()
        elapsed = self.last_delivery - load_start
        deliveries = sum(user.received for user in self.users)
        lost = sum(max(0, sent - user.received) for user in self.users)
        extra = sum(max(0, user.received - sent) for user in self.users)
        latencies = sorted(self.latencies + self.websocket_latencies)
        result.update(
            lines_sent=sent,
            deliveries=deliveries,
            lost=lost,
            duplicated=extra,
            seconds=elapsed,
            deliveries_per_second=deliveries / elapsed if elapsed > 0 else 0.0,
            latency_p50_ms=percentile(latencies, 0.50),
            latency_p99_ms=percentile(latencies, 0.99),
            latency_samples=len(latencies),
            server_cpu_seconds=cpu,
            # Each process's part, in the order of --server-pid.
            server_cpu_seconds_by_pid=cpu_each,
            server_cpu_us_per_delivery=cpu / deliveries * 1e6 if deliveries else 0.0,
            generator_cpu_share=(
                (own.user + own.system - own_before.user - own_before.system) / elapsed
                if elapsed > 0
                else 0.0
            ),
        )
        # Each node's part, in the order of --port.
        by_node = range(len(options.port))
        result.update(
            users_by_port=[self.nodes.count(node) for node in by_node],
            deliveries_by_port=[
                sum(user.received for user in self.users if user.node == node) for node in by_node
            ],
        )
        if self.websocket_indexes:
            # Each kind apart: what a delivery to a WebSocket user takes.
            tcp_latencies, websocket_latencies = sorted(self.latencies), sorted(
                self.websocket_latencies
            )
            result.update(
                websocket_deliveries=sum(user.received for user in self.users if user.websocket),
                tcp_latency_p50_ms=percentile(tcp_latencies, 0.50),
                tcp_latency_p99_ms=percentile(tcp_latencies, 0.99),
                websocket_latency_p50_ms=percentile(websocket_latencies, 0.50),
                websocket_latency_p99_ms=percentile(websocket_latencies, 0.99),
                websocket_latency_samples=len(websocket_latencies),
            )
        if lost:
            result["error"] = f"{lost} deliveries lost (each user should have {sent} lines)"
        return result

    def close(self) -> None:
        for user in self.users:
            user.sock.close()
        self.poller.close()


def kinds_of_users(users: int, senders: set[int], observers: set[int]) -> list[list[int]]:
    """The users by kind, each in the join order: the senders, the other observers, the rest."""
    return [
        sorted(senders),
        sorted(observers - senders),
        [index for index in range(users) if index not in senders and index not in observers],
    ]


def nodes_of_users(users: int, nodes: int, senders: set[int], observers: set[int]) -> list[int]:
    """The node of each user, by index: each kind dealt to the nodes in turn, so that every
    node has its share of the senders and of the observers."""
    node = [0] * users
    for kind in kinds_of_users(users, senders, observers):
        for k, index in enumerate(kind):
            node[index] = k % nodes
    return node


def websocket_users(
    users: int, share: float, senders: set[int], observers: set[int]
) -> set[int]:
    """Which users connect by WebSocket: share of the senders, of the other observers and of
    the rest, each spread evenly over its own kind in the join order."""
    chosen: set[int] = set()
    for kind in kinds_of_users(users, senders, observers):
        # The k-th of a kind is one whenever share * k passes a whole number.
        chosen.update(
            index
            for k, index in enumerate(kind)
            if math.floor((k + 1) * share + 1e-9) > math.floor(k * share + 1e-9)
        )
    return chosen


def share(text: str) -> float:
    """An argparse type: a fraction from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, not {text}")
    return value


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = generator_parser(
        "chatload",
        "TCP",
        "Log N users into a labchat-style chat room, make S of them talk, and report "
        "deliveries per second, latency, lost lines and the server's CPU and memory as one "
        "JSON line.",
        several=True,
    )
    parser.add_argument("--users", type=int, default=100, help="users logged in (100)")
    parser.add_argument("--senders", type=int, default=10, help="users who send lines (10)")
    parser.add_argument(
        "--lines", type=int, default=0, help="lines per sender at most (0: until --seconds)"
    )
    parser.add_argument("--window", type=int, default=8, help="lines in flight per sender (8)")
    parser.add_argument("--line-bytes", type=int, default=64, help="bytes per sent line (64)")
    parser.add_argument(
        "--observers", type=int, default=8, help="users who time every line they receive (8)"
    )
    parser.add_argument(
        "--login-concurrency", type=int, default=64, help="logins in progress at once (64)"
    )
    parser.add_argument(
        "--login-timeout", type=float, default=300.0, help="seconds to log everyone in (300)"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=5.0,
        help="seconds without a delivery after which missing lines count as lost (5)",
    )
    parser.add_argument(
        "--websocket-share",
        type=share,
        default=0.0,
        help="the fraction of the users (and of the senders and of the observers) that "
        "connect to the WebSocket endpoint instead of --port (0)",
    )
    parser.add_argument(
        "--web-port",
        type=numbers,
        default=None,
        help="server web port, for --websocket-share (one for each --port, separated by "
        "commas, in the same order)",
    )
    parser.add_argument(
        "--web-path", default="/ws", help="path of the WebSocket endpoint (/ws)"
    )
    options = parser.parse_args(argv)
    if options.users < 1 or options.senders < 1 or options.window < 1:
        parser.error("--users, --senders and --window must be at least 1")
    if options.line_bytes < 32:
        parser.error("--line-bytes must be at least 32: a line carries its send time")
    if options.websocket_share and options.web_port is None:
        parser.error("--websocket-share needs the server's --web-port")
    if options.web_port is not None and len(options.web_port) != len(options.port):
        parser.error(
            f"--web-port needs one port for each of the {len(options.port)} of --port,"
            f" not {len(options.web_port)}"
        )
    if not options.web_path.startswith("/") or not options.web_path.isascii():
        parser.error(f"--web-path must be an ASCII path from /, not {options.web_path!r}")
    return options


def main(argv: list[str] | None = None) -> None:
    options = parse_arguments(argv)
    raise_open_file_limit()
    load = ChatLoad(options)
    try:
        result = load.run()
    except BenchmarkFailed as e:
        result = {"error": str(e)}
    finally:
        load.close()
    report({"service": "chat", **result})


if __name__ == "__main__":
    main()
