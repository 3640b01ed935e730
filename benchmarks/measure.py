"""What every load generator shares: the server's own figures, read from /proc, and free ports.

A generator reads the server's CPU time and memory itself, from the
server's /proc entry, at the start and the end of its load, so that only the
load is counted, not the server's start or the logins before it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from dataclasses import dataclass
from typing import Any

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ServerMeter:
    """The CPU time and resident memory of one server process, by its pid."""

    pid: int

    def cpu_seconds(self) -> float:
        """User plus system CPU seconds the process has used so far."""
        with open(f"/proc/{self.pid}/stat") as stat:
            # The command name, in parentheses, may hold spaces: split after it.
            fields = stat.read().rpartition(")")[2].split()
        # utime and stime are fields 14 and 15 of proc(5), 12 and 13 after the name.
        return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND

    def rss_bytes(self) -> int:
        """The process's resident memory now, in bytes."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f"/proc/{self.pid}/status has no VmRSS line")


class NoMeter:
    """Stands in for ServerMeter when no server pid is given: every figure is 0."""

    def cpu_seconds(self) -> float:
        return 0.0

    def rss_bytes(self) -> int:
        return 0


def meter_for(pid: int | None) -> ServerMeter | NoMeter:
    """A meter of the server process pid, or one that reads nothing when pid is None."""
    return NoMeter() if pid is None else ServerMeter(pid)


@dataclass(frozen=True)
class ServerMeters:
    """The CPU time and resident memory of the processes of one server, summed by pid.

    A chat room spread over nodes that share a Redis is served by every node
    and by the redis-server: their figures together are the server's. No
    pids at all read 0, as NoMeter does.
    """

    pids: tuple[int, ...]

    def cpu_seconds_each(self) -> list[float]:
        """The CPU seconds of each process so far, in the order of pids."""
        return [ServerMeter(pid).cpu_seconds() for pid in self.pids]

    def cpu_seconds(self) -> float:
        return sum(self.cpu_seconds_each())

    def rss_bytes(self) -> int:
        return sum(ServerMeter(pid).rss_bytes() for pid in self.pids)


def meters_for(pids: list[int] | None) -> ServerMeters:
    """A meter of the server processes pids together (none: every figure is 0)."""
    return ServerMeters(tuple(pids or ()))


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port of 127.0.0.1 free now, for a server about to be started on it."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit, and return it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1024 * 1024
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def report(result: dict[str, Any]) -> None:
    """Print a generator's result as the one JSON line the runner reads, and exit on error."""
    print(json.dumps(result, sort_keys=True), flush=True)
    if result.get("error"):
        print(f"error: {result['error']}", file=sys.stderr)
        sys.exit(1)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value below which fraction of sorted_values lie (nearest rank), or 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


class BenchmarkFailed(Exception):
    """A generator could not measure what it was asked to; the message says why."""


def positive(kind: type[int] | type[float]) -> Any:
    """An argparse type: a number of kind greater than 0."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
        return value

    return parse


def numbers(text: str) -> list[int]:
    """An argparse type: one number from 1 up, or several separated by commas."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or a list of numbers: {text!r}") from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be from 1 up: {text!r}")
    return values


def generator_parser(
    module: str, transport: str, description: str, several: bool = False
) -> argparse.ArgumentParser:
    """The options every load generator takes: where the server is, its pid, how long.

    With several, --port and --server-pid take a list each (numbers()): the
    ports of the nodes of one server, and the pids of all its processes.
    """
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{module}", description=description)
    parser.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    if several:
        parser.add_argument(
            "--port",
            type=numbers,
            required=True,
            help=f"server {transport} port, or the ports of several nodes of one server, "
            "separated by commas (the users are spread over them)",
        )
        parser.add_argument(
            "--server-pid",
            type=numbers,
            default=None,
            help="pid of the server process, or the pids of all its processes separated by "
            "commas, whose CPU times and memory are read from /proc and summed (without it "
            "those figures are 0)",
        )
    else:
        parser.add_argument("--port", type=int, required=True, help=f"server {transport} port")
        parser.add_argument(
            "--server-pid",
            type=int,
            default=None,
            help="pid of the server process, whose CPU time and memory are read from /proc "
            "(without it those figures are 0)",
        )
    parser.add_argument(
        "--seconds",
        type=positive(float),
        default=2.0,
        help="how long to send for (default 2)",
    )
    return parser
