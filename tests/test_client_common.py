"""What the clients share: finding the server, naming it, and printing."""

from __future__ import annotations

import errno
import io
import socket

import pytest
import pytest_twisted
from twisted.internet import reactor

from labproto.clients.cli import build_parser
from labproto.clients.common import ClientError, Console, OutputClosed, describe_server
from labproto.clients.udp import resolve_host


def test_an_ipv6_server_is_named_in_brackets() -> None:
    assert describe_server("::1", 43388) == "[::1]:43388"
    assert describe_server("lab.example", 43388) == "lab.example:43388"


@pytest_twisted.ensureDeferred
async def test_addresses_are_used_as_they_are() -> None:
    assert await resolve_host(reactor, "::1") == "::1"
    assert await resolve_host(reactor, "192.0.2.1") == "192.0.2.1"


@pytest_twisted.ensureDeferred
async def test_a_name_resolves_to_ipv4_first(monkeypatch: pytest.MonkeyPatch) -> None:
    def both_families(host: str, port: None, **kwargs: object) -> list[tuple[object, ...]]:
        assert host == "lab-server"
        return [
            (socket.AF_INET6, socket.SOCK_DGRAM, 17, "", ("2001:db8::1", 0, 0, 0)),
            (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("192.0.2.10", 0)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", both_families)
    assert await resolve_host(reactor, "lab-server") == "192.0.2.10"


@pytest_twisted.ensureDeferred
async def test_a_name_that_does_not_resolve_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unknown(host: str, port: None, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    with pytest.raises(ClientError) as raised:
        await resolve_host(reactor, "no-such-lab-host")
    assert raised.value.message == "cannot resolve host no-such-lab-host: Name or service not known"
    assert raised.value.status == 1


class FailingStream(io.StringIO):
    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise self.error


def test_a_reader_that_went_away_closes_the_output_without_a_reason() -> None:
    console = Console(FailingStream(BrokenPipeError(errno.EPIPE, "Broken pipe")), io.StringIO())
    with pytest.raises(OutputClosed) as raised:
        console.say("line")
    assert raised.value.reason is None


def test_a_full_disk_closes_the_output_with_its_reason() -> None:
    console = Console(FailingStream(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(OutputClosed) as raised:
        console.say("line")
    assert raised.value.reason == "No space left on device"


def test_complaining_to_a_closed_stderr_does_not_raise() -> None:
    console = Console(io.StringIO(), FailingStream(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    console.complain("nobody hears this")


@pytest.mark.parametrize("client", ["echo", "time", "knock", "calc", "chat"])
def test_every_clients_timeout_is_named_in_seconds_in_its_help(
    client: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([client, "--help"])
    shown = capsys.readouterr().out
    assert "[--timeout SECONDS]" in shown
    assert "TIMEOUT" not in shown
