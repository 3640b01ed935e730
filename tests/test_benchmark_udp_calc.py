"""The udptime and labcalc load generators, run as a user runs them, on a tiny load.

Each generator runs once against the real service (a twistd process, with
``--quiet`` as the benchmark runs it) and once against its minimal Twisted
baseline, and must report answers, none lost or bad, and the server's CPU
time. Nothing here asserts on a rate or a duration: the machine is shared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support.bench import assert_failed, generate, measured
from support.processes import TCP_LISTENING, ServerProcess, tcp_server

UDP_LISTENING = r"listening on UDP \S+:(\d+)$"
Start = Callable[..., ServerProcess]
# Far longer than any answer takes, so that a busy machine loses no request:
# a lost one here means a datagram really went missing.
TIMEOUT = "5"


def time_load(port: int, pid: int) -> dict[str, Any]:
    return measured(
        "timeload",
        "--port", str(port),
        "--server-pid", str(pid),
        "--clients", "4",
        "--seconds", "0.3",
        "--timeout", TIMEOUT,
    )  # fmt: skip


def calc_load(port: int, pid: int) -> dict[str, Any]:
    return measured(
        "calcload",
        "--port", str(port),
        "--server-pid", str(pid),
        "--sessions", "5",
        "--seconds", "0.3",
    )  # fmt: skip


def assert_time_figures(figures: dict[str, Any]) -> None:
    assert figures["service"] == "udptime"
    assert figures["clients"] == 4
    assert figures["answers"] > 0
    assert (figures["lost"], figures["bad_answers"]) == (0, 0)
    assert figures["answers_per_second"] > 0
    assert figures["server_cpu_seconds"] >= 0
    assert figures["server_cpu_us_per_answer"] >= 0
    assert figures["server_rss_bytes"] > 0
    assert figures["seconds"] > 0


def assert_calc_figures(figures: dict[str, Any]) -> None:
    assert figures["service"] == "labcalc"
    assert figures["sessions"] == 5
    assert figures["requests"] > 0
    assert figures["bad_answers"] == 0
    assert figures["requests_per_second"] > 0
    assert figures["server_cpu_seconds"] >= 0
    assert figures["server_cpu_us_per_request"] >= 0
    assert figures["server_rss_bytes"] > 0
    assert figures["seconds"] > 0


def test_timeload_measures_quiet_udptime(servers: Start) -> None:
    server = servers("udptime", "--port", "0", "--interface", "127.0.0.1", "--quiet")
    port = int(server.wait_for(UDP_LISTENING).group(1))
    assert_time_figures(time_load(port, server.process.pid))


def test_timeload_measures_the_twisted_time_baseline(baseline) -> None:
    server, port = baseline("twisted_time")
    assert_time_figures(time_load(port, server.process.pid))


def test_calcload_measures_quiet_labcalc(servers: Start) -> None:
    server, port = tcp_server(servers, "labcalc", "--quiet")
    assert_calc_figures(calc_load(port, server.process.pid))


def test_calcload_measures_the_twisted_calc_baseline(baseline) -> None:
    server, port = baseline("twisted_calc")
    assert_calc_figures(calc_load(port, server.process.pid))


def test_timeload_counts_answers_that_are_not_a_time_as_bad(servers: Start) -> None:
    # udpecho answers every datagram with Ok.
    server = servers("udpecho", "--port", "0", "--interface", "127.0.0.1")
    port = int(server.wait_for(UDP_LISTENING).group(1))
    figures = measured(
        "timeload", "--port", str(port), "--clients", "2", "--seconds", "0.3",
        "--timeout", TIMEOUT,
    )  # fmt: skip
    assert figures["answers"] > 0
    assert figures["bad_answers"] == figures["answers"]
    # Without --server-pid nothing is read from the server.
    assert (figures["server_cpu_seconds"], figures["server_rss_bytes"]) == (0, 0)


def test_timeload_at_a_closed_port_fails_with_one_line(closed_port: int) -> None:
    result = generate("timeload", "--port", str(closed_port), "--seconds", "0.3")
    assert_failed(
        result, f"connection refused: nothing listens on UDP 127.0.0.1:{closed_port}"
    )


def test_calcload_at_a_closed_port_fails_with_one_line(closed_tcp_port: int) -> None:
    result = generate("calcload", "--port", str(closed_tcp_port), "--seconds", "0.3")
    assert_failed(
        result, f"connection refused: nothing listens on TCP 127.0.0.1:{closed_tcp_port}"
    )


def test_calcload_at_another_service_says_which_line_it_received(servers: Start) -> None:
    server = servers("labchat", "--port", "tcp:0:interface=127.0.0.1", "--quiet")
    port = int(server.wait_for(TCP_LISTENING).group(1))
    result = generate("calcload", "--port", str(port), "--sessions", "1", "--seconds", "0.3")
    assert_failed(
        result,
        "session 0: expected the greeting \"Welcome to labcalc. What's your name?\", "
        "received 'Welcome to labchat! Please enter your name:'",
    )


@pytest.mark.parametrize(
    ("generator", "options"),
    [
        ("timeload", ["--clients", "--seconds", "--timeout", "--server-pid"]),
        ("calcload", ["--sessions", "--seconds", "--server-pid"]),
    ],
)
def test_help_names_every_option(generator: str, options: list[str]) -> None:
    result = generate(generator, "--help")
    assert (result.returncode, result.stderr) == (0, "")
    for option in ["--host", "--port", *options]:
        assert option in result.stdout
