"""The chat load generator and the benchmark runner, run as a user runs them, on a tiny load.

Nothing here asserts on a rate or a duration: the machine is shared, and
speed is what the benchmark itself reports (docs/benchmarks.rst).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.bench import assert_failed, generate, measured
from support.processes import TCP_LISTENING, ServerProcess, tcp_server

from benchmarks import chatload, run

Start = Callable[..., ServerProcess]
USERS = 6


def chat_load(port: int, pid: int, *extra: str) -> dict[str, Any]:
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
    done = generate(
        "run", "--rounds", "1", "--seconds", "0.2", "--plot-users", "3", "--ratio-users", "3",
        "--idle-users", "20", "--no-pin", "--out", str(out), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (out / "summary.txt").read_text()
    assert done.stdout.endswith(summary + f"plot: {out / 'chat-fanout.png'}\n")
    for server in ("labchat", "labchat-mixed", "twisted-chat", "threaded-chat"):
        assert f"\n{server:<14}      3 " in summary
    for server in ("udptime", "twisted-time", "labcalc", "twisted-calc"):
        assert f"\n{server:<14} " in summary
    assert "one message reached 20 of 20 users, lost 0" in summary
    assert "Lines lost or out of order: none in 4 measurements." in summary
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
    assert {row["server"] for row in results["chat"]} == {
        "labchat", "labchat-mixed", "twisted-chat", "threaded-chat"
    }
    (mixed,) = [row for row in results["chat"] if row["server"] == "labchat-mixed"]
    assert mixed["websocket_users"] == 1 and mixed["websocket_deliveries"] > 0
    assert results["failed"] == []
    assert (out / "chat-fanout.png").read_bytes().startswith(b"\x89PNG")


def test_the_runner_refuses_an_unknown_part() -> None:
    done = generate("run", "--only", "chat,dns")
    assert done.returncode == 2
    assert "--only takes chat, websocket, idle, udptime, labcalc, not dns" in done.stderr


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
