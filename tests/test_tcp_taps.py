"""The twistd wiring of knockknock and labcalc: --port and --max-line, and the services built."""

from __future__ import annotations

import errno
from types import ModuleType
from typing import Any

import pytest
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.python.failure import Failure

from labproto.calc import tap as calc_tap
from labproto.calc.protocol import CalculatorFactory
from labproto.knock import tap as knock_tap
from labproto.knock.protocol import KnockKnockFactory
from labproto.tcpserver import (
    LISTEN_BACKLOG,
    AnnouncedEndpoint,
    tcp_service,
    with_listen_backlog,
)

TAPS = [knock_tap, calc_tap]
ADDRESS_IN_USE = OSError(errno.EADDRINUSE, "Address already in use")


def parsed(tap: ModuleType, *argv: str) -> usage.Options:
    options = tap.Options()
    options.parseOptions(list(argv))
    return options


def start(top: MultiService) -> None:
    """Start a service as twistd does: the privileged part first."""
    top.privilegedStartService()
    top.startService()


def only_server(top: MultiService) -> StreamServerEndpointService:
    (server,) = list(top)
    assert isinstance(server, StreamServerEndpointService)
    return server


def calc_service(reactor: MemoryReactor, *argv: str) -> tuple[MultiService, CalculatorFactory]:
    factory = CalculatorFactory(1024)
    return tcp_service(parsed(calc_tap, *argv), factory, "labcalc", reactor=reactor), factory


@pytest.mark.parametrize(("tap", "port"), [(knock_tap, "tcp:43390"), (calc_tap, "tcp:43391")])
def test_the_default_port_is_the_services_own_tcp_port(tap: ModuleType, port: str) -> None:
    assert parsed(tap)["port"] == port


@pytest.mark.parametrize("tap", TAPS)
def test_the_default_max_line_is_1024_bytes(tap: ModuleType) -> None:
    assert parsed(tap)["max-line"] == 1024


@pytest.mark.parametrize("tap", TAPS)
@pytest.mark.parametrize("option", ["--port", "-p"])
def test_port_0_takes_any_free_tcp_port(tap: ModuleType, option: str) -> None:
    assert parsed(tap, option, "0")["port"] == "tcp:0"


@pytest.mark.parametrize("tap", TAPS)
@pytest.mark.parametrize("port", ["tcp6:43391", "tcp:43391:interface=127.0.0.1", "unix:/tmp/l.s"])
def test_an_endpoint_description_is_kept_as_it_is(tap: ModuleType, port: str) -> None:
    assert parsed(tap, "--port", port)["port"] == port


@pytest.mark.parametrize("tap", TAPS)
def test_a_port_number_above_65535_is_a_usage_error(tap: ModuleType) -> None:
    with pytest.raises(usage.UsageError) as refused:
        parsed(tap, "--port", "70000")
    assert str(refused.value) == "--port must be a TCP port number from 0 to 65535, not '70000'"


@pytest.mark.parametrize("tap", TAPS)
@pytest.mark.parametrize(
    "port", ["nonsense:1", "ssl:1:privateKey=/nonexistent.pem", "tcp:abc", "", "-1"]
)
def test_an_endpoint_twisted_cannot_use_is_a_usage_error_naming_port(
    tap: ModuleType, port: str
) -> None:
    with pytest.raises(usage.UsageError) as refused:
        parsed(tap, "--port", port)
    assert str(refused.value).startswith(f"--port {port!r} cannot be used: ")


@pytest.mark.parametrize("tap", TAPS)
@pytest.mark.parametrize("max_line", ["0", "abc", "-5", "", "+5", "1048577", "1e3"])
def test_a_max_line_that_is_not_1_to_1048576_bytes_is_a_usage_error(
    tap: ModuleType, max_line: str
) -> None:
    with pytest.raises(usage.UsageError) as refused:
        parsed(tap, "--max-line", max_line)
    assert str(refused.value) == (
        f"--max-line must be a number of bytes from 1 to 1048576, not {max_line!r}"
    )


@pytest.mark.parametrize("tap", TAPS)
@pytest.mark.parametrize("max_line", [1, 2048, 1048576])
def test_max_line_becomes_an_int(tap: ModuleType, max_line: int) -> None:
    assert parsed(tap, "--max-line", str(max_line))["max-line"] == max_line


@pytest.mark.parametrize(
    ("tap", "factory_class"), [(knock_tap, KnockKnockFactory), (calc_tap, CalculatorFactory)]
)
def test_make_service_serves_the_services_factory_with_the_max_line(
    tap: ModuleType, factory_class: type[Factory]
) -> None:
    server = only_server(tap.makeService(parsed(tap, "--max-line", "2048")))
    assert isinstance(server.factory, factory_class)
    assert server.factory.max_line == 2048  # type: ignore[attr-defined]


def test_a_started_service_listens_with_its_factory_on_every_interface() -> None:
    reactor = MemoryReactor()
    top, factory = calc_service(reactor)
    start(top)
    assert [server[:2] for server in reactor.tcpServers] == [(43391, factory)]
    assert reactor.tcpServers[0][3] == ""


def test_a_started_service_listens_with_a_backlog_of_1024_not_twisteds_50() -> None:
    reactor = MemoryReactor()
    top, _ = calc_service(reactor)
    start(top)
    assert reactor.tcpServers[0][2] == LISTEN_BACKLOG == 1024


def test_a_backlog_given_in_the_endpoint_is_kept() -> None:
    reactor = MemoryReactor()
    top, _ = calc_service(reactor, "--port", "tcp:43391:backlog=7")
    start(top)
    assert reactor.tcpServers[0][2] == 7


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("tcp:43391", "tcp:43391:backlog=1024"),
        ("tcp6:43391:interface=\\:\\:1", "tcp6:43391:interface=\\:\\:1:backlog=1024"),
        ("unix:/tmp/x", "unix:/tmp/x:backlog=1024"),
        ("tcp:43391:backlog=5", "tcp:43391:backlog=5"),
        ("backlog=5:tcp:43391", "backlog=5:tcp:43391"),
        ("systemd:domain=INET:index=0", "systemd:domain=INET:index=0"),
    ],
)
def test_with_listen_backlog_adds_one_only_where_it_is_missing_and_understood(
    description: str, expected: str
) -> None:
    assert with_listen_backlog(description) == expected


def test_a_started_service_logs_where_it_listens(logged) -> None:
    top, _ = calc_service(MemoryReactor())
    start(top)
    assert logged.lines() == ["labcalc listening on TCP 0.0.0.0:43391"]


def test_an_ipv6_listening_address_is_logged_in_brackets(logged) -> None:
    top, _ = calc_service(MemoryReactor(), "--port", "tcp6:43391")
    start(top)
    assert logged.lines() == ["labcalc listening on TCP [::]:43391"]


def test_a_unix_socket_is_logged_by_its_path(logged) -> None:
    reactor = MemoryReactor()
    top, factory = calc_service(reactor, "--port", "unix:/tmp/labcalc.sock")
    start(top)
    assert [server[:2] for server in reactor.unixServers] == [("/tmp/labcalc.sock", factory)]
    assert logged.lines() == ["labcalc listening on UNIX socket /tmp/labcalc.sock"]


class TakenPortReactor(MemoryReactor):
    """A reactor whose every TCP port is taken."""

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        raise CannotListenError(interface, port, ADDRESS_IN_USE)


def test_a_taken_port_exits_1_at_start() -> None:
    top, _ = calc_service(TakenPortReactor())
    with pytest.raises(SystemExit) as exited:
        start(top)
    assert exited.value.code == 1


def test_a_taken_port_is_logged_once_as_critical(logged) -> None:
    top, _ = calc_service(TakenPortReactor())
    with pytest.raises(SystemExit):
        start(top)
    assert logged.levels() == ["critical"]
    assert logged.lines() == [
        "Cannot listen on tcp:43391: "
        "Couldn't listen on any:43391: [Errno 98] Address already in use."
    ]


class RefusingEndpoint:
    """An endpoint that cannot listen: its port is taken."""

    def listen(self, factory: Any) -> defer.Deferred[Any]:
        return defer.fail(CannotListenError("", 43391, ADDRESS_IN_USE))


class ListeningEndpoint:
    """An endpoint that listens at once on 0.0.0.0:43391."""

    def __init__(self) -> None:
        self.port = MemoryReactor().listenTCP(43391, Factory())

    def listen(self, factory: Any) -> defer.Deferred[Any]:
        return defer.succeed(self.port)


def test_an_endpoint_that_cannot_listen_fails_with_exit_status_1(logged) -> None:
    endpoint = AnnouncedEndpoint(RefusingEndpoint(), "tcp:43391", "labcalc")  # type: ignore[arg-type]
    failures: list[Failure] = []
    endpoint.listen(Factory()).addErrback(failures.append)
    (failure,) = failures
    assert failure.check(SystemExit) and failure.value.code == 1
    assert logged.lines()[0].startswith("Cannot listen on tcp:43391: ")


def test_an_endpoint_that_cannot_listen_makes_the_service_exit_1_at_start(logged) -> None:
    endpoint = AnnouncedEndpoint(RefusingEndpoint(), "tcp:43391", "labcalc")  # type: ignore[arg-type]
    server = StreamServerEndpointService(endpoint, Factory())
    server._raiseSynchronously = True
    with pytest.raises(SystemExit) as exited:
        server.privilegedStartService()
        server.startService()
    assert exited.value.code == 1
    assert logged.levels() == ["critical"]
    assert logged.lines()[0].startswith("Cannot listen on tcp:43391:")


def test_an_endpoint_that_listens_gives_its_port_on(logged) -> None:
    inner = ListeningEndpoint()
    endpoint = AnnouncedEndpoint(inner, "tcp:43391", "knockknock")  # type: ignore[arg-type]
    ports: list[Any] = []
    endpoint.listen(Factory()).addCallback(ports.append)
    assert ports == [inner.port]
    assert ports[0].getHost() == IPv4Address("TCP", "0.0.0.0", 43391)
    assert logged.lines() == ["knockknock listening on TCP 0.0.0.0:43391"]
