"""The knock client's exchange: each line sent after the answer before, each answer printed."""

from __future__ import annotations

import argparse
import io
from typing import Any

import pytest
from support.deferreds import failure_of, result_of
from support.fakes import ShutdownReactor
from twisted.internet import error
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.python.failure import Failure

from labproto.clients import knock
from labproto.clients.cli import build_parser
from labproto.clients.common import ClientError, Console
from labproto.clients.tcp import LineClientProtocol, ServerConnection

WHERE = "127.0.0.1:43390"
PUNCHLINE = "Lettuce in, it's cold out here!"
JOKE = ("--joke", "Lettuce", PUNCHLINE)



def parse(*arguments: str) -> argparse.Namespace:
    return build_parser().parse_args(["knock", *arguments])


class Knocking:
    """knock.run against a server whose lines the test sends, over a StringTransport."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *arguments: str) -> None:
        self.reactor = ShutdownReactor()
        self.options = parse(*arguments)
        self.protocol = LineClientProtocol()
        self.transport = StringTransportWithDisconnection()
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)
        self.connected_with: list[tuple[Any, argparse.Namespace]] = []
        self.out, self.err = io.StringIO(), io.StringIO()

        async def connect_lines(reactor: Any, options: argparse.Namespace) -> ServerConnection:
            self.connected_with.append((reactor, options))
            return ServerConnection(
                self.reactor, self.protocol, options.host, options.port, options.timeout
            )

        monkeypatch.setattr(knock, "connect_lines", connect_lines)
        self.done = Deferred.fromCoroutine(
            knock.run(self.reactor, self.options, Console(self.out, self.err))
        )

    def answer(self, line: str) -> None:
        """The server sends one line."""
        self.protocol.dataReceived(line.encode() + b"\r\n")

    def sent(self) -> bytes:
        return bytes(self.transport.value())

    def hung_up(self) -> bool:
        return not self.transport.connected


def test_connects_to_the_server_of_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    knocking = Knocking(monkeypatch, "--host", "lab.example")
    ((reactor, options),) = knocking.connected_with
    assert reactor is knocking.reactor
    assert (options.host, options.port) == ("lab.example", 43390)
    knocking.answer("Who's there?")
    result_of(knocking.done)


def test_by_default_sends_only_the_knock(monkeypatch: pytest.MonkeyPatch) -> None:
    knocking = Knocking(monkeypatch)
    assert knocking.sent() == b"Knock knock..\r\n"
    knocking.answer("Who's there?")
    result_of(knocking.done)


def test_by_default_prints_the_answer_to_the_knock(monkeypatch: pytest.MonkeyPatch) -> None:
    knocking = Knocking(monkeypatch)
    knocking.answer("Who's there?")
    assert result_of(knocking.done) is None
    assert knocking.out.getvalue() == "CLIENT RECEIVED: Who's there?\n"
    assert knocking.err.getvalue() == ""


def test_by_default_hangs_up_after_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    knocking = Knocking(monkeypatch)
    assert not knocking.hung_up()
    knocking.answer("Who's there?")
    result_of(knocking.done)
    assert knocking.hung_up()
    assert knocking.sent() == b"Knock knock..\r\n"


def test_a_joke_is_told_a_line_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    knocking = Knocking(monkeypatch, *JOKE)
    assert knocking.sent() == b"Knock knock..\r\n"
    knocking.answer("Who's there?")
    assert knocking.sent() == b"Knock knock..\r\nLettuce\r\n"
    knocking.answer("Lettuce who?")
    assert knocking.sent() == f"Knock knock..\r\nLettuce\r\n{PUNCHLINE}\r\n".encode()
    assert not knocking.done.called
    knocking.answer("Ha ha! Knock again?")
    assert result_of(knocking.done) is None


def test_each_answer_of_a_joke_is_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    knocking = Knocking(monkeypatch, *JOKE)
    for answer in ("Who's there?", "Lettuce who?", "Ha ha! Knock again?"):
        knocking.answer(answer)
    result_of(knocking.done)
    assert knocking.out.getvalue() == (
        "CLIENT RECEIVED: Who's there?\n"
        "CLIENT RECEIVED: Lettuce who?\n"
        "CLIENT RECEIVED: Ha ha! Knock again?\n"
    )


def test_the_connection_is_closed_after_the_joke(monkeypatch: pytest.MonkeyPatch) -> None:
    knocking = Knocking(monkeypatch, *JOKE)
    for answer in ("Who's there?", "Lettuce who?"):
        knocking.answer(answer)
    assert not knocking.hung_up()
    knocking.answer("Ha ha! Knock again?")
    assert knocking.hung_up()


def test_an_error_answer_is_a_client_error_naming_the_refused_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    knocking = Knocking(monkeypatch)
    knocking.answer('ERROR you\'re supposed to say "Knock knock"')
    refused = failure_of(knocking.done, ClientError)
    assert refused.message == (
        f"{WHERE} refused 'Knock knock..': ERROR you're supposed to say \"Knock knock\""
    )
    assert refused.status == 1


def test_an_error_answer_stops_the_joke_and_hangs_up(monkeypatch: pytest.MonkeyPatch) -> None:
    knocking = Knocking(monkeypatch, *JOKE)
    knocking.answer("Who's there?")
    knocking.answer('ERROR you\'re supposed to say who\'s there, e.g. "Lettuce"')
    assert "refused 'Lettuce': ERROR" in failure_of(knocking.done, ClientError).message
    assert knocking.sent() == b"Knock knock..\r\nLettuce\r\n"
    assert knocking.hung_up()
    assert knocking.out.getvalue() == "CLIENT RECEIVED: Who's there?\n"


def test_an_error_answer_is_not_printed_as_received(monkeypatch: pytest.MonkeyPatch) -> None:
    knocking = Knocking(monkeypatch)
    knocking.answer("ERROR no")
    failure_of(knocking.done, ClientError)
    assert knocking.out.getvalue() == ""


def test_control_characters_in_an_error_answer_are_shown_escaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    knocking = Knocking(monkeypatch)
    knocking.answer("ERROR \x1b[2J")
    assert failure_of(knocking.done, ClientError).message.endswith("ERROR \\x1b[2J")


def test_control_characters_in_an_answer_are_printed_escaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    knocking = Knocking(monkeypatch, *JOKE)
    knocking.answer("Who's there?")
    knocking.answer("Lettuce \x1b[2Jwho?")
    knocking.answer("Ha ha! Knock again?")
    result_of(knocking.done)
    assert knocking.out.getvalue().splitlines()[1] == "CLIENT RECEIVED: Lettuce \\x1b[2Jwho?"


def test_a_first_answer_of_another_service_is_a_client_error_quoting_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    knocking = Knocking(monkeypatch)
    knocking.answer("Who's \x1b[2Jthere?")
    wrong = failure_of(knocking.done, ClientError)
    assert wrong.message == f"{WHERE} is not a knockknock server (it said: Who's \\x1b[2Jthere?)"
    assert wrong.status == 1
    assert knocking.out.getvalue() == ""
    assert knocking.hung_up()


def test_no_answer_within_the_timeout_is_a_client_error(monkeypatch: pytest.MonkeyPatch) -> None:
    knocking = Knocking(monkeypatch, "--timeout", "2")
    knocking.reactor.advance(1.9)
    assert not knocking.done.called
    knocking.reactor.advance(0.1)
    assert failure_of(knocking.done, ClientError).message == f"no answer from {WHERE} within 2 s"
    assert knocking.hung_up()


def test_a_server_hanging_up_before_answering_is_a_client_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    knocking = Knocking(monkeypatch)
    knocking.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert failure_of(knocking.done, ClientError).message == (
        f"lost the connection to {WHERE}: the server closed the connection"
    )


def test_a_server_hanging_up_mid_joke_is_a_client_error(monkeypatch: pytest.MonkeyPatch) -> None:
    knocking = Knocking(monkeypatch, *JOKE)
    knocking.answer("Who's there?")
    knocking.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert failure_of(knocking.done, ClientError).message.startswith(
        f"lost the connection to {WHERE}: "
    )


# Options


def test_the_default_port_is_knockknocks() -> None:
    options = parse()
    assert (options.host, options.port, options.joke) == ("127.0.0.1", 43390, None)


def test_joke_lines_are_trimmed() -> None:
    assert parse("--joke", " Lettuce ", PUNCHLINE).joke == ["Lettuce", PUNCHLINE]


@pytest.mark.parametrize(
    "joke", [("", "x"), ("   ", "x"), ("Lettuce", ""), ("Let\ttuce", "x"), ("Lettuce", "in\x1b")]
)
def test_an_empty_or_controlled_joke_line_is_a_usage_error(
    joke: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        parse("--joke", *joke)
    assert raised.value.code == 2
    assert "is not a line of a joke" in capsys.readouterr().err


def test_a_joke_needs_two_lines() -> None:
    with pytest.raises(SystemExit) as raised:
        parse("--joke", "Lettuce")
    assert raised.value.code == 2
