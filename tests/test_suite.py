"""labsuite: all five services in one twistd process, each as it runs on its own."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable

import pytest
from support.chat import Connect
from support.processes import ServerProcess, loopback_suite, run_labproto
from twisted.application.internet import StreamServerEndpointService, UDPServer
from twisted.application.service import MultiService
from twisted.python import usage

from labproto.suite import tap as suite_tap

Start = Callable[..., ServerProcess]
SERVICES = ("udpecho", "udptime", "labchat", "knockknock", "labcalc")


def parsed(*argv: str) -> suite_tap.Options:
    options = suite_tap.Options()
    options.parseOptions(list(argv))
    return options


def leaf_services(top: MultiService) -> list[object]:
    found: list[object] = []
    for child in top:
        found.extend(leaf_services(child) if isinstance(child, MultiService) else [child])
    return found


def test_each_service_listens_on_its_own_default_port() -> None:
    options = parsed()
    assert {name: opts["port"] for name, opts in options.service_options.items()} == {
        "udpecho": 43387,
        "udptime": 43388,
        "labchat": "tcp:43389",
        "knockknock": "tcp:43390",
        "labcalc": "tcp:43391",
    }


def test_each_port_can_be_moved_on_its_own() -> None:
    options = parsed("--chat-port", "tcp6:5000", "--time-port", "0")
    assert options.service_options["labchat"]["port"] == "tcp6:5000"
    assert options.service_options["udptime"]["port"] == 0
    assert options.service_options["udpecho"]["port"] == 43387


def test_the_interface_applies_to_the_udp_services() -> None:
    options = parsed("--interface", "127.0.0.1")
    assert options.service_options["udpecho"]["interface"] == "127.0.0.1"
    assert options.service_options["udptime"]["interface"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--echo-port", "70000"], "--echo-port must be a UDP port number from 0 to 65535"),
        (["--calc-port", "99999"], "--calc-port must be a TCP port number from 0 to 65535"),
        (["--knock-port", "nope:1"], "--knock-port 'nope:1' cannot be used"),
        (["--interface", "eth0"], "--interface must be a local IPv4 or IPv6 address"),
    ],
)
def test_a_bad_value_is_refused_naming_labsuites_own_option(argv: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError, match=re.escape(message)):
        parsed(*argv)


def test_web_reaches_labchat_alone() -> None:
    options = parsed("--web", "tcp:8080")
    assert options.service_options["labchat"]["web"] == "tcp:8080"
    assert options.service_options["labchat"]["web-origin"] == []
    assert parsed().service_options["labchat"]["web"] is None


def test_redis_reaches_labchat_alone() -> None:
    options = parsed("--redis", "redis://lab.example.org/1")
    assert str(options.service_options["labchat"]["redis"]) == "redis://lab.example.org:6379/1"
    assert parsed().service_options["labchat"]["redis"] is None


def test_a_bad_redis_url_is_refused_naming_redis() -> None:
    with pytest.raises(usage.UsageError, match=re.escape("--redis: expected redis://")):
        parsed("--redis", "lab.example.org")


def test_a_bad_web_endpoint_is_refused_naming_web() -> None:
    with pytest.raises(usage.UsageError, match=re.escape("--web 'nope:1' cannot be used")):
        parsed("--web", "nope:1")


def test_the_suite_holds_two_udp_and_three_tcp_servers() -> None:
    top = suite_tap.makeService(parsed())
    leaves = leaf_services(top)
    assert sum(isinstance(s, UDPServer) for s in leaves) == 2
    assert sum(isinstance(s, StreamServerEndpointService) for s in leaves) == 3


def started_suite(servers: Start, *options: str) -> tuple[ServerProcess, dict[str, int]]:
    """Start labsuite on free loopback ports; return it with the port each service took."""
    server = servers(*loopback_suite(), *options)
    taken = {
        name: int(server.wait_for(rf"\] {name} listening on (?:TCP|UDP) 127\.0\.0\.1:(\d+)$")[1])
        for name in SERVICES
    }
    return server, taken


def test_one_process_serves_all_five_to_the_real_clients(servers: Start, connect: Connect) -> None:
    server, port = started_suite(servers)

    echo = run_labproto("echo", "--port", str(port["udpecho"]), "one process")
    assert (echo.returncode, echo.stdout) == (
        0,
        f"Client received MESSAGE= Ok from ADDR= ('127.0.0.1', {port['udpecho']})\n",
    )
    server.wait_for(r"Server received MESSAGE= one process from ADDR= \('127\.0\.0\.1', \d+\)$")

    clock = run_labproto("time", "--port", str(port["udptime"]), "--count", "1", "--timeout", "10")
    assert clock.returncode == 0, clock.stderr
    assert re.fullmatch(
        r"Client received MESSAGE = (\d\d/\d\d/\d\d|\d\d:\d\d:\d\d) "
        rf"from ADDR = \('127\.0\.0\.1', {port['udptime']}\)\n",
        clock.stdout,
    )

    knock = run_labproto("knock", "--port", str(port["knockknock"]))
    assert (knock.returncode, knock.stdout) == (0, "CLIENT RECEIVED: Who's there?\n")

    calc = run_labproto("calc", "--port", str(port["labcalc"]), "--name", "ada", input="6 * 7\n")
    assert (calc.returncode, calc.stdout) == (0, "Result: 42.0\nSession Ended\n")
    server.wait_for(r"ada: 6 \* 7 = 42\.0$")

    bob = connect(port["labchat"])
    bob.log_in("bob")
    chat = run_labproto(
        "chat", "--port", str(port["labchat"]), "--name", "alice", input="hi from the suite\n"
    )
    assert chat.returncode == 0, chat.stderr
    bob.lines_through("<alice> hi from the suite")
    assert server.stop() in (0, -signal.SIGINT)


def test_trace_reaches_every_service_of_the_suite() -> None:
    options = parsed("--trace")
    assert all(opts["trace"] for opts in options.service_options.values())
    assert not any(opts["trace"] for opts in parsed().service_options.values())


def test_the_suite_traces_tcp_and_udp_alike(servers: Start) -> None:
    server, port = started_suite(servers, "--trace")
    run_labproto("echo", "--port", str(port["udpecho"]), "seen")
    server.wait_for(r"trace udpecho \('127\.0\.0\.1', \d+\) in 4 bytes: \"seen\"$")
    server.wait_for(r"trace udpecho \('127\.0\.0\.1', \d+\) out 2 bytes: \"Ok\"$")
    run_labproto("knock", "--port", str(port["knockknock"]))
    knock = r"trace knockknock \('127\.0\.0\.1', \d+\)"
    server.wait_for(rf"{knock} in 15 bytes: \"Knock knock\.\.\\r\\n\"$")
    server.wait_for(rf"{knock} out 14 bytes: \"Who's there\?\\r\\n\"$")
