"""The labcalc load generator: S sessions, each with exactly one request in flight.

Drives any server that speaks this part of labcalc's dialogue (lines end
with LF or CRLF)::

    S: Welcome to labcalc. What's your name?
    C: bench007
    S: Hello bench007! Send an expression like 12 + 42, or q to quit.
    C: 12 + 42                 (again and again, each after the answer before)
    S: 54.0
    C: q
    S: Session ended           (then the server closes the connection)

The run, all in this one process::

    1. log in   --sessions connections open and log in, all at once;
    2. load     each session sends ``12 + 42``, waits for its answer line,
                and sends the next, for --seconds (a closed loop: exactly
                one request in flight per session); an answer other than
                ``54.0`` is counted as bad and still triggers the next;
    3. drain    once --seconds have passed no request is sent, and the
                answers on their way are waited for;
    4. quit     every session sends ``q``, expects ``Session ended`` and
                then the server's close.

The load window runs from the first request to the last answer, and the
server's CPU time is read from /proc/PID of --server-pid just before the
first and just after the last, so that the logins are not counted.
``requests`` counts every answer received in it, ``bad_answers`` those of
them that were not ``54.0``.

The generator uses plain non-blocking sockets, one line buffer per
connection and ``select.epoll``, not Twisted: each answer costs it a few
microseconds of Python (one poll, one recv, one send), far less than any
server it measures spends on it, so the server, not the generator, is what
limits the rate. Pin the two to different cores (``taskset``) all the same.

One JSON line is printed (benchmarks.measure.report); a run that failed
(connection refused, a login dialogue not as expected, a connection the
server dropped, no answer in time) adds ``error``, saying which session,
what it was waiting for and the line it received, prints it on standard
error and exits 1.
"""

from __future__ import annotations

import argparse
import errno
import os
import select
import socket
import time
from typing import Any, NoReturn

from benchmarks.measure import (
    BenchmarkFailed,
    generator_parser,
    meter_for,
    positive,
    raise_open_file_limit,
    report,
)

NAME = b"bench007"
WELCOME = b"Welcome to labcalc. What's your name?"
HELLO = b"Hello bench007! Send an expression like 12 + 42, or q to quit."
REQUEST = b"12 + 42\n"
ANSWER = b"54.0"
# The whole answer as one read usually brings it: the fast path of the loop.
ANSWER_LINE = b"54.0\r\n"
SESSION_ENDED = b"Session ended"
# How long the login, the last answers or the goodbyes may take before the
# run fails: a server that takes this long is not working.
PHASE_LIMIT = 10.0
_READ_SIZE = 65536


def arguments_parser() -> argparse.ArgumentParser:
    parser = generator_parser(
        "calcload",
        "TCP",
        (
            "Closed-loop load on a labcalc server (or any server speaking its dialogue): "
            "--sessions connections log in as bench007, then each keeps one '12 + 42' request "
            "in flight for --seconds, then quits with q. Prints one JSON line: requests per "
            "second, bad answers and, with --server-pid, the server's CPU time per request "
            "and its memory."
        ),
    )
    parser.add_argument(
        "--sessions",
        type=positive(int),
        default=50,
        help="connections, each with one request in flight (default 50)",
    )
    return parser


class Session:
    """One connection of the generator: its socket, its stage and its unfinished line."""

    __slots__ = ("index", "sock", "fd", "stage", "pending", "last_line", "answers")

    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index = index
        self.sock = sock
        self.fd = sock.fileno()
        # What the session waits for: "connect", "welcome", "hello", then
        # "ready" (logged in), "answer" (a request in flight), "idle" (load
        # over), "goodbye" (q sent), "close" (Session ended received), "closed".
        self.stage = "connect"
        self.pending = b""
        self.last_line = b""
        self.answers = 0


def shown(line: bytes) -> str:
    """A line received, as an error message quotes it."""
    return repr(line.decode("utf-8", "replace"))


class CalcLoad:
    """One run of the generator: the sessions, the phases and the counts."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.poller = select.epoll()
        self.sessions: list[Session] = []
        self.by_fd: dict[int, Session] = {}
        self.in_stage: dict[str, int] = {}
        self.sending = False
        self.requests = 0
        self.bad_answers = 0
        self.last_answer = 0.0

    def where(self) -> str:
        return f"TCP {self.options.host}:{self.options.port}"

    def move(self, session: Session, stage: str) -> None:
        self.in_stage[session.stage] -= 1
        self.in_stage[stage] = self.in_stage.get(stage, 0) + 1
        session.stage = stage

    def count(self, stage: str) -> int:
        return self.in_stage.get(stage, 0)

    # The phases.

    def run(self) -> dict[str, Any]:
        options = self.options
        raise_open_file_limit()
        meter = meter_for(options.server_pid)
        try:
            meter.rss_bytes()
        except OSError as e:
            raise BenchmarkFailed(
                f"cannot read the server's figures from /proc/{options.server_pid}: "
                f"{e.strerror or e}"
            ) from None
        for index in range(options.sessions):
            self.connect(index)
        self.wait(lambda: self.count("ready") == len(self.sessions), "logging in")

        cpu_before = meter.cpu_seconds()
        start = time.monotonic()
        self.sending = True
        for session in self.sessions:
            self.send(session, REQUEST, "answer")
        self.load(start + options.seconds)
        self.wait(lambda: self.count("answer") == 0, "for the last answers")
        cpu_after = meter.cpu_seconds()
        rss = meter.rss_bytes()

        for session in self.sessions:
            self.send(session, b"q\n", "goodbye")
        self.wait(lambda: self.count("closed") == len(self.sessions), "for Session ended")

        seconds = self.last_answer - start
        cpu = cpu_after - cpu_before
        return {
            "service": "labcalc",
            "target": self.where(),
            "sessions": options.sessions,
            "seconds": round(seconds, 6),
            "requests": self.requests,
            "requests_per_second": round(self.requests / seconds, 1) if seconds > 0 else 0.0,
            "bad_answers": self.bad_answers,
            "server_cpu_seconds": round(cpu, 3),
            "server_cpu_us_per_request": round(cpu * 1e6 / self.requests, 2)
            if self.requests
            else 0.0,
            "server_rss_bytes": rss,
        }

    def connect(self, index: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        # One small request at a time: Nagle would hold each one back.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = Session(index, sock)
        self.sessions.append(session)
        self.by_fd[session.fd] = session
        self.in_stage["connect"] = self.in_stage.get("connect", 0) + 1
        code = sock.connect_ex((self.options.host, self.options.port))
        if code not in (0, errno.EINPROGRESS):
            self.refuse(code)
        # Writable once the connection is made, or has failed.
        self.poller.register(session.fd, select.EPOLLIN | select.EPOLLOUT)

    def refuse(self, code: int) -> NoReturn:
        if code == errno.ECONNREFUSED:
            raise BenchmarkFailed(f"connection refused: nothing listens on {self.where()}")
        raise BenchmarkFailed(f"cannot connect to {self.where()}: {os.strerror(code)}")

    def load(self, stop_sending: float) -> None:
        """The hot loop: every answer read triggers the next request, until stop_sending."""
        poll, by_fd = self.poller.poll, self.by_fd
        while True:
            now = time.monotonic()
            if now >= stop_sending:
                self.sending = False
                return
            for fd, _events in poll(min(0.05, stop_sending - now)):
                session = by_fd[fd]
                try:
                    data = session.sock.recv(_READ_SIZE)
                    if data == ANSWER_LINE and not session.pending:
                        # The usual case, without splitting lines.
                        self.requests += 1
                        session.answers += 1
                        session.last_line = ANSWER
                        self.last_answer = time.monotonic()
                        session.sock.send(REQUEST)
                        continue
                except BlockingIOError:
                    continue
                except OSError as e:
                    self.dropped(session, e.strerror or str(e))
                self.received(session, data)

    def wait(self, done: Any, what: str) -> None:
        """Handle events until done() is true; fail if PHASE_LIMIT seconds pass first."""
        deadline = time.monotonic() + PHASE_LIMIT
        while not done():
            now = time.monotonic()
            if now > deadline:
                stuck = next(
                    (s for s in self.sessions if s.stage not in ("ready", "idle", "closed")),
                    self.sessions[0],
                )
                raise BenchmarkFailed(
                    f"timed out {what} after {PHASE_LIMIT:g} s: session {stuck.index} "
                    f"still waits for {self.expected(stuck)}; last line received: "
                    f"{shown(stuck.last_line)}"
                )
            for fd, events in self.poller.poll(min(0.05, deadline - now)):
                session = self.by_fd[fd]
                if session.stage == "connect":
                    self.connected(session)
                    if not events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                        continue
                try:
                    data = session.sock.recv(_READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError as e:
                    self.dropped(session, e.strerror or str(e))
                self.received(session, data)

    # One session's events.

    def connected(self, session: Session) -> None:
        code = session.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.refuse(code)
        self.poller.modify(session.fd, select.EPOLLIN)
        self.move(session, "welcome")

    def send(self, session: Session, data: bytes, stage: str) -> None:
        self.move(session, stage)
        try:
            sent = session.sock.send(data)
        except OSError as e:
            self.dropped(session, e.strerror or str(e))
        if sent != len(data):
            # One short line on a connection with nothing else unsent always fits.
            raise BenchmarkFailed(
                f"session {session.index}: the socket took {sent} of {len(data)} bytes"
            )

    def received(self, session: Session, data: bytes) -> None:
        if not data:
            if session.stage == "close":
                self.poller.unregister(session.fd)
                session.sock.close()
                self.move(session, "closed")
                return
            self.dropped(session, "the server closed the connection")
        lines = (session.pending + data).split(b"\n")
        session.pending = lines.pop()
        for line in lines:
            self.line_received(session, line.removesuffix(b"\r"))

    def line_received(self, session: Session, line: bytes) -> None:
        session.last_line = line
        stage = session.stage
        if stage == "answer":
            self.requests += 1
            session.answers += 1
            if line != ANSWER:
                self.bad_answers += 1
            self.last_answer = time.monotonic()
            if self.sending:
                self.send(session, REQUEST, "answer")
            else:
                self.move(session, "idle")
        elif stage == "welcome" and line == WELCOME:
            self.send(session, NAME + b"\n", "hello")
        elif stage == "hello" and line == HELLO:
            self.move(session, "ready")
        elif stage == "goodbye" and line == SESSION_ENDED:
            self.move(session, "close")
        else:
            raise BenchmarkFailed(
                f"session {session.index}: expected {self.expected(session)}, "
                f"received {shown(line)}"
            )

    def expected(self, session: Session) -> str:
        """What session waits for, as an error message says it."""
        return {
            "connect": "the connection to be made",
            "welcome": f"the greeting {shown(WELCOME)}",
            "hello": f"the hello line {shown(HELLO)}",
            "ready": "nothing (logged in)",
            "answer": f"the answer {shown(ANSWER)}",
            "idle": "nothing (load over)",
            "goodbye": f"{shown(SESSION_ENDED)}",
            "close": "the server to close the connection after Session ended",
            "closed": "nothing (closed)",
        }[session.stage]

    def dropped(self, session: Session, why: str) -> NoReturn:
        unfinished = f"; unfinished line: {shown(session.pending)}" if session.pending else ""
        raise BenchmarkFailed(
            f"connection dropped: session {session.index} ({why}) while waiting for "
            f"{self.expected(session)}, after {session.answers} answers; last line received: "
            f"{shown(session.last_line)}{unfinished}"
        )


def main(argv: list[str] | None = None) -> None:
    options = arguments_parser().parse_args(argv)
    load = CalcLoad(options)
    try:
        result = load.run()
    except BenchmarkFailed as e:
        result = {
            "service": "labcalc",
            "target": load.where(),
            "sessions": options.sessions,
            "requests": load.requests,
            "bad_answers": load.bad_answers,
            "error": str(e),
        }
    report(result)


if __name__ == "__main__":
    main()
