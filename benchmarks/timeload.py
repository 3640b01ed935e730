"""The udptime load generator: C clients, each with exactly one SEND_TIME request outstanding.

A closed loop: each of --clients UDP sockets sends ``SEND_TIME``, and the
answer that comes back triggers its next request, so the server is kept as
busy as it can be without a queue building up in front of it. An answer
must look like a time, ``HH:MM:SS``; any other answer (``ERROR``, a date) is
counted as bad, and still triggers the next request. A request unanswered
within --timeout seconds is counted as lost and sent again, from a fresh
socket: a late answer to the lost request then goes to a closed port
instead of being taken for the answer to the next one, which would leave
two requests outstanding on one client.

The generator is one process with plain non-blocking sockets and
``select.epoll``, not Twisted: each answer costs it a few microseconds of
Python (one poll, one recv, one regex match and one send), far less than
any server it measures spends on it, so the server, not the generator, is
what limits the rate. Pin the two to different cores (``taskset``) all the
same.

The load window runs from the first request to the last answer: requests
stop after --seconds, and the answers still on their way are waited for
(each at most --timeout). The server's CPU time is read from /proc/PID of
--server-pid just before the first request and just after the last answer,
so that neither the server's start nor anything after the load is counted.
``answers`` counts every answer received, ``bad_answers`` those of them that
were not a time.

One JSON line is printed (benchmarks.measure.report); a run that could not
measure (nothing listens at the port, no answer at all within 5 s) adds
``error`` to it, prints that error on standard error and exits 1.
"""

from __future__ import annotations

import argparse
import re
import select
import socket
import time
from typing import Any

from benchmarks.measure import (
    BenchmarkFailed,
    generator_parser,
    meter_for,
    positive,
    raise_open_file_limit,
    report,
)

REQUEST = b"SEND_TIME"
# An answer is a time; the seed's format, and the default of udptime and the baseline.
_TIME = re.compile(rb"[0-9]{2}:[0-9]{2}:[0-9]{2}")
# A server that has not answered a single request in this long is not there.
NO_ANSWER_LIMIT = 5.0
_READ_SIZE = 2048


def arguments_parser() -> argparse.ArgumentParser:
    parser = generator_parser(
        "timeload",
        "UDP",
        (
            "Closed-loop load on a udptime server (or any server answering SEND_TIME with "
            "HH:MM:SS): --clients sockets, each with one request outstanding, for --seconds. "
            "Prints one JSON line: answers per second, lost requests, bad answers and, with "
            "--server-pid, the server's CPU time per answer and its memory."
        ),
    )
    parser.add_argument(
        "--clients",
        type=positive(int),
        default=16,
        help="UDP sockets, each with one request outstanding (default 16)",
    )
    parser.add_argument(
        "--timeout",
        type=positive(float),
        default=0.2,
        help="seconds after which an unanswered request is counted lost and sent again "
        "(default 0.2)",
    )
    return parser


class TimeLoad:
    """One run: the sockets, the closed loop and the counts."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.address = (options.host, options.port)
        self.poller = select.epoll()
        # By file descriptor: the client's index, and the socket itself.
        self.index_of: dict[int, int] = {}
        self.sockets: list[socket.socket] = []
        # When each client's outstanding request was sent; None when it has none.
        self.sent_at: list[float | None] = []
        self.answers = 0
        self.bad_answers = 0
        self.lost = 0
        self.last_answer = 0.0

    def where(self) -> str:
        return f"UDP {self.options.host}:{self.options.port}"

    def open_socket(self, index: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        # Connected: only the server's datagrams reach it, and an ICMP "port
        # unreachable" comes back as ECONNREFUSED instead of a silent loss.
        try:
            sock.connect(self.address)
        except OSError as e:
            sock.close()
            raise BenchmarkFailed(f"cannot reach {self.where()}: {e.strerror or e}") from None
        self.poller.register(sock.fileno(), select.EPOLLIN)
        self.index_of[sock.fileno()] = index
        return sock

    def replace_socket(self, index: int) -> None:
        old = self.sockets[index]
        self.poller.unregister(old.fileno())
        del self.index_of[old.fileno()]
        old.close()
        self.sockets[index] = self.open_socket(index)

    def send(self, index: int, now: float) -> None:
        try:
            self.sockets[index].send(REQUEST)
        except BlockingIOError:
            # A full socket buffer drops the request as a network would: it
            # times out and is counted lost.
            pass
        except ConnectionRefusedError:
            self.refused()
        self.sent_at[index] = now

    def refused(self) -> None:
        if self.answers:
            raise BenchmarkFailed(
                f"{self.where()} stopped answering after {self.answers} answers "
                "(connection refused: the server went away)"
            )
        raise BenchmarkFailed(f"connection refused: nothing listens on {self.where()}")

    def run(self) -> dict[str, Any]:
        options = self.options
        raise_open_file_limit()
        for index in range(options.clients):
            self.sockets.append(self.open_socket(index))
            self.sent_at.append(None)
        meter = meter_for(options.server_pid)
        try:
            meter.rss_bytes()
        except OSError as e:
            raise BenchmarkFailed(
                f"cannot read the server's figures from /proc/{options.server_pid}: "
                f"{e.strerror or e}"
            ) from None
        cpu_before = meter.cpu_seconds()
        start = time.monotonic()
        for index in range(options.clients):
            self.send(index, start)
        self.loop(start)
        cpu_after = meter.cpu_seconds()
        seconds = self.last_answer - start
        cpu = cpu_after - cpu_before
        return {
            "service": "udptime",
            "target": self.where(),
            "clients": options.clients,
            "seconds": round(seconds, 6),
            "answers": self.answers,
            "answers_per_second": round(self.answers / seconds, 1) if seconds > 0 else 0.0,
            "lost": self.lost,
            "bad_answers": self.bad_answers,
            "timeout": options.timeout,
            "server_cpu_seconds": round(cpu, 3),
            "server_cpu_us_per_answer": round(cpu * 1e6 / self.answers, 2),
            "server_rss_bytes": meter.rss_bytes(),
        }

    def loop(self, start: float) -> None:
        """Answer answers with requests until --seconds have passed, then wait for the last."""
        timeout = self.options.timeout
        stop_sending = start + self.options.seconds
        give_up = start + NO_ANSWER_LIMIT
        index_of, sockets, sent_at = self.index_of, self.sockets, self.sent_at
        poll, is_time = self.poller.poll, _TIME.fullmatch
        sending = True
        outstanding = len(sockets)
        next_check = start + timeout
        while outstanding:
            now = time.monotonic()
            if sending and now >= stop_sending and self.answers:
                sending = False
            if not self.answers and now >= give_up:
                raise BenchmarkFailed(
                    f"no answer from {self.where()} within {NO_ANSWER_LIMIT:g} s: "
                    "is the server running?"
                )
            if now >= next_check:
                outstanding -= self.expire(now, sending)
                next_check = now + timeout / 4
            for fd, _events in poll(timeout / 4):
                index = index_of[fd]
                try:
                    answer = sockets[index].recv(_READ_SIZE)
                except BlockingIOError:
                    continue
                except ConnectionRefusedError:
                    self.refused()
                if sent_at[index] is None:
                    # Not an answer to a request of this run: ignore it.
                    continue
                self.answers += 1
                if is_time(answer) is None:
                    self.bad_answers += 1
                now = time.monotonic()
                self.last_answer = now
                if sending:
                    self.send(index, now)
                else:
                    sent_at[index] = None
                    outstanding -= 1

    def expire(self, now: float, sending: bool) -> int:
        """Count the requests older than --timeout lost and send them again; return how many
        clients are done (no longer sending, so nothing resent)."""
        done = 0
        limit = now - self.options.timeout
        for index, sent in enumerate(self.sent_at):
            if sent is not None and sent <= limit:
                self.lost += 1
                self.replace_socket(index)
                if sending or not self.answers:
                    self.send(index, now)
                else:
                    self.sent_at[index] = None
                    done += 1
        return done


def main(argv: list[str] | None = None) -> None:
    options = arguments_parser().parse_args(argv)
    load = TimeLoad(options)
    try:
        result = load.run()
    except BenchmarkFailed as e:
        result = {
            "service": "udptime",
            "target": load.where(),
            "clients": options.clients,
            "answers": load.answers,
            "lost": load.lost,
            "bad_answers": load.bad_answers,
            "error": str(e),
        }
    report(result)


if __name__ == "__main__":
    main()
