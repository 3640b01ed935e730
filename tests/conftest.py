"""Fixtures shared by the whole suite."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from support.bench import start_baseline
from support.chat import ChatConnections, ChatUser
from support.netns import TwoHosts, two_hosts, why_no_namespaces
from support.processes import ServerProcess, start_twistd
from support.redis import RedisServer
from support.system import missing
from twisted.logger import LogEvent, capturedLogs, formatEvent


class LogLines:
    """The log events emitted during a test, readable as the lines twistd would print."""

    def __init__(self, events: Sequence[LogEvent]) -> None:
        self.events = events

    def lines(self) -> list[str]:
        """Every event's text, as it appears after twistd's timestamp and system."""
        return [formatEvent(event) for event in self.events]

    def levels(self) -> list[str]:
        """The level name of every event, in order."""
        return [event["log_level"].name for event in self.events]


@pytest.fixture
def logged() -> Iterator[LogLines]:
    """Capture what the code under test logs through twisted.logger."""
    with capturedLogs() as events:
        yield LogLines(events)


@pytest.fixture
def closed_port() -> int:
    """A UDP port on which nothing listens: the kernel answers ICMP port unreachable."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real twistd servers for a test; each is stopped when the test ends."""
    started: list[ServerProcess] = []

    def start(plugin: str, *options: str) -> ServerProcess:
        server = start_twistd(plugin, *options, cwd=tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def connect(servers: Callable[..., ServerProcess]) -> Iterator[Callable[..., ChatUser]]:
    """Open raw-socket users of labchat servers (ChatConnections.open); all closed after the test.

    Depending on servers, this closes the connections before the servers stop.
    """
    connections = ChatConnections()
    yield connections.open
    connections.close()


@pytest.fixture(scope="module")
def hosts() -> Iterator[TwoHosts]:
    """Two computers (network namespaces joined by a veth pair), made once for a test module.

    Where namespaces cannot be made, the tests that use them skip and say
    why (in CI they fail: see support.system).
    """
    reason = why_no_namespaces()
    if reason is not None:
        missing(reason)
    with two_hosts() as pair:
        yield pair


@pytest.fixture
def remote_servers(hosts: TwoHosts, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real twistd servers on the server computer of hosts; each is stopped after the test.

    Its namespace is fresh, so the default ports are free; each test stops
    its servers before the next one takes the same ports.
    """
    started: list[ServerProcess] = []

    def start(plugin: str, *options: str) -> ServerProcess:
        server = hosts.start_twistd(plugin, *options, cwd=tmp_path)
        started.append(server)
        return server

    yield start
    # Every server stops before any is judged: one left running would hold
    # the namespace and the default ports for the tests after this one.
    statuses = [server.stop() for server in started]
    for server, status in zip(started, statuses, strict=True):
        # twistd re-raises the SIGINT that stopped it, as a shell expects.
        assert status in (0, -signal.SIGINT), server.output()
        assert "Traceback" not in server.output()


@pytest.fixture
def baseline() -> Iterator[Callable[[str], tuple[ServerProcess, int]]]:
    """Start a benchmark baseline (benchmarks.baselines.NAME) on a free port; stopped after.

    Each must stop cleanly on Ctrl-C: status 0, no traceback.
    """
    started: list[ServerProcess] = []

    def start(name: str) -> tuple[ServerProcess, int]:
        server, port = start_baseline(name)
        started.append(server)
        return server, port

    yield start
    statuses = [server.stop() for server in started]
    for server, status in zip(started, statuses, strict=True):
        assert status == 0, server.output()
        assert "Traceback" not in server.output()


@pytest.fixture
def closed_tcp_port() -> Iterator[int]:
    """A TCP port that is bound but not listening: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free port of 127.0.0.1 (RedisServer), stopped after the test.

    It saves nothing, so each test gets an empty one. Without redis-server
    the test skips and says why (in CI it fails: see support.system).
    """
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
