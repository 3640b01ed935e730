"""The chat load generator and the benchmark runner, run as a user runs them, on a tiny load.

Nothing here asserts on a rate or a duration: the machine is shared, and
speed is what the benchmark itself reports (docs/benchmarks.rst).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.bench import ROOT, assert_failed, generate, measured
from support.processes import TCP_LISTENING, ServerProcess, child_environment, tcp_server
from support.redis import RedisServer
from support.system import missing

from benchmarks import chatload, run

Start = Callable[..., ServerProcess]
USERS = 6


def chat_load(port: int | str, pid: int | str, *extra: str) -> dict[str, Any]:
    return measured(
        "chatload", "--port", str(port), "--server-pid", str(pid),
        "--users", str(USERS), "--senders", "2", "--observers", "2", "--seconds", "0.3",
        *extra,
    )  # fmt: skip


def assert_every_line_reached_every_user(figures: dict[str, Any]) -> None:
    assert figures["service"] == "chat"
    assert figures["users"] == USERS
    assert figures["lines_sent"] > 0
    assert figures["deliveries"] == figures["lines_sent"] * USERS
    assert (figures["lost"], figures["duplicated"]) == (0, 0)
    assert figures["latency_samples"] > 0
    assert 0 < figures["latency_p50_ms"] <= figures["latency_p99_ms"]
    assert figures["server_cpu_seconds"] >= 0
    assert figures["server_rss_bytes"] > 0


def test_chatload_measures_labchat(servers: Start) -> None:
    server, port = tcp_server(servers, "labchat", "--rate", "0", "--quiet")
    assert_every_line_reached_every_user(chat_load(port, server.process.pid))


@pytest.mark.parametrize("name", ["twisted_chat", "threaded_chat"])
def test_chatload_measures_each_chat_baseline(baseline, name: str) -> None:
    server, port = baseline(name)
    assert_every_line_reached_every_user(chat_load(port, server.process.pid))


# What a labchat node logs once it is in its room on Redis, and takes logins.
IN_ROOM = r"In room redis://"


def redis_node(servers: Start, redis: RedisServer, *options: str) -> tuple[ServerProcess, int]:
    """A labchat node of the room on redis, on a free port; once it is in the room, unless
    Redis is down."""
    server, port = tcp_server(
        servers, "labchat", "--redis", redis.url, "--rate", "0", "--quiet", *options
    )
    if redis.process is not None and redis.process.poll() is None:
        server.wait_for(IN_ROOM)
    return server, port


# redis_server before servers: the nodes stop, and say goodbye to Redis, before Redis does.
def test_chatload_spreads_the_room_over_two_nodes_on_redis(
    redis_server: RedisServer, servers: Start
) -> None:
    (a, port_a), (b, port_b) = redis_node(servers, redis_server), redis_node(servers, redis_server)
    assert redis_server.process is not None
    pids = [a.process.pid, b.process.pid, redis_server.process.pid]
    figures = chat_load(f"{port_a},{port_b}", ",".join(map(str, pids)))
    # Every line of every sender, whichever node it was sent to, reached every
    # user of both nodes once, in each sender's order (the observers check it).
    assert_every_line_reached_every_user(figures)
    assert figures["ports"] == [port_a, port_b]
    assert figures["users_by_port"] == [USERS // 2, USERS // 2]
    assert figures["deliveries_by_port"] == [figures["lines_sent"] * USERS // 2] * 2
    assert figures["server_pids"] == pids
    assert len(figures["server_cpu_seconds_by_pid"]) == 3
    assert sum(figures["server_cpu_seconds_by_pid"]) == pytest.approx(
        figures["server_cpu_seconds"]
    )
    assert figures["login_retries"] == 0


def test_chatload_waits_for_a_node_not_yet_in_its_room(
    redis_server: RedisServer, servers: Start
) -> None:
    redis_server.stop()
    node, port = redis_node(servers, redis_server)
    node.wait_for(r"Redis unreachable at redis://")
    # Each user is told "ERROR room unavailable, try again", and tries again
    # until the room takes it, or the time for logins is out.
    result = generate("chatload", "--port", str(port), "--users", "2", "--login-timeout", "1")
    assert result.returncode == 1
    assert re.fullmatch(
        r"error: timed out logging in 2 users \(0 welcomed, \d+ logins refused as the room"
        r" was unavailable\)\n",
        result.stderr,
    ), result.stderr
    redis_server.start()
    node.wait_for(IN_ROOM)
    figures = chat_load(port, node.process.pid)
    assert_every_line_reached_every_user(figures)


def test_chatload_deals_each_kind_of_user_to_the_nodes_in_turn() -> None:
    options = chatload.parse_arguments(
        ["--port", "7001,7002", "--web-port", "8001,8002", "--server-pid", "11,12,13",
         "--users", "1000"]
    )  # fmt: skip
    assert (options.port, options.web_port, options.server_pid) == (
        [7001, 7002], [8001, 8002], [11, 12, 13]
    )  # fmt: skip
    load = chatload.ChatLoad(options)
    load.close()
    # The senders are every 100th user, the observers every 125th: every
    # node still gets half of each kind, not all of them.
    for node in (0, 1):
        mine = {index for index in range(1000) if load.nodes[index] == node}
        assert len(mine) == 500
        assert len(mine & load.sender_indexes) == 5
        assert len(mine & load.observer_indexes) == 4


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--port", "1,2", "--web-port", "3"], "--web-port needs one port for each of the 2"),
        (["--port", "1,x"], "not a number or a list of numbers: '1,x'"),
        (["--port", "1", "--server-pid", "0"], "must be from 1 up: '0'"),
    ],
)
def test_chatload_refuses_ports_that_do_not_match(arguments: list[str], complaint: str) -> None:
    done = generate("chatload", *arguments)
    assert done.returncode == 2
    assert complaint in done.stderr


def test_chatload_stops_after_lines_per_sender_and_a_room_of_one_works(servers: Start) -> None:
    server, port = tcp_server(servers, "labchat", "--quiet")
    figures = measured(
        "chatload", "--port", str(port), "--users", "1", "--senders", "5", "--lines", "3"
    )  # fmt: skip
    assert (figures["senders"], figures["lines_sent"], figures["deliveries"]) == (1, 3, 3)


def test_chatload_reports_labchats_flood_control_as_lost_lines(servers: Start) -> None:
    # With labchat's default --rate, a sender past its burst gets "slow down"
    # instead of its line: the generator must say so, not report a rate.
    server, port = tcp_server(servers, "labchat", "--quiet", "--burst", "2")
    result = generate(
        "chatload", "--port", str(port), "--users", "2", "--senders", "1", "--lines", "5"
    )
    assert result.returncode == 1
    assert "unexpected line b'ERROR slow down: message dropped\\r'" in result.stderr


def test_chatload_at_a_closed_port_fails_with_one_line(closed_tcp_port: int) -> None:
    result = generate("chatload", "--port", str(closed_tcp_port), "--users", "1")
    assert_failed(result, f"connection refused: nothing listens on TCP 127.0.0.1:{closed_tcp_port}")


def test_chatload_at_another_service_says_what_it_was_told(servers: Start) -> None:
    server = servers("labcalc", "--port", "tcp:0:interface=127.0.0.1", "--quiet")
    port = int(server.wait_for(TCP_LISTENING).group(1))
    result = generate("chatload", "--port", str(port), "--users", "1")
    assert_failed(
        result,
        "u00000 was not welcomed: the server said "
        "b'Hello u00000! Send an expression like 12 + 42, or q to quit.'",
    )


def test_the_runner_measures_everything_once_and_writes_its_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    redis = shutil.which("redis-server") is not None
    done = generate(
        "run", "--rounds", "1", "--seconds", "0.2", "--plot-users", "3", "--ratio-users", "3",
        "--redis-users", "4", "--idle-users", "20", "--no-pin", "--out", str(out), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (out / "summary.txt").read_text()
    assert done.stdout.endswith(summary + f"plot: {out / 'chat-fanout.png'}\n")
    for server in ("labchat", "labchat-mixed", "twisted-chat", "threaded-chat"):
        assert f"\n{server:<14}      3 " in summary
    for server in ("udptime", "twisted-time", "labcalc", "twisted-calc"):
        assert f"\n{server:<14} " in summary
    assert "one message reached 20 of 20 users, lost 0" in summary
    assert f"Lines lost or out of order: none in {7 if redis else 4} measurements." in summary
    assert "NOT pinned" in summary
    # The mixed room against the all-TCP one, and its target among the others.
    websocket = summary.split("WebSocket framing cost: ")[1].split("\n\n")[0].splitlines()
    assert websocket[3].split()[0] == "3"
    targets = summary.split("Targets (median of the per-round ratios)\n")[1].splitlines()
    assert any(
        row.startswith("chat CPU per delivery, labchat-mixed / labchat, 3 users")
        for row in targets
    ), summary
    verdicts = [row.split()[-1] for row in targets]
    assert len(verdicts) == 6 and set(verdicts) <= {"met", "MISSED"}, summary
    results = json.loads((out / "results.json").read_text())
    on_redis = {"labchat-redis1", "labchat-redis2"} if redis else set()
    assert {row["server"] for row in results["chat"]} == {
        "labchat", "labchat-mixed", "twisted-chat", "threaded-chat", *on_redis
    }
    if redis:
        assert_the_redis_section(summary, 4)
        (two,) = [row for row in results["chat"] if row["server"] == "labchat-redis2"]
        assert two["users_by_port"] == [2, 2] and len(two["server_cpu_seconds_by_pid"]) == 3
        assert two["nodes"] == 2 and 0 <= two["redis_cpu_share"] <= 1
        # Each node and redis-server logged where the runner keeps its logs.
        logs = sorted(path.name for path in (out / "logs").iterdir())
        assert any(name.endswith("-labchat-redis2-4-node2.log") for name in logs), logs
        assert sum(name.endswith("-redis.log") for name in logs) == 2, logs
    else:
        assert "One room on Redis: not run, redis-server is not installed" in summary
    (mixed,) = [row for row in results["chat"] if row["server"] == "labchat-mixed"]
    assert mixed["websocket_users"] == 1 and mixed["websocket_deliveries"] > 0
    assert results["failed"] == []
    assert (out / "chat-fanout.png").read_bytes().startswith(b"\x89PNG")
    if not redis:
        # Everything else was checked; say that the rooms on Redis were not.
        missing("redis-server is not installed: apt-get install redis-server")


def assert_the_redis_section(summary: str, users: int) -> None:
    """The section of the room on Redis: labchat and its two kinds of run, and their ratios."""
    section = summary.split("One room on Redis (labchat --redis URL): ")[1].split("\n\n")
    rows, ratios = section[0].splitlines()[2:5], section[1].splitlines()[2:]
    assert [row.split()[:3] for row in rows] == [
        ["labchat", "1", str(users)], ["labchat-redis1", "1", str(users)],
        ["labchat-redis2", "2", str(users)],
    ]  # fmt: skip
    assert rows[0].split()[7] == "-"  # no redis-server of its own
    assert [row.split(":")[0] for row in ratios] == [
        "the Redis hop", "two nodes", "two nodes / one"
    ]
    # The two-node, Redis rows are left out of the fan-out table above.
    assert "\nlabchat-redis" not in summary.split("One room on Redis")[0]


def test_the_runner_without_redis_server_says_so_and_skips_that_part(tmp_path: Path) -> None:
    # No redis-server on this PATH (twistd and Python are found by their full path).
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--only", "redis", "--no-pin",
         "--out", str(tmp_path)],
        cwd=ROOT, env={**child_environment(), "PATH": str(tmp_path)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    note = (
        "One room on Redis: not run, redis-server is not installed (apt-get install redis-server)"
    )
    assert done.stdout.startswith(note + "\n")
    assert f"\n{note}\n" in (tmp_path / "summary.txt").read_text()


def test_the_runner_refuses_an_unknown_part() -> None:
    done = generate("run", "--only", "chat,dns")
    assert done.returncode == 2
    assert "--only takes chat, websocket, redis, idle, udptime, labcalc, not dns" in done.stderr


def results(server: str, rates: list[float], cpu: float) -> list[dict[str, Any]]:
    """One chat result per round, at 100 users, with these rates."""
    return [
        {
            "server": server, "users": 100, "round": number, "deliveries_per_second": rate,
            "server_cpu_us_per_delivery": cpu, "latency_p50_ms": 1.0, "latency_p99_ms": 2.0,
        }  # fmt: skip
        for number, rate in enumerate(rates)
    ]


def test_targets_quote_the_median_of_the_per_round_ratios() -> None:
    chat = {
        ("labchat", 100): results("labchat", [300, 100, 500], 1),
        ("twisted-chat", 100): results("twisted-chat", [100, 100, 100], 2),
        ("threaded-chat", 100): results("threaded-chat", [100, 20, 200], 2),
    }
    figures = {"chat": chat, "other": {}, "idle": None, "failed": []}
    rows = {target.what: target for target in run.targets(figures, [100])}
    # Round by round: 300/100, 100/100, 500/100 -> median 3.
    twisted = rows["chat deliveries/s, labchat / twisted-chat, 100 users"]
    assert (twisted.ratio, twisted.met()) == (3.0, True)
    # 3, 5, 2.5 -> median 3, not the ratio of the medians (300/100).
    threaded = rows["chat deliveries/s, labchat / threaded-chat, 100 users"]
    assert (threaded.ratio, threaded.met()) == (3.0, True)
    cpu = rows["chat CPU per delivery, labchat / twisted-chat, 100 users"]
    assert (cpu.ratio, cpu.met()) == (0.5, True)
    assert rows["udptime CPU per answer, udptime --quiet / twisted-time"].row().endswith(
        "-  not run"
    )


def test_a_missed_target_says_so() -> None:
    target = run.Target("labcalc requests/s", 0.9, 1.0, at_least=True)
    assert target.row().endswith("0.90  MISSED")


def test_a_round_where_one_side_failed_gives_no_ratio() -> None:
    labchat = results("labchat", [300, 100, 500], 1)
    twisted = results("twisted-chat", [100, 100, 100], 1)
    del twisted[1]  # round 1 failed: labchat's 100 must not meet twisted's round 2
    chat = {("labchat", 100): labchat, ("twisted-chat", 100): twisted}
    assert run.median_ratio(chat, "deliveries_per_second", "labchat", "twisted-chat", 100) == 4


def test_rounds_start_at_a_different_run_each_time() -> None:
    assert run.rotated(["a", "b", "c"], 4) == ["b", "c", "a"]
    assert run.rotated([], 3) == []


def test_an_observer_notices_a_line_missing_even_when_a_duplicate_makes_up_the_count() -> None:
    load = chatload.ChatLoad(chatload.parse_arguments(["--port", "1", "--users", "2"]))
    with socket.socket() as sock:
        user = chatload.User(1, sock, observer=True, sender=False)
        load.read_lines(user, b"<u00000> m 0 0 1 xx\r\n<u00000> m 0 1 1 xx\r\n")
        with pytest.raises(chatload.BenchmarkFailed) as failed:
            load.read_lines(user, b"<u00000> m 0 1 1 xx\r\n<u00000> m 0 3 1 xx\r\n")
    load.close()
    assert str(failed.value) == "u00001 received line 1 of u00000 where line 2 should have come"
