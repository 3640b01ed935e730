"""The twistd wiring of udpecho and udptime: options, their checks, and the services built."""

from __future__ import annotations

import errno

import pytest
from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock
from twisted.python import usage

from labproto.udpecho import tap as udpecho_tap
from labproto.udpecho.protocol import EchoServerProtocol
from labproto.udpserver import MAX_DATAGRAM, UDPServer
from labproto.udptime import tap as udptime_tap
from labproto.udptime.protocol import Calendar, TimeServerProtocol


def parsed(options: usage.Options, *argv: str) -> usage.Options:
    options.parseOptions(list(argv))
    return options


def only_server(service: object) -> UDPServer:
    (server,) = list(service)  # type: ignore[call-overload]
    assert isinstance(server, UDPServer)
    return server


def test_udpecho_listens_on_43387_on_every_interface_by_default() -> None:
    server = only_server(udpecho_tap.makeService(parsed(udpecho_tap.Options())))
    port, protocol = server.args
    assert (port, isinstance(protocol, EchoServerProtocol)) == (43387, True)
    assert server.kwargs == {"interface": "", "maxPacketSize": MAX_DATAGRAM}


def test_udptime_listens_on_43388_by_default() -> None:
    options = parsed(udptime_tap.Options())
    server = only_server(udptime_tap.build_service(options, Clock()))
    port, protocol = server.args
    assert (port, isinstance(protocol, TimeServerProtocol)) == (43388, True)
    assert protocol.calendar == Calendar()


def test_port_and_interface_are_options() -> None:
    options = parsed(udpecho_tap.Options(), "--port", "0", "--interface", "::")
    assert only_server(udpecho_tap.makeService(options)).args[0] == 0
    assert only_server(udpecho_tap.makeService(options)).kwargs["interface"] == "::"


@pytest.mark.parametrize("port", ["-1", "65536", "http", ""])
def test_a_bad_port_is_a_usage_error(port: str) -> None:
    with pytest.raises(usage.UsageError, match="--port must be a UDP port number from 0 to 65535"):
        parsed(udptime_tap.Options(), "--port", port)


def test_an_interface_must_be_an_address() -> None:
    with pytest.raises(usage.UsageError, match="--interface must be a local IPv4 or IPv6"):
        parsed(udpecho_tap.Options(), "--interface", "eth0")


def test_udptime_formats_and_utc_reach_the_calendar() -> None:
    options = parsed(
        udptime_tap.Options(), "--utc", "--date-format", "%Y-%m-%d", "--time-format", "%H.%M"
    )
    assert options.calendar() == Calendar("%Y-%m-%d", "%H.%M", utc=True)


def test_a_format_strftime_rejects_is_a_usage_error() -> None:
    with pytest.raises(usage.UsageError, match="--date-format is not a strftime format"):
        parsed(udptime_tap.Options(), "--date-format", "%d\x00")


def test_a_format_too_long_for_the_client_is_warned_about(logged) -> None:
    options = parsed(udptime_tap.Options(), "--date-format", "%A, %d %B %Y" + "!" * 40)
    udptime_tap.build_service(options, Clock())
    assert logged.levels() == ["warn"]
    assert logged.lines()[0].startswith("Answers to SEND_DATE take up to ")


def test_a_format_too_long_on_some_day_of_the_year_is_warned_about(logged) -> None:
    # On the Clock's day, Thursday 1 January 1970, the answer fits; on a
    # Wednesday in September it does not.
    options = parsed(udptime_tap.Options(), "--date-format", "%A %B" + "x" * 38)
    udptime_tap.build_service(options, Clock())
    assert logged.levels() == ["warn"]


@pytest.mark.parametrize("option", ["--date-format", "--time-format"])
def test_an_empty_format_is_a_usage_error(option: str) -> None:
    with pytest.raises(usage.UsageError, match=f"{option} must not make an empty answer"):
        parsed(udptime_tap.Options(), option, "")


def test_the_default_formats_are_not_warned_about(logged) -> None:
    udptime_tap.build_service(parsed(udptime_tap.Options()), Clock())
    assert logged.lines() == []


class TakenPortReactor:
    """A reactor whose every UDP port is taken."""

    def listenUDP(self, port: int, protocol: object, **kwargs: object) -> None:
        raise CannotListenError("", port, OSError(errno.EADDRINUSE, "Address already in use"))


def test_a_taken_port_is_logged_once_and_exits_1(logged) -> None:
    server = only_server(udpecho_tap.makeService(parsed(udpecho_tap.Options())))
    server.reactor = TakenPortReactor()
    with pytest.raises(SystemExit) as exited:
        server.privilegedStartService()
    assert exited.value.code == 1
    assert logged.levels() == ["critical"]
    assert logged.lines() == [
        "Cannot listen on UDP port 43387 of every interface: [Errno 98] Address already in use"
    ]
