"""The calc client's session: what it sends, prints and refuses, over a fake transport."""

from __future__ import annotations

import argparse
import io

import pytest
from support.deferreds import failure_of, result_of
from support.fakes import ShutdownReactor
from twisted.internet import error
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from labproto.clients.calc import CalculatorSession, name_argument
from labproto.clients.cli import build_parser
from labproto.clients.common import ClientError, Console
from labproto.clients.lines_in import MAX_INPUT_LINE, LineTooLong
from labproto.clients.tcp import LineClientProtocol, ServerConnection

WHERE = "127.0.0.1:43391"
WELCOME = "Welcome to labcalc. What's your name?"
HELLO = "Hello gautamop! Send an expression like 12 + 42, or q to quit."



class ScriptedLines:
    """The user's input: the given lines, then the end of the input, or a wait for more."""

    def __init__(self, *lines: str) -> None:
        self.lines = list(lines)
        self.more: Deferred[str | None] | None = None

    async def next_line(self) -> str | None:
        if self.lines:
            return self.lines.pop(0)
        if self.more is not None:
            return await self.more
        return None


class Session:
    """A CalculatorSession over a StringTransport, its server's lines fed by the test."""

    def __init__(self, *typed: str, interactive: bool = False, timeout: float = 10.0) -> None:
        self.reactor = ShutdownReactor()
        self.protocol = LineClientProtocol()
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.server = ServerConnection(self.reactor, self.protocol, "127.0.0.1", 43391, timeout)
        self.lines = ScriptedLines(*typed)
        self.out, self.err = io.StringIO(), io.StringIO()
        self.session = CalculatorSession(
            self.server,
            self.lines,  # type: ignore[arg-type]
            Console(self.out, self.err),
            interactive,
        )

    def answer(self, *lines: str) -> None:
        """The server sends lines."""
        for line in lines:
            self.protocol.dataReceived(line.encode() + b"\r\n")

    def sent(self) -> list[str]:
        """The lines the client has sent, without their CRLF."""
        return self.transport.value().decode().split("\r\n")[:-1]

    def introduce(self, name: str | None = "gautamop") -> Deferred[None]:
        return Deferred.fromCoroutine(self.session.introduce(name))

    def calculate(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self.session.calculate())


def introduced(*typed: str, interactive: bool = False) -> Session:
    """A session that has given its name and been greeted."""
    session = Session(*typed, interactive=interactive)
    session.answer(WELCOME, HELLO)
    result_of(session.introduce())
    session.transport.clear()
    return session


# introduce


def test_ctrl_c_before_a_name_sends_no_q_which_would_be_taken_for_one() -> None:
    session = Session()
    session.introduce(None)
    session.answer(WELCOME)
    session.reactor.begin_shutdown()
    assert session.sent() == []


def test_ctrl_c_once_named_ends_the_session_with_q() -> None:
    session = introduced()
    session.reactor.begin_shutdown()
    assert session.sent() == ["q"]


def test_the_name_is_sent_after_the_welcome() -> None:
    session = Session()
    introduction = session.introduce("gautamop")
    assert session.sent() == []
    session.answer(WELCOME)
    assert session.sent() == ["gautamop"]
    session.answer(HELLO)
    result_of(introduction)


def test_piped_the_welcome_and_hello_are_not_shown() -> None:
    session = Session()
    session.answer(WELCOME, HELLO)
    result_of(session.introduce())
    assert session.out.getvalue() == ""


def test_at_a_terminal_the_welcome_and_hello_are_shown() -> None:
    session = Session(interactive=True)
    session.answer(WELCOME, HELLO)
    result_of(session.introduce())
    assert session.out.getvalue() == f"{WELCOME}\n{HELLO}\n"


def test_without_name_option_the_first_input_line_is_the_name() -> None:
    session = Session("  gautamop  ")
    session.answer(WELCOME, HELLO)
    result_of(session.introduce(None))
    assert session.sent() == ["gautamop"]


def test_an_invalid_name_line_is_not_sent_and_the_next_line_is_used() -> None:
    session = Session("bad\x1bname", "gautamop")
    session.answer(WELCOME, HELLO)
    result_of(session.introduce(None))
    assert session.sent() == ["gautamop"]
    assert session.err.getvalue() == (
        "not sent: invalid name: use 1 to 64 characters and no control characters\n"
    )


def test_a_blank_name_line_is_not_sent() -> None:
    session = Session("", "gautamop")
    session.answer(WELCOME, HELLO)
    result_of(session.introduce(None))
    assert session.sent() == ["gautamop"]


def test_a_name_longer_than_64_characters_is_not_sent() -> None:
    session = Session("n" * 65, "gautamop")
    session.answer(WELCOME, HELLO)
    result_of(session.introduce(None))
    assert session.sent() == ["gautamop"]


def test_input_ending_before_a_name_is_a_client_error_and_sends_nothing() -> None:
    session = Session()
    session.answer(WELCOME)
    failed = failure_of(session.introduce(None), ClientError)
    assert (failed.message, failed.status) == (
        "no session: the input ended before a name was accepted",
        1,
    )
    assert session.sent() == []


def test_input_ending_after_a_name_refused_before_sending_is_a_client_error() -> None:
    session = Session("n" * 65)
    session.answer(WELCOME)
    failure_of(session.introduce(None), ClientError)
    assert session.err.getvalue() == "not sent: invalid name: " + (
        "use 1 to 64 characters and no control characters\n"
    )
    assert session.sent() == []


def test_a_refused_name_is_a_client_error() -> None:
    session = Session()
    introduction = session.introduce("gautamop")
    session.answer(WELCOME, "ERROR invalid name: use 1 to 64 characters and no control characters")
    refused = failure_of(introduction, ClientError)
    assert refused.message == (
        f"{WHERE} refused the name 'gautamop': "
        "ERROR invalid name: use 1 to 64 characters and no control characters"
    )
    assert refused.status == 1


def test_control_characters_in_a_refused_name_answer_are_shown_escaped() -> None:
    session = Session()
    introduction = session.introduce("gautamop")
    session.answer(WELCOME, "ERROR \x1b[2Jgone")
    message = failure_of(introduction, ClientError).message
    assert message == f"{WHERE} refused the name 'gautamop': ERROR \\x1b[2Jgone"


def test_another_services_greeting_is_a_client_error_and_no_name_is_sent() -> None:
    session = Session()
    introduction = session.introduce("gautamop")
    session.answer("Welcome to labchat! Please enter your name:")
    wrong = failure_of(introduction, ClientError)
    assert wrong.message == (
        f"{WHERE} is not a labcalc server (it said: Welcome to labchat! Please enter your name:)"
    )
    assert wrong.status == 1
    assert session.sent() == []


def test_no_welcome_within_the_timeout_is_a_client_error() -> None:
    session = Session()
    introduction = session.introduce()
    session.reactor.advance(10)
    assert failure_of(introduction, ClientError).message == f"no answer from {WHERE} within 10 s"


# calculate


def test_piped_only_results_and_the_end_are_printed() -> None:
    session = introduced("12 + 42", "4.5 / -6")
    done = session.calculate()
    session.answer("54.0", "-0.75", "Session ended")
    assert result_of(done) is None
    assert session.out.getvalue() == "Result: 54.0\nResult: -0.75\nSession Ended\n"
    assert session.err.getvalue() == ""


def test_at_a_terminal_results_are_printed_the_same_way() -> None:
    session = introduced("12 + 42", interactive=True)
    session.out.truncate(0)
    session.out.seek(0)
    session.answer("54.0", "Session ended")
    result_of(session.calculate())
    assert session.out.getvalue() == "Result: 54.0\nSession Ended\n"


def test_each_line_waits_for_the_answer_to_the_one_before() -> None:
    session = introduced("12 + 42", "1 + 1")
    done = session.calculate()
    assert session.sent() == ["12 + 42"]
    session.answer("54.0")
    assert session.sent() == ["12 + 42", "1 + 1"]
    session.answer("2.0", "Session ended")
    result_of(done)


def test_lines_go_on_the_wire_with_crlf() -> None:
    session = introduced("12 + 42")
    session.answer("54.0", "Session ended")
    result_of(session.calculate())
    assert session.transport.value() == b"12 + 42\r\nq\r\n"


def test_an_expression_is_sent_without_surrounding_white_space() -> None:
    session = introduced("  12 + 42\t")
    session.answer("54.0", "Session ended")
    result_of(session.calculate())
    assert session.sent() == ["12 + 42", "q"]


def test_a_line_of_another_form_is_not_sent_and_says_why() -> None:
    session = introduced("12 +")
    session.answer("Session ended")
    result_of(session.calculate())
    assert session.sent() == ["q"]
    assert session.err.getvalue() == "not sent: 12 +: expected NUMBER OP NUMBER, e.g. 12 + 42\n"


def test_a_refused_line_does_not_end_the_session() -> None:
    session = introduced("12 +", "12 + 42")
    session.answer("54.0", "Session ended")
    result_of(session.calculate())
    assert session.out.getvalue() == "Result: 54.0\nSession Ended\n"


def test_a_number_the_server_would_refuse_is_not_sent() -> None:
    session = introduced("nan + 1", "0x10 * 2")
    session.answer("Session ended")
    result_of(session.calculate())
    assert session.sent() == ["q"]
    assert session.err.getvalue().count("not sent: ") == 2


def test_control_characters_in_a_refused_line_are_shown_escaped() -> None:
    session = introduced("\x1b[2J")
    session.answer("Session ended")
    result_of(session.calculate())
    assert session.err.getvalue().startswith("not sent: \\x1b[2J: ")


def test_blank_lines_are_skipped_silently() -> None:
    session = introduced("", "   ", "\t", "1 + 1")
    session.answer("2.0", "Session ended")
    result_of(session.calculate())
    assert session.sent() == ["1 + 1", "q"]
    assert session.err.getvalue() == ""


def test_a_too_long_input_line_is_not_sent() -> None:
    session = introduced(LineTooLong("1" * MAX_INPUT_LINE), "1 + 1")
    session.answer("2.0", "Session ended")
    result_of(session.calculate())
    assert session.sent() == ["1 + 1", "q"]
    assert session.err.getvalue() == f"not sent: a line longer than {MAX_INPUT_LINE} bytes\n"


def test_a_server_error_answer_is_printed_as_the_result() -> None:
    session = introduced("1 / 0")
    session.answer("ERROR division by zero", "Session ended")
    result_of(session.calculate())
    assert session.out.getvalue() == "Result: ERROR division by zero\nSession Ended\n"


def test_control_characters_in_an_answer_are_printed_escaped() -> None:
    session = introduced("1 + 1")
    session.answer("\x1b[2J2.0", "Session ended")
    result_of(session.calculate())
    assert session.out.getvalue().startswith("Result: \\x1b[2J2.0\n")


def test_q_ends_the_session() -> None:
    session = introduced("q", "1 + 1")
    session.answer("Session ended")
    assert result_of(session.calculate()) is None
    assert session.sent() == ["q"]
    assert session.out.getvalue() == "Session Ended\n"
    assert session.lines.lines == ["1 + 1"]


def test_q_may_have_surrounding_white_space() -> None:
    session = introduced(" q ")
    session.answer("Session ended")
    result_of(session.calculate())
    assert session.sent() == ["q"]


def test_the_end_of_the_input_sends_q() -> None:
    session = introduced()
    session.answer("Session ended")
    result_of(session.calculate())
    assert session.sent() == ["q"]
    assert session.out.getvalue() == "Session Ended\n"


def test_an_unexpected_answer_to_q_is_a_client_error() -> None:
    session = introduced()
    session.answer("54.0")
    assert failure_of(session.calculate(), ClientError).message == (
        f"{WHERE} answered q with '54.0'"
    )


def test_no_answer_within_the_timeout_is_a_client_error() -> None:
    session = introduced("12 + 42")
    done = session.calculate()
    session.reactor.advance(10)
    assert failure_of(done, ClientError).message == f"no answer from {WHERE} within 10 s"


def test_a_server_hanging_up_mid_session_is_a_client_error() -> None:
    session = introduced("12 + 42")
    done = session.calculate()
    session.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert failure_of(done, ClientError).message == (
        f"lost the connection to {WHERE}: the server closed the connection"
    )


def test_a_server_hanging_up_while_the_user_types_is_reported_at_once() -> None:
    session = introduced()
    session.lines.more = Deferred()
    done = session.calculate()
    assert not done.called
    session.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert failure_of(done, ClientError).message == (
        f"lost the connection to {WHERE}: the server closed the connection"
    )
    assert session.sent() == []


def test_a_line_typed_later_is_sent_when_it_comes() -> None:
    session = introduced()
    typed: Deferred[str | None] = Deferred()
    session.lines.more = typed
    session.calculate()
    assert session.sent() == []
    typed.callback("12 + 42")
    assert session.sent() == ["12 + 42"]
    session.lines.more = Deferred()  # the user has not typed the next line yet
    session.answer("54.0")
    assert session.out.getvalue() == "Result: 54.0\n"


# Options


def parse(*arguments: str) -> argparse.Namespace:
    return build_parser().parse_args(["calc", *arguments])


def test_the_default_port_is_labcalcs() -> None:
    assert (parse().host, parse().port) == ("127.0.0.1", 43391)


def test_the_name_option_is_trimmed() -> None:
    assert parse("--name", " gautamop ").name == "gautamop"


def test_without_the_name_option_the_name_is_asked_for() -> None:
    assert parse().name is None


@pytest.mark.parametrize("name", ["", "   ", "n" * 65, "bad\x1bname"])
def test_an_invalid_name_option_is_a_usage_error(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        parse("--name", name)
    assert raised.value.code == 2
    assert "is not a name: use 1 to 64 characters and no control characters" in (
        capsys.readouterr().err
    )


def test_an_invalid_name_is_explained_in_one_line() -> None:
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        name_argument("")
    assert str(raised.value) == (
        "'' is not a name: use 1 to 64 characters and no control characters"
    )


def test_control_characters_in_an_invalid_name_are_shown_escaped() -> None:
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        name_argument("a\x1b[2J")
    assert str(raised.value).startswith("'a\\\\x1b[2J' is not a name")


# What the client sends of the forms PROTOCOLS.md allows, and what it keeps back


@pytest.mark.parametrize("line", ["2+3", "4.5/-6", "3.24-45", "12 +42", "-2*-3"])
def test_an_expression_without_spaces_is_sent_as_typed(line: str) -> None:
    session = introduced(line)
    session.lines.more = Deferred()
    session.calculate()
    assert session.sent() == [line]
    assert session.err.getvalue() == ""


@pytest.mark.parametrize("line", ["nan + 1", "inf*2", "0x10 + 1", "1_000 + 1", "12 +", "12+"])
def test_what_the_server_would_refuse_as_malformed_is_not_sent(line: str) -> None:
    session = introduced(line)
    done = session.calculate()
    session.answer("Session ended")
    result_of(done)
    assert session.sent() == ["q"]
    assert session.err.getvalue() == (
        f"not sent: {line}: expected NUMBER OP NUMBER, e.g. 12 + 42\n"
    )


@pytest.mark.parametrize("line", ["Q", "quit", "QUIT", "exit", "Exit"])
def test_quit_and_exit_in_any_case_end_the_session(line: str) -> None:
    session = introduced(line, "1 + 1")
    done = session.calculate()
    assert session.sent() == ["q"]
    session.answer("Session ended")
    result_of(done)
    assert session.out.getvalue() == "Session Ended\n"
