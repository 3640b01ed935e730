"""Run labproto and the baselines side by side, and print how they compare.

``python -m benchmarks`` starts each server in turn, pinned to one core,
drives it from a load generator pinned to the other, and repeats the whole
set in interleaved rounds, so that a noisy moment of a shared machine
touches every server alike. It quotes the median of the per-round ratios
against the targets of docs/benchmarks.rst, and writes every figure
(results.json), the table (summary.txt) and a plot of chat fan-out against
the number of users (chat-fanout.png) to --out.

Its part ``redis`` measures one room spread over labchat nodes that share a
Redis (labchat --redis): one node through Redis, and two nodes of half the
users each, against one labchat alone. Each run has a fresh redis-server,
and every process of the server side, the nodes and redis-server alike, is
pinned to the server's core: the same CPU budget as the labchat alone.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.measure import free_port, raise_open_file_limit

ROOT = Path(__file__).resolve().parents[1]
SERVER_CORE, GENERATOR_CORE = "0", "1"
Result = dict[str, Any]


def twistd(*arguments: str) -> list[str]:
    """The command line of a twistd of this Python, in the foreground, without a pid file."""
    return [str(Path(sys.executable).with_name("twistd")), "-n", "--pidfile=", *arguments]


def baseline(module: str, port: int) -> list[str]:
    return [sys.executable, "-m", f"benchmarks.baselines.{module}", "--port", str(port)]


@dataclass(frozen=True)
class Server:
    """A server the benchmark can start: its name in the tables, and its command line.

    A server with web also listens on a web port (labchat's --web), which
    its load generator is told; load is what else its generator is told.
    A server with redis is nodes processes of that command, each given
    --redis and the url of a redis-server started for it alone; the load
    generator spreads the users over them.
    """

    name: str
    command: Callable[[int, int, int], list[str]]  # (port, users, web port) -> argv
    udp: bool = False
    web: bool = False
    load: tuple[str, ...] = ()
    redis: bool = False
    nodes: int = 1


def labchat(port: int, users: int, web_port: int) -> list[str]:
    # Always with its WebSocket endpoint, so that an all-TCP room and a mixed
    # one are measured on the very same server.
    return twistd(
        "labchat", "--port", f"tcp:{port}:interface=127.0.0.1",
        "--web", f"tcp:{web_port}:interface=127.0.0.1",
        "--rate", "0", "--quiet", "--max-users", str(max(users, 1000)), "--max-per-host", "0",
    )  # fmt: skip


# The share of a mixed room's users that connect by WebSocket.
WEBSOCKET_SHARE = 0.5
# labchat with half of its users on its WebSocket endpoint: its name in the tables.
MIXED = "labchat-mixed"
# One labchat node whose room goes through Redis, and two nodes of one room
# on one Redis, each with half the users: their names in the tables.
REDIS_ONE, REDIS_TWO = "labchat-redis1", "labchat-redis2"
# What a labchat node logs once it is in its shared room, and takes logins.
IN_ROOM = b"In room redis://"

SERVERS = {
    server.name: server
    for server in (
        Server("labchat", labchat, web=True),
        Server(
            MIXED, labchat, web=True, load=("--websocket-share", f"{WEBSOCKET_SHARE:g}")
        ),
        Server(REDIS_ONE, labchat, web=True, redis=True),
        Server(REDIS_TWO, labchat, web=True, redis=True, nodes=2),
        Server("twisted-chat", lambda port, users, web: baseline("twisted_chat", port)),
        Server("threaded-chat", lambda port, users, web: baseline("threaded_chat", port)),
        Server(
            "udptime",
            lambda port, users, web: twistd(
                "udptime", "--port", str(port), "--interface", "127.0.0.1", "--quiet"
            ),
            udp=True,
        ),
        Server(
            "twisted-time", lambda port, users, web: baseline("twisted_time", port), udp=True
        ),
        Server(
            "labcalc",
            lambda port, users, web: twistd(
                "labcalc", "--port", f"tcp:{port}:interface=127.0.0.1", "--quiet"
            ),
        ),
        Server("twisted-calc", lambda port, users, web: baseline("twisted_calc", port)),
    )
}


class RunFailed(Exception):
    """A server or a generator did not do its part; the message says which and why."""


class Bench:
    """Starts servers and generators, pinned or not, and keeps their logs in one place."""

    def __init__(self, pin: bool, logs: Path) -> None:
        self.pin = pin
        self.logs = logs
        self.count = 0

    def pinned(self, core: str, argv: list[str]) -> list[str]:
        return ["taskset", "-c", core, *argv] if self.pin else argv

    def start(self, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        """Start a process of the server side, pinned to its core, its output to log_path."""
        with open(log_path, "wb") as log:
            return subprocess.Popen(
                self.pinned(SERVER_CORE, argv),
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def measure(self, server: Server, users: int, generator: list[str]) -> Result:
        """Start server, run generator (its module and arguments) against it, and stop it.

        A server with redis first gets a redis-server of its own, and each of
        its nodes must say it is in the room before the generator starts.
        """
        self.count += 1
        stem = f"{self.count:03d}-{server.name}-{users}"
        taken: set[int] = set()

        def new_port(kind: int = socket.SOCK_STREAM) -> int:
            while True:
                port = free_port(kind)
                if port not in taken:
                    taken.add(port)
                    return port

        redis: subprocess.Popen[bytes] | None = None
        nodes: list[tuple[subprocess.Popen[bytes], Path, int, int]] = []
        try:
            extra: list[str] = []
            if server.redis:
                redis_port = new_port()
                redis_log = self.logs / f"{stem}-redis.log"
                redis = self.start(redis_server(redis_port, self.logs), redis_log)
                wait_until_serving(redis, redis_port, False, redis_log)
                extra = ["--redis", f"redis://127.0.0.1:{redis_port}/0"]
            for node in range(server.nodes):
                port = new_port(socket.SOCK_DGRAM if server.udp else socket.SOCK_STREAM)
                web_port = new_port() if server.web else 0
                log_path = self.logs / (
                    f"{stem}-node{node + 1}.log" if server.nodes > 1 else f"{stem}.log"
                )
                argv = server.command(port, users, web_port) + extra
                nodes.append((self.start(argv, log_path), log_path, port, web_port))
            for process, log_path, port, web_port in nodes:
                wait_until_serving(process, port, server.udp, log_path)
                if server.web:
                    wait_until_serving(process, web_port, False, log_path)
                if server.redis:
                    wait_until_logged(process, IN_ROOM, log_path)
            pids = [process.pid for process, *_ in nodes]
            if redis is not None:
                pids.append(redis.pid)
            command = [
                sys.executable, "-m", *generator,
                "--port", ",".join(str(port) for _, _, port, _ in nodes),
                "--server-pid", ",".join(str(pid) for pid in pids),
            ]  # fmt: skip
            if server.web:
                command += ["--web-port", ",".join(str(web) for *_, web in nodes)]
            done = subprocess.run(
                self.pinned(GENERATOR_CORE, command),
                cwd=ROOT, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
        finally:
            # The nodes first, so that each can say goodbye to its Redis.
            stop(*(process for process, *_ in nodes))
            if redis is not None:
                stop(redis)
        lines = done.stdout.strip().splitlines()
        try:
            result: Result = json.loads(lines[-1])
        except (IndexError, ValueError):
            raise RunFailed(
                f"{generator[0]} against {server.name} printed no result: {done.stderr.strip()}"
            ) from None
        logs = [str(log_path) for _, log_path, *_ in nodes]
        result.update(server=server.name, server_log=" ".join(logs))
        if result.get("seconds"):
            # How busy the server's core was: at most 1 for what runs on one core.
            result["server_core_share"] = result["server_cpu_seconds"] / result["seconds"]
        if server.redis and result.get("server_cpu_seconds_by_pid"):
            # The last pid is redis-server's: its part of the server's CPU.
            redis_cpu, cpu = result["server_cpu_seconds_by_pid"][-1], result["server_cpu_seconds"]
            result.update(
                nodes=server.nodes,
                redis_cpu_seconds=redis_cpu,
                redis_cpu_share=redis_cpu / cpu if cpu else 0.0,
            )
        return result


def redis_server(port: int, directory: Path) -> list[str]:
    """The command line of a redis-server on port of 127.0.0.1 that saves nothing."""
    return [
        shutil.which("redis-server") or "redis-server", "--port", str(port),
        "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory),
    ]  # fmt: skip


def wait_until_logged(process: subprocess.Popen[bytes], text: bytes, log: Path) -> None:
    """Wait until the server wrote text to its log (a labchat node: that it is in its room)."""
    wait_until_ready(process, lambda: text in log.read_bytes(), f"log {text.decode()!r}", log)


def wait_until_serving(process: subprocess.Popen[bytes], port: int, udp: bool, log: Path) -> None:
    serving = serving_udp if udp else serving_tcp
    wait_until_ready(process, lambda: serving(port), f"serve port {port}", log)


def wait_until_ready(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, log: Path
) -> None:
    """Wait up to 30 s until ready() holds; fail, naming what, if the server exits or never does."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RunFailed(f"the server exited with status {process.returncode}: see {log}")
        if ready():
            return
        time.sleep(0.05)
    raise RunFailed(f"the server did not {what} within 30 s: see {log}")


def serving_tcp(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def serving_udp(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        try:
            probe.sendto(b"SEND_TIME", ("127.0.0.1", port))
            probe.recv(100)
        except OSError:
            return False
    return True


def stop(*processes: subprocess.Popen[bytes]) -> None:
    """Stop processes with SIGTERM, all at once, and kill any that lingers past 15 s."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rotated(items: Sequence[Any], by: int) -> list[Any]:
    """items, starting at a different one each round, so that none always runs first."""
    if not items:
        return []
    by %= len(items)
    return [*items[by:], *items[:by]]


def median_ratio(
    results: dict[tuple[str, int], list[Result]], figure: str, ours: str, theirs: str, users: int
) -> float | None:
    """The median over rounds of ours' figure over theirs', round by round.

    A round where either run failed has no ratio.
    """
    theirs_by_round = {row["round"]: row for row in results.get((theirs, users), [])}
    ratios = [
        row[figure] / theirs_by_round[row["round"]][figure]
        for row in results.get((ours, users), [])
        if theirs_by_round.get(row["round"], {}).get(figure)
    ]
    return statistics.median(ratios) if ratios else None


def median_of(rows: list[Result], figure: str) -> float:
    return statistics.median(row[figure] for row in rows)


def websocket_cost(chat: dict[tuple[str, int], list[Result]], users: int) -> Result | None:
    """What WebSocket users cost labchat in a room of users: the mixed room against the
    all-TCP one, round by round, as medians over the rounds where both ran.

    The CPU per delivery of a WebSocket delivery alone is derived: the mixed
    room's cost is taken as share s of WebSocket deliveries and 1 - s of TCP
    deliveries at the all-TCP room's cost, so it is (mixed - tcp (1 - s)) / s.
    """
    tcp_by_round = {row["round"]: row for row in chat.get(("labchat", users), [])}
    rounds = []
    for mixed in chat.get((MIXED, users), []):
        tcp = tcp_by_round.get(mixed["round"])
        if tcp is None or not tcp["server_cpu_us_per_delivery"] or not mixed["deliveries"]:
            continue
        share = mixed["websocket_deliveries"] / mixed["deliveries"]
        tcp_cost = tcp["server_cpu_us_per_delivery"]
        mixed_cost = mixed["server_cpu_us_per_delivery"]
        websocket_only = (mixed_cost - tcp_cost * (1 - share)) / share if share else 0.0
        rounds.append({
            "tcp_cpu_us": tcp_cost,
            "mixed_cpu_us": mixed_cost,
            "ratio": mixed_cost / tcp_cost,
            "websocket_cpu_us": websocket_only,
            "websocket_ratio": websocket_only / tcp_cost,
            "tcp_rate": tcp["deliveries_per_second"],
            "mixed_rate": mixed["deliveries_per_second"],
            "rate_ratio": mixed["deliveries_per_second"] / tcp["deliveries_per_second"],
            "tcp_p99_ms": tcp["latency_p99_ms"],
            "mixed_tcp_p99_ms": mixed["tcp_latency_p99_ms"],
            "mixed_websocket_p99_ms": mixed["websocket_latency_p99_ms"],
            "share": share,
        })  # fmt: skip
    if not rounds:
        return None
    return {"rounds": len(rounds), **{key: median_of(rounds, key) for key in rounds[0]}}


def machine() -> dict[str, str]:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import twisted

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": f"{model}, {os.cpu_count()} cores",
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "commit": commit or "unknown",
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
    }


def chat_load(users: int, options: argparse.Namespace, *extra: str) -> list[str]:
    return [
        "benchmarks.chatload", "--users", str(users), "--seconds", str(options.seconds), *extra,
    ]


def run(options: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    """Every measurement options ask for, in interleaved rounds, by server and users."""
    bench = Bench(options.pin, options.out / "logs")
    chat: dict[tuple[str, int], list[Result]] = {}
    other: dict[tuple[str, int], list[Result]] = {}
    failed: list[Result] = []
    skipped: list[str] = []
    chat_runs = []
    if "chat" in options.only:
        chat_runs += [("labchat", n) for n in options.plot_users]
        chat_runs += [("threaded-chat", n) for n in options.plot_users]
        chat_runs += [("twisted-chat", n) for n in options.ratio_users]
        chat_runs += [(s, n) for s in ("labchat", "threaded-chat") for n in options.ratio_users]
    if "websocket" in options.only:
        # The mixed room and the all-TCP one of the same size, in every round.
        chat_runs += [(s, n) for s in ("labchat", MIXED) for n in options.ratio_users]
    if "redis" in options.only:
        if shutil.which("redis-server") is None:
            skipped.append(
                "One room on Redis: not run, redis-server is not installed"
                " (apt-get install redis-server)"
            )
            say(skipped[-1])
        else:
            # One node through Redis, two nodes on one Redis, and labchat alone,
            # of the same size in every round.
            chat_runs += [
                (s, n) for s in ("labchat", REDIS_ONE, REDIS_TWO) for n in options.redis_users
            ]
    chat_runs = sorted(set(chat_runs), key=lambda run: (run[1], run[0]))
    other_runs = []
    if "udptime" in options.only:
        other_runs += [("udptime", 0), ("twisted-time", 0)]
    if "labcalc" in options.only:
        other_runs += [("labcalc", 50), ("twisted-calc", 50)]
    for round_number in range(options.rounds):
        say(f"round {round_number + 1} of {options.rounds}")
        runs = chat_runs + other_runs
        for name, users in rotated(runs, round_number):
            server = SERVERS[name]
            if server.udp:
                generator = ["benchmarks.timeload", "--seconds", str(options.seconds)]
            elif name.endswith("calc"):
                generator = ["benchmarks.calcload", "--sessions", str(users),
                             "--seconds", str(options.seconds)]
            else:
                generator = chat_load(users, options, *server.load)
            try:
                result = bench.measure(server, users, generator)
            except (RunFailed, subprocess.TimeoutExpired) as e:
                result = {"server": name, "users": users, "error": str(e), "server_log": ""}
            result["round"] = round_number
            say(f"  {one_line(result)}")
            if result.get("error"):
                failed.append(result)
                continue
            (other if server.udp or name.endswith("calc") else chat).setdefault(
                (name, users), []
            ).append(result)
    idle: Result | None = None
    if "idle" in options.only:
        say(f"idle room: {options.idle_users} users")
        try:
            idle = bench.measure(
                SERVERS["labchat"],
                options.idle_users,
                chat_load(
                    options.idle_users, options, "--senders", "1", "--lines", "1",
                    "--login-concurrency", "256",
                ),
            )
        except (RunFailed, subprocess.TimeoutExpired) as e:
            idle = {"server": "labchat", "error": str(e), "server_log": ""}
        say(f"  {one_line(idle)}")
        if idle.get("error"):
            failed.append(idle)
            idle = None
    return {"chat": chat, "other": other, "idle": idle, "failed": failed, "skipped": skipped}


def one_line(result: Result) -> str:
    """A measurement as one line of progress."""
    if result.get("error"):
        return f"{result['server']}: FAILED: {result['error']}"
    if result["service"] == "chat":
        return (
            f"{result['server']:<14} {result['users']:>6} users "
            f"{result['deliveries_per_second']:>12,.0f} deliveries/s  "
            f"p99 {result['latency_p99_ms']:7.1f} ms  "
            f"{result['server_cpu_us_per_delivery']:.3f} us CPU/delivery  lost {result['lost']}"
        )
    rate = result.get("answers_per_second", result.get("requests_per_second", 0.0))
    cpu = result.get("server_cpu_us_per_answer", result.get("server_cpu_us_per_request", 0.0))
    return f"{result['server']:<14} {rate:>12,.0f} /s  {cpu:.2f} us CPU each"


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: a median ratio and the bound it must meet."""

    what: str
    ratio: float | None
    bound: float
    at_least: bool

    def met(self) -> bool | None:
        if self.ratio is None:
            return None
        return self.ratio >= self.bound if self.at_least else self.ratio <= self.bound

    def row(self) -> str:
        sign = ">=" if self.at_least else "<="
        shown = "-" if self.ratio is None else f"{self.ratio:.2f}"
        verdict = {True: "met", False: "MISSED", None: "not run"}[self.met()]
        return f"{self.what:<58} {sign} {self.bound:<5g} {shown:>6}  {verdict}"


def targets(figures: dict[str, Any], ratio_users: Sequence[int]) -> list[Target]:
    chat, other = figures["chat"], figures["other"]
    rows = []
    for users in ratio_users:
        threaded_bound = 3.0 if users <= 100 else 2.0
        for theirs, bound in (("twisted-chat", 1.2), ("threaded-chat", threaded_bound)):
            rows.append(Target(
                f"chat deliveries/s, labchat / {theirs}, {users} users",
                median_ratio(chat, "deliveries_per_second", "labchat", theirs, users), bound, True,
            ))
        rows.append(Target(
            f"chat CPU per delivery, labchat / twisted-chat, {users} users",
            median_ratio(chat, "server_cpu_us_per_delivery", "labchat", "twisted-chat", users),
            0.8, False,
        ))
    rows += [websocket_target(chat, users) for users in ratio_users]
    rows.append(Target(
        "udptime CPU per answer, udptime --quiet / twisted-time",
        median_ratio(other, "server_cpu_us_per_answer", "udptime", "twisted-time", 0), 1.0, False,
    ))
    rows.append(Target(
        "labcalc requests/s, 50 sessions, labcalc --quiet / twisted-calc",
        median_ratio(other, "requests_per_second", "labcalc", "twisted-calc", 50), 1.0, True,
    ))
    return rows


def summary(figures: dict[str, Any], options: argparse.Namespace, about: dict[str, str]) -> str:
    """The results as the text printed at the end and kept in summary.txt."""
    chat, other, idle = figures["chat"], figures["other"], figures["idle"]
    out = [
        f"labproto benchmarks, {about['date']}, commit {about['commit']}",
        f"machine: {about['cpu']}; {about['system']}; Python {about['python']}; "
        f"Twisted {about['twisted']}",
        f"command: {options.command}",
        f"{options.rounds} interleaved rounds, {options.seconds:g} s of load each, "
        + ("server on core 0, generator on core 1" if options.pin else "NOT pinned"),
        "",
    ]
    if chat:
        out += [
            "Chat fan-out: 10 senders, 64-byte lines, 8 in flight each; medians over rounds",
            "(gen CPU: the share of its core the load generator used; from 0.95 up, the rate"
            " is the generator's limit)",
            f"{'server':<14} {'users':>6} {'deliveries/s':>13} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'CPU us/delivery':>16} {'gen CPU':>8}",
        ]
        for (name, users), rows in sorted(chat.items(), key=lambda item: (item[0][1], item[0][0])):
            if SERVERS[name].redis:
                continue  # in the section of its own, below
            out.append(
                f"{name:<14} {users:>6} {median_of(rows, 'deliveries_per_second'):>13,.0f} "
                f"{median_of(rows, 'latency_p50_ms'):>8.2f} "
                f"{median_of(rows, 'latency_p99_ms'):>8.2f} "
                f"{median_of(rows, 'server_cpu_us_per_delivery'):>16.3f} "
                f"{median_of(rows, 'generator_cpu_share'):>8.2f}"
            )
        if any(name == MIXED for name, _ in chat):
            out.append(
                f"({MIXED}: labchat with {WEBSOCKET_SHARE:.0%} of the users, senders and "
                "observers on its WebSocket endpoint /ws, the rest on TCP)"
            )
        measured = sum(len(rows) for rows in chat.values())
        out += [f"Lines lost or out of order: none in {measured} measurements.", ""]
        out += websocket_section(chat, options.ratio_users)
        out += redis_section(chat, options.redis_users)
    for note in figures.get("skipped", []):
        out += [note, ""]
    if other:
        out.append(f"{'server':<14} {'per second':>12} {'CPU us each':>12} {'lost/bad':>9}")
        for (name, _), rows in sorted(other.items()):
            rate = "answers_per_second" if name.endswith("time") else "requests_per_second"
            cpu = (
                "server_cpu_us_per_answer" if name.endswith("time") else "server_cpu_us_per_request"
            )
            bad = sum(row.get("lost", 0) + row.get("bad_answers", 0) for row in rows)
            out.append(
                f"{name:<14} {median_of(rows, rate):>12,.0f} {median_of(rows, cpu):>12.2f} {bad:>9}"
            )
        out.append("")
    if idle:
        out += [
            f"Idle room: {idle['users']} users logged in to one labchat",
            f"  logins: {idle['login_seconds']:.2f} s until all were welcomed, "
            f"{idle['settle_seconds']:.2f} s until every join notice was delivered "
            f"({idle['login_server_cpu_seconds']:.2f} s of server CPU)",
            f"  memory: {idle['server_rss_bytes'] / 2**20:.1f} MiB resident, "
            f"{idle['server_rss_per_user_bytes']:,.0f} bytes per user "
            f"(target: at most 4,096)",
            f"  one message reached {idle['deliveries']} of {idle['users']} users, "
            f"lost {idle['lost']}",
            "",
        ]
    if figures["failed"]:
        out.append("FAILED (left out of the figures above):")
        out += [
            f"  round {row.get('round', 0) + 1}: {row['server']}: {row['error']}"
            for row in figures["failed"]
        ]
        out.append("")
    out.append("Targets (median of the per-round ratios)")
    out += [target.row() for target in targets(figures, options.ratio_users)]
    return "\n".join(out) + "\n"


def websocket_target(chat: dict[tuple[str, int], list[Result]], users: int) -> Target:
    return Target(
        f"chat CPU per delivery, {MIXED} / labchat, {users} users",
        median_ratio(chat, "server_cpu_us_per_delivery", MIXED, "labchat", users), 1.5, False,
    )  # fmt: skip


def websocket_section(chat: dict[tuple[str, int], list[Result]], sizes: Sequence[int]) -> list[str]:
    """The WebSocket framing cost: each size's mixed room against its all-TCP room."""
    costs = {users: websocket_cost(chat, users) for users in sizes}
    if not any(costs.values()):
        return []
    out = [
        f"WebSocket framing cost: {MIXED} against labchat (all TCP), paired by round;"
        " medians over rounds",
        f"{'':>6} {'server CPU us per delivery':^27}  {'WS delivery*':^15}"
        f" {'deliveries/s':>13}  {'p99 ms':^25}",
        f"{'users':>6} {'all-TCP':>8} {'mixed':>7} {'mixed/TCP':>10}  {'us':>6} {'/ TCP':>8}"
        f" {'mixed / TCP':>13}  {'all-TCP':>7} {'mixed TCP':>9} {'WS':>7}",
    ]
    for users, cost in costs.items():
        if cost is None:
            continue
        out.append(
            f"{users:>6} {cost['tcp_cpu_us']:>8.3f} {cost['mixed_cpu_us']:>7.3f}"
            f" {cost['ratio']:>10.2f}  {cost['websocket_cpu_us']:>6.3f}"
            f" {cost['websocket_ratio']:>8.2f} {cost['rate_ratio']:>13.2f}"
            f"  {cost['tcp_p99_ms']:>7.2f} {cost['mixed_tcp_p99_ms']:>9.2f}"
            f" {cost['mixed_websocket_p99_ms']:>7.2f}"
        )
    out += [
        "(p99 of the mixed room: as its TCP and its WebSocket observers timed it."
        " * Derived, not measured:",
        " one WebSocket delivery alone, (mixed - all-TCP x (1 - s)) / s with s the WebSocket"
        " users' share of the",
        " deliveries, taking a TCP delivery to cost in the mixed room what it costs in the"
        " all-TCP one.)",
    ]
    return [line.rstrip() for line in out] + [""]


def redis_section(chat: dict[tuple[str, int], list[Result]], sizes: Sequence[int]) -> list[str]:
    """One room on Redis: one node through it and two nodes on it, against labchat alone."""
    sizes = [users for users in sizes if (REDIS_ONE, users) in chat or (REDIS_TWO, users) in chat]
    if not sizes:
        return []
    out = [
        "One room on Redis (labchat --redis URL): the nodes and redis-server all on core 0;"
        " medians over rounds",
        f"{'server':<14} {'nodes':>5} {'users':>6} {'deliveries/s':>13} {'p50 ms':>8}"
        f" {'p99 ms':>8} {'CPU us/delivery':>16} {'redis':>6} {'core':>5} {'gen CPU':>8}",
    ]
    for users in sizes:
        for name in ("labchat", REDIS_ONE, REDIS_TWO):
            rows = chat.get((name, users))
            if not rows:
                continue
            redis_share = (
                f"{median_of(rows, 'redis_cpu_share'):>6.2f}"
                if all("redis_cpu_share" in row for row in rows)
                else f"{'-':>6}"
            )
            out.append(
                f"{name:<14} {SERVERS[name].nodes:>5} {users:>6}"
                f" {median_of(rows, 'deliveries_per_second'):>13,.0f}"
                f" {median_of(rows, 'latency_p50_ms'):>8.2f}"
                f" {median_of(rows, 'latency_p99_ms'):>8.2f}"
                f" {median_of(rows, 'server_cpu_us_per_delivery'):>16.3f}"
                f" {redis_share} {median_of(rows, 'server_core_share'):>5.2f}"
                f" {median_of(rows, 'generator_cpu_share'):>8.2f}"
            )
    out += [
        "(CPU us/delivery: of every server process together; redis: redis-server's share of"
        " that CPU; core: the",
        " server processes' CPU seconds per second of load, at most 1 on the one core they"
        " share)",
        "",
        "The cost of Redis: median of the per-round ratios, paired by round",
        f"{'':<48} {'users':>6} {'CPU us/delivery':>16} {'deliveries/s':>13} {'p99 ms':>7}",
    ]
    comparisons = (
        ("the Redis hop", REDIS_ONE, "labchat"),
        ("two nodes", REDIS_TWO, "labchat"),
        ("two nodes / one", REDIS_TWO, REDIS_ONE),
    )
    for users in sizes:
        for what, ours, theirs in comparisons:
            ratios = [
                median_ratio(chat, figure, ours, theirs, users)
                for figure in (
                    "server_cpu_us_per_delivery", "deliveries_per_second", "latency_p99_ms"
                )
            ]  # fmt: skip
            if any(ratio is None for ratio in ratios):
                continue
            cpu, rate, p99 = ratios
            out.append(
                f"{f'{what}: {ours} / {theirs}':<48} {users:>6} {cpu:>16.2f} {rate:>13.2f}"
                f" {p99:>7.2f}"
            )
    return [line.rstrip() for line in out] + [""]


def plot(chat: dict[tuple[str, int], list[Result]], path: Path) -> bool:
    """Plot deliveries/s and p99 latency against users; False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (rate_axes, latency_axes) = plt.subplots(1, 2, figsize=(10, 4))
    styles = (("labchat", "o-"), (MIXED, "D-."), ("threaded-chat", "s--"), ("twisted-chat", "^:"))
    for name, style in styles:
        points = sorted((users, rows) for (server, users), rows in chat.items() if server == name)
        if not points:
            continue
        users = [n for n, _ in points]
        rate_axes.plot(
            users, [median_of(rows, "deliveries_per_second") for _, rows in points], style,
            label=name,
        )
        latency_axes.plot(
            users, [median_of(rows, "latency_p99_ms") for _, rows in points], style, label=name
        )
    for axes, label in ((rate_axes, "deliveries per second"), (latency_axes, "p99 latency (ms)")):
        axes.set_xscale("log")
        axes.set_xlabel("users in the room (10 of them sending)")
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    latency_axes.set_yscale("log")
    rate_axes.set_ylim(bottom=0)
    figure.suptitle("Chat fan-out: 64-byte lines, 8 in flight per sender, medians over rounds")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def user_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"not a list of user counts from 1 up: {text!r}")
    return counts


PARTS = ("chat", "websocket", "redis", "idle", "udptime", "labcalc")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure labchat, udptime and labcalc against their baselines in "
        "interleaved rounds, print the ratios against the targets, and write results.json, "
        "summary.txt and chat-fanout.png to --out.",
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds of load each (2)")
    parser.add_argument(
        "--plot-users", type=user_counts, default=[10, 100, 1000, 5000],
        help="room sizes for labchat and threaded-chat (10,100,1000,5000)",
    )
    parser.add_argument(
        "--ratio-users", type=user_counts, default=[100, 1000],
        help="room sizes where the targets are checked, also against twisted-chat and with "
        "half the users on WebSocket (100,1000)",
    )
    parser.add_argument(
        "--redis-users", type=user_counts, default=[1000],
        help="room sizes of the part redis: one node through Redis, and two nodes of half "
        "as many users each, against labchat alone (1000)",
    )  # fmt: skip
    parser.add_argument(
        "--idle-users", type=int, default=10000, help="users of the idle room (10000)"
    )
    parser.add_argument(
        "--only", default=",".join(PARTS),
        help=f"which parts to run, of {','.join(PARTS)} (all)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "build" / "benchmarks",
        help="where results go (build/benchmarks)",
    )
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false",
        help="do not pin the server and the generator to cores 0 and 1",
    )
    options = parser.parse_args(argv)
    options.only = [part.strip() for part in options.only.split(",") if part.strip()]
    unknown = set(options.only) - set(PARTS)
    if unknown:
        parser.error(f"--only takes {', '.join(PARTS)}, not {', '.join(sorted(unknown))}")
    if options.rounds < 1 or options.seconds <= 0:
        parser.error("--rounds must be at least 1 and --seconds more than 0")
    options.command = shlex.join(["python", "-m", "benchmarks", *(argv or sys.argv[1:])])
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(argv)
    if options.pin and (shutil.which("taskset") is None or (os.cpu_count() or 1) < 2):
        print("taskset or a second core is missing: running unpinned", file=sys.stderr)
        options.pin = False
    # Servers and generators inherit it: thousands of users are thousands of open files.
    raise_open_file_limit()
    options.out.mkdir(parents=True, exist_ok=True)
    logs = options.out / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()

    def say(text: str) -> None:
        print(text, flush=True)

    about = machine()
    figures = run(options, say)
    text = summary(figures, options, about)
    (options.out / "summary.txt").write_text(text)
    raw = {
        "machine": about,
        "command": options.command,
        "chat": [row for rows in figures["chat"].values() for row in rows],
        "other": [row for rows in figures["other"].values() for row in rows],
        "idle": figures["idle"],
        "failed": figures["failed"],
        "skipped": figures["skipped"],
    }
    (options.out / "results.json").write_text(json.dumps(raw, indent=1, sort_keys=True))
    print()
    print(text, end="")
    if figures["chat"]:
        png = options.out / "chat-fanout.png"
        if plot(figures["chat"], png):
            print(f"plot: {png}")
        else:
            print("no plot: matplotlib is not installed (pip install -e '.[bench]')")
    failed = figures["failed"]
    for row in failed:
        print(
            f"failed: {row['server']}: {row['error']} (log: {row['server_log']})", file=sys.stderr
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
