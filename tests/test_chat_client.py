"""The chat client: its session over a fake transport, and the real command against a fake server.

The session tests drive ChatSession with a StringTransport, a Clock and a
scripted user; every visit a test starts is ended when the test ends, and
an error left unhandled in a Deferred fails the test (no_unhandled_errors).
The command tests run ``labproto chat`` as a process (in a thread, so that
the test's reactor goes on serving) against FakeLabchat, a few lines of
labchat played by the test's reactor on a free port of 127.0.0.1; one of
them types at a pseudo-terminal with pexpect.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pexpect
import pytest
import pytest_twisted
from support.chat import chat_at_a_terminal
from support.deferreds import failure_of, result_of
from support.fakes import ShutdownReactor
from support.processes import DEADLINE, start_labproto
from twisted.internet import defer, reactor, threads
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, connectionDone
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import LogLevel, capturedLogs, eventAsText
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from labproto.clients import chat
from labproto.clients.chat import ChatSession, is_quit, name_argument, requested_name
from labproto.clients.cli import build_parser
from labproto.clients.common import ClientError, Interrupted
from labproto.clients.lines_in import MAX_INPUT_LINE, LineTooLong
from labproto.clients.tcp import LineClientProtocol, ServerConnection

WHERE = "127.0.0.1:43389"
WELCOME = "Welcome to labchat! Please enter your name:"
INVALID_NAME = "ERROR invalid name: use 1 to 24 ASCII letters, digits, _, - or ."
LOST = f"lost the connection to {WHERE}: the server closed the connection"
LOGIN_TIMED_OUT = "ERROR login timed out"


class ScriptedUser:
    """The user: the given lines, then the end of the input, or a wait for more; what is shown."""

    def __init__(self, *lines: str) -> None:
        self.lines = list(lines)
        self.more: Deferred[str | None] | None = None
        self.shown: list[str] = []
        self.complaints: list[str] = []
        self.prompts: list[str] = []

    def read_line(self, prompt: Callable[[], str]) -> Deferred[str | None]:
        self.prompts.append(prompt())
        if self.lines:
            return defer.succeed(self.lines.pop(0))
        if self.more is not None:
            return self.more
        return defer.succeed(None)

    def show(self, line: str) -> None:
        self.shown.append(line)

    def complain(self, line: str) -> None:
        self.complaints.append(line)

    async def close(self) -> None:
        pass


class Visit:
    """A ChatSession over a StringTransport, its server's lines sent by the test."""

    # Every visit of the running test, for no_unhandled_errors to end.
    started: list[Visit] = []

    def __init__(self, *typed: str, interactive: bool = False) -> None:
        self.reactor = ShutdownReactor()
        self.protocol = LineClientProtocol()
        self.transport = StringTransportWithDisconnection()
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)
        self.server = ServerConnection(self.reactor, self.protocol, "127.0.0.1", 43389, 10.0)
        self.user = ScriptedUser(*typed)
        self.session = ChatSession(self.reactor, self.server, self.user, interactive)
        self.running: list[Deferred[Any]] = []
        Visit.started.append(self)

    def answer(self, *lines: str) -> None:
        """The server sends lines."""
        for line in lines:
            self.protocol.dataReceived(line.encode() + b"\r\n")

    def hang_up(self) -> None:
        """The server closes the connection."""
        self.transport.loseConnection()

    def sent(self) -> list[str]:
        """The lines the client has sent, without their CRLF."""
        return self.transport.value().decode().split("\r\n")[:-1]

    def log_in(self, name: str | None = "alice") -> Deferred[bool]:
        return self._run(self.session.log_in(name))

    def chat(self) -> Deferred[None]:
        return self._run(self.session.chat())

    def _run(self, coroutine: Coroutine[Deferred[Any], Any, Any]) -> Deferred[Any]:
        running = Deferred.fromCoroutine(coroutine)
        self.running.append(running)
        return running

    def end(self) -> None:
        """Hang up, as the server would at last, and check that the session has ended.

        A session left waiting when its test ends is thrown away by the
        garbage collector, which closes its coroutines in any order it
        likes: chat()'s finally then cancels the typing coroutine after the
        collector has closed it, and Twisted throws CancelledError into a
        finished coroutine (RuntimeError: cannot reuse already awaited
        coroutine), an error logged as unhandled, long after the test.
        """
        if not self.transport.disconnected:
            self.hang_up()
        for running in self.running:
            assert running.called, "the session still waits after the server hung up"
            # The ends a hang-up brings; anything else stays unhandled, and is caught.
            running.addErrback(lambda failure: failure.trap(ClientError, Interrupted))


@pytest.fixture(autouse=True)
def no_unhandled_errors() -> Iterator[None]:
    """End every visit of the test, collect its garbage, and fail on errors it logged."""
    gc.collect()  # Earlier tests' garbage is theirs.
    Visit.started.clear()
    with capturedLogs() as events:
        yield
        while Visit.started:
            Visit.started.pop().end()
        gc.collect()
    errors = [event for event in events if event["log_level"] >= LogLevel.error]
    assert not errors, "\n".join(
        eventAsText(event, includeTimestamp=False, includeSystem=False) for event in errors
    )


def logged_in(*typed: str, interactive: bool = False) -> Visit:
    """A visit whose name the server has accepted; nothing sent or shown so far."""
    visit = Visit(*typed, interactive=interactive)
    visit.answer(WELCOME, "Welcome alice! 2 users online: alice, bob")
    assert result_of(visit.log_in()) is True
    visit.transport.clear()
    visit.user.shown.clear()
    return visit


# Logging in


def test_the_name_is_sent_after_the_servers_prompt_and_both_answers_are_shown() -> None:
    visit = Visit()
    login = visit.log_in("alice")
    assert visit.sent() == []
    visit.answer(WELCOME)
    assert visit.sent() == ["alice"]
    visit.answer("Welcome alice! 1 user online: alice")
    assert result_of(login) is True
    assert visit.user.shown == [WELCOME, "Welcome alice! 1 user online: alice"]


def test_a_room_full_is_a_client_error() -> None:
    visit = Visit()
    login = visit.log_in()
    visit.answer("ERROR room full")
    visit.hang_up()
    assert failure_of(login, ClientError).message == f"{WHERE} did not let us in: ERROR room full"
    assert visit.sent() == []


def test_another_services_greeting_is_a_client_error_and_no_name_is_sent() -> None:
    visit = Visit()
    login = visit.log_in("alice")
    visit.answer("Welcome to labcalc. What's your name?")
    wrong = failure_of(login, ClientError)
    assert wrong.message == (
        f"{WHERE} is not a labchat server (it said: Welcome to labcalc. What's your name?)"
    )
    assert visit.sent() == []
    assert visit.user.shown == []


def test_a_long_greeting_of_another_service_is_quoted_in_part() -> None:
    visit = Visit()
    login = visit.log_in("alice")
    visit.answer("x" * 5000)
    message = failure_of(login, ClientError).message
    assert message == f"{WHERE} is not a labchat server (it said: {'x' * 100}...)"


def test_a_refused_name_option_without_a_terminal_is_a_client_error() -> None:
    visit = Visit("bob")
    visit.answer(WELCOME, "ERROR name taken: alice")
    refused = failure_of(visit.log_in("alice"), ClientError)
    assert refused.message == f"{WHERE} refused the name 'alice': ERROR name taken: alice"
    assert refused.status == 1
    assert visit.sent() == ["alice"]


def test_a_refused_name_option_at_a_terminal_is_shown_and_another_name_asked_for() -> None:
    visit = Visit("bob", interactive=True)
    login = visit.log_in("alice")
    visit.answer(WELCOME, "ERROR name taken: alice", "Welcome bob! 2 users online: alice, bob")
    assert result_of(login) is True
    assert visit.sent() == ["alice", "bob"]
    assert visit.user.shown[1] == "ERROR name taken: alice"
    assert visit.user.prompts == ["name: "]


def test_without_the_name_option_input_lines_are_tried_until_one_is_accepted() -> None:
    visit = Visit("alice", "bad name", "bob", "hello")
    login = visit.log_in(None)
    visit.answer(WELCOME, "ERROR name taken: alice", INVALID_NAME, "Welcome bob! 2 users online")
    assert result_of(login) is True
    assert visit.sent() == ["alice", "bad name", "bob"]
    assert visit.user.shown == [
        WELCOME,
        "ERROR name taken: alice",
        INVALID_NAME,
        "Welcome bob! 2 users online",
    ]
    assert visit.user.lines == ["hello"]
    assert visit.session.name == "bob"


def test_typed_names_are_trimmed_and_blank_lines_skipped() -> None:
    visit = Visit("", "   ", "  alice\t")
    login = visit.log_in(None)
    visit.answer(WELCOME, "Welcome alice! 1 user online: alice")
    result_of(login)
    assert visit.sent() == ["alice"]


def test_input_ending_before_a_name_is_accepted_ends_the_visit_without_quit() -> None:
    visit = Visit("alice")
    login = visit.log_in(None)
    visit.answer(WELCOME, "ERROR name taken: alice")
    assert result_of(login) is False
    assert visit.sent() == ["alice"]


def test_a_login_timeout_while_the_user_types_is_shown_then_reported() -> None:
    visit = Visit(interactive=True)
    visit.user.more = Deferred()
    login = visit.log_in(None)
    visit.answer(WELCOME, "ERROR login timed out")
    visit.hang_up()
    assert failure_of(login, ClientError).message == LOST
    assert visit.user.shown == [WELCOME, "ERROR login timed out"]


# The server's login timeout passing as the name arrives: the answer to the
# name is the timeout, and the server hangs up after it.
@pytest.mark.parametrize(("name", "typed"), [("alice", ["hello"]), (None, ["alice", "hello"])])
def test_a_login_timeout_in_answer_to_a_piped_name_is_shown_then_reported(
    name: str | None, typed: list[str]
) -> None:
    visit = Visit(*typed)
    login = visit.log_in(name)
    visit.answer(WELCOME, LOGIN_TIMED_OUT)
    assert not login.called
    visit.hang_up()
    assert failure_of(login, ClientError).message == LOST
    assert visit.user.shown == [WELCOME, LOGIN_TIMED_OUT]
    assert visit.sent() == ["alice"]  # No message is taken for another name.


def test_a_login_timeout_in_answer_to_a_name_at_a_terminal_is_shown_then_reported() -> None:
    visit = Visit(interactive=True)
    visit.user.more = Deferred()
    login = visit.log_in("alice")
    visit.answer(WELCOME, LOGIN_TIMED_OUT)
    visit.hang_up()
    assert failure_of(login, ClientError).message == LOST
    assert visit.user.shown == [WELCOME, LOGIN_TIMED_OUT]


def test_an_error_in_answer_to_a_name_option_that_does_not_refuse_it_is_no_refusal() -> None:
    visit = Visit("hello")
    login = visit.log_in("alice")
    visit.answer(WELCOME, "ERROR room unavailable, try again")
    visit.reactor.advance(10)
    assert failure_of(login, ClientError).message == f"no answer from {WHERE} within 10 s"
    assert visit.user.shown == [WELCOME, "ERROR room unavailable, try again"]
    assert visit.sent() == ["alice"]


def test_a_piped_line_too_long_for_the_server_is_refused_as_a_name_is() -> None:
    visit = Visit("x" * 2000, "bob")
    login = visit.log_in(None)
    visit.answer(WELCOME, "ERROR line too long (max 1024 bytes)", "Welcome bob! 1 user online: bob")
    assert result_of(login) is True
    assert visit.sent() == ["x" * 2000, "bob"]


def test_no_prompt_within_the_timeout_is_a_client_error() -> None:
    visit = Visit()
    login = visit.log_in()
    visit.reactor.advance(10)
    assert failure_of(login, ClientError).message == f"no answer from {WHERE} within 10 s"


def test_ctrl_c_before_a_name_is_accepted_sends_no_quit() -> None:
    visit = Visit()
    visit.log_in(None)
    visit.answer(WELCOME)
    visit.reactor.begin_shutdown()
    assert visit.sent() == []


def test_ctrl_c_once_logged_in_sends_quit_and_ends_quietly() -> None:
    visit = logged_in()
    visit.user.more = Deferred()
    chatting = visit.chat()
    visit.reactor.begin_shutdown()
    assert visit.sent() == ["/quit"]
    failure_of(chatting, Interrupted)


# Chatting


def test_lines_from_the_room_are_shown_as_they_come() -> None:
    visit = logged_in()
    visit.user.more = Deferred()
    visit.chat()
    visit.answer("* bob joined")
    assert visit.user.shown == ["* bob joined"]
    visit.answer("<bob> hi", "*bob* psst")
    assert visit.user.shown == ["* bob joined", "<bob> hi", "*bob* psst"]


def test_the_room_is_not_given_a_timeout() -> None:
    visit = logged_in()
    visit.user.more = Deferred()
    chatting = visit.chat()
    visit.reactor.advance(3600)
    assert not chatting.called
    visit.answer("<bob> still here?")
    assert visit.user.shown == ["<bob> still here?"]


def test_control_characters_from_the_server_are_removed_before_showing() -> None:
    visit = logged_in()
    visit.user.more = Deferred()
    visit.chat()
    visit.answer("<bob> \x1b[2J\x1b]0;owned\x07hi\x9b\tthere\x7f")
    assert visit.user.shown == ["<bob> [2J]0;ownedhi\tthere"]


def test_typed_lines_are_sent_as_they_are_and_the_end_of_input_sends_quit() -> None:
    visit = logged_in(" hello ", "", "/me waves", "//quit is a message")
    chatting = visit.chat()
    assert visit.sent() == [" hello ", "", "/me waves", "//quit is a message", "/quit"]
    visit.answer("Bye alice!")
    visit.hang_up()
    assert result_of(chatting) is None
    assert visit.user.shown == ["Bye alice!"]


def test_a_typed_quit_is_sent_with_its_reason_and_nothing_more_is_read() -> None:
    visit = logged_in("/quit gone fishing", "never sent")
    chatting = visit.chat()
    assert visit.sent() == ["/quit gone fishing"]
    visit.hang_up()
    assert result_of(chatting) is None
    assert visit.user.lines == ["never sent"]


def test_a_server_that_does_not_close_after_quit_is_hung_up_on() -> None:
    visit = logged_in()
    chatting = visit.chat()
    assert visit.sent() == ["/quit"]
    visit.reactor.advance(9.9)
    assert not chatting.called
    visit.reactor.advance(0.1)
    assert visit.transport.disconnected
    assert result_of(chatting) is None


def test_the_server_closing_without_our_quit_is_a_client_error() -> None:
    visit = logged_in()
    visit.user.more = Deferred()
    chatting = visit.chat()
    visit.answer("* server shutting down")
    visit.hang_up()
    assert failure_of(chatting, ClientError).message == LOST
    assert visit.user.shown == ["* server shutting down"]
    assert visit.sent() == []


def renaming(*typed: str) -> Visit:
    """A visit chatting, the lines typed sent, the user typing nothing more for now."""
    visit = logged_in(*typed)
    visit.user.more = Deferred()
    visit.chat()
    assert visit.sent() == list(typed)
    return visit


def test_the_prompt_is_the_name_and_follows_our_own_rename() -> None:
    visit = renaming("/nick carol")
    assert visit.session.prompt() == "alice> "
    visit.answer("* bob is now known as bobby")
    assert visit.session.prompt() == "alice> "
    visit.answer("* alice is now known as carol")
    assert visit.session.prompt() == "carol> "


# "/me is now known as zed" is relayed as "* alice is now known as zed",
# word for word what a /nick zed would be.
def test_a_me_that_reads_as_a_rename_does_not_change_the_prompt() -> None:
    visit = renaming("/me is now known as zed")
    visit.answer("* alice is now known as zed")
    assert visit.user.shown == ["* alice is now known as zed"]
    assert visit.session.prompt() == "alice> "


def test_only_a_rename_to_the_name_of_our_nick_is_followed_whatever_its_case() -> None:
    visit = renaming("/NICK\tCarol ")
    visit.answer("* alice is now known as zed")
    assert visit.session.prompt() == "alice> "
    visit.answer("* alice is now known as carol")
    assert visit.session.prompt() == "carol> "


def test_a_nick_once_followed_is_forgotten() -> None:
    visit = renaming("/nick carol")
    visit.answer("* alice is now known as carol")
    visit.answer("* carol is now known as CAROL")  # A /me again.
    assert visit.session.prompt() == "carol> "


def test_a_nick_of_an_invalid_name_leaves_the_name_asked_for_before() -> None:
    visit = renaming("/nick carol", "/nick not a name")
    visit.answer("* alice is now known as carol", INVALID_NAME)
    assert visit.session.prompt() == "carol> "


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("/nick carol", "carol"),
        ("/NICK carol", "carol"),
        ("/Nick\tcarol ", "carol"),
        ("/nick   Car.ol-2", "Car.ol-2"),
    ],
)
def test_a_nick_asks_for_a_name_as_the_server_reads_it(line: str, name: str) -> None:
    assert requested_name(line) == name


@pytest.mark.parametrize(
    "line",
    [
        "/nickname carol",
        "/nick",
        "/nick ",
        " /nick carol",
        "//nick carol",
        "/me /nick carol",
        "/nick a b",
        "/nick al!ce",
        "nick carol",
    ],
)
def test_lines_that_ask_for_no_valid_name(line: str) -> None:
    assert requested_name(line) is None


def test_a_line_too_long_to_read_whole_is_not_sent() -> None:
    visit = logged_in(LineTooLong("x" * MAX_INPUT_LINE), "hi")
    visit.chat()
    assert visit.sent() == ["hi", "/quit"]
    assert visit.user.complaints == [f"not sent: a line longer than {MAX_INPUT_LINE} bytes"]


def test_input_that_cannot_be_read_is_said_and_ends_as_the_end_of_input_does() -> None:
    visit = logged_in()
    visit.user.more = defer.fail(OSError("Input/output error"))
    visit.chat()
    assert visit.user.complaints == ["cannot read the input: Input/output error"]
    assert visit.sent() == ["/quit"]


@pytest.mark.parametrize("line", ["/quit", "/quit bye all", "/quit  ", "/QUIT", "/Quit\tbye"])
def test_quit_is_recognised_in_any_case_with_a_reason(line: str) -> None:
    assert is_quit(line)


# The server reads a line that starts with a space as a message, not a command.
@pytest.mark.parametrize("line", ["/quitter", "//quit", "quit", "/me /quit", "", "  /quit"])
def test_lines_that_only_look_like_quit_are_messages(line: str) -> None:
    assert not is_quit(line)


# Options


def parse(*arguments: str) -> argparse.Namespace:
    return build_parser().parse_args(["chat", *arguments])


def test_the_default_port_is_labchats_and_the_front_end_is_piped() -> None:
    options = parse()
    assert (options.host, options.port, options.name, options.at_terminal) == (
        "127.0.0.1",
        43389,
        None,
        False,
    )


def test_the_labproto_command_lets_chat_choose_its_reactor_first() -> None:
    assert parse().prepare is chat.prepare
    assert build_parser().parse_args(["calc"]).prepare is None


def test_without_a_terminal_the_piped_front_end_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat, "at_terminal", lambda: False)
    options = parse()
    chat.prepare(options)
    assert options.at_terminal is False


def test_the_name_option_is_trimmed() -> None:
    assert parse("--name", " alice ").name == "alice"


def test_a_24_character_name_of_every_allowed_kind_is_accepted() -> None:
    assert name_argument("Az09_.-" + "x" * 17) == "Az09_.-" + "x" * 17


@pytest.mark.parametrize("name", ["", "a b", "x" * 25, "José", "al!ce", "a\x1bb"])
def test_an_invalid_name_option_is_a_usage_error(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        parse("--name", name)
    assert raised.value.code == 2
    assert "is not a name: use 1 to 24 ASCII letters, digits, _, - or ." in capsys.readouterr().err


# The labproto command against a fake server


class FakeUser(LineReceiver):
    """One connection to FakeLabchat: a login, then each line echoed as the room would."""

    delimiter = b"\n"
    factory: FakeLabchat

    def __init__(self) -> None:
        self.name: str | None = None

    def say(self, text: str) -> None:
        self.sendLine(text.encode() + b"\r")

    def connectionMade(self) -> None:
        if self.factory.full:
            self.say("ERROR room full")
            self.transport.loseConnection()
        else:
            self.say(WELCOME)

    def lineReceived(self, line: bytes) -> None:
        text = line.removesuffix(b"\r").decode()
        self.factory.received.append(text)
        if self.name is None:
            self.log_in(text)
        elif is_quit(text):
            self.say(f"Bye {self.name}!")
            self.transport.loseConnection()
        elif text.startswith("/nick "):
            old, self.name = self.name, text.split()[1]
            self.say(f"* {old} is now known as {self.name}")
        else:
            self.say(f"<{self.name}> {text}")

    def log_in(self, name: str) -> None:
        if self.factory.login_times_out:
            # The server's login timeout, passing as the name arrives.
            self.say(LOGIN_TIMED_OUT)
            self.transport.loseConnection()
            return
        if name in self.factory.taken:
            self.say(f"ERROR name taken: {name}")
            return
        self.name = name
        self.say(f"Welcome {name}! 1 user online: {name}")
        for line in self.factory.after_login:
            self.say(line)
        if self.factory.hang_up_after_login:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.users.discard(self)


class FakeLabchat(Factory):
    """A labchat room of one, as far as the client tests need it; records every line received."""

    protocol = FakeUser

    def __init__(self) -> None:
        self.received: list[str] = []
        self.taken: set[str] = set()
        self.after_login: list[str] = []
        self.hang_up_after_login = False
        self.full = False
        self.login_times_out = False
        self.users: set[FakeUser] = set()

    def buildProtocol(self, addr: object) -> FakeUser:
        user = FakeUser()
        user.factory = self
        self.users.add(user)
        return user


@pytest_twisted.async_yield_fixture
async def room() -> AsyncIterator[tuple[FakeLabchat, int]]:
    """A FakeLabchat listening on a free port of 127.0.0.1, and that port."""
    factory = FakeLabchat()
    listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
    yield factory, listening.getHost().port
    await listening.stopListening()
    for user in list(factory.users):
        user.transport.abortConnection()


def run_chat(
    port: int, *arguments: str, input: str = "", keep_input_open: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``labproto chat`` to its end with input piped in, blocking: call it in a thread.

    keep_input_open leaves standard input open after input, so that the
    client never sees its end (which would make it quit by itself).
    """
    client = start_labproto("chat", "--port", str(port), *arguments)
    assert client.stdin is not None and client.stdout is not None and client.stderr is not None
    try:
        client.stdin.write(input)
        client.stdin.flush()
        if not keep_input_open:
            client.stdin.close()
        status = client.wait(DEADLINE)
        return subprocess.CompletedProcess(
            client.args, status, client.stdout.read(), client.stderr.read()
        )
    finally:
        client.kill()
        client.wait()
        for pipe in (client.stdin, client.stdout, client.stderr):
            pipe.close()


Room = tuple[FakeLabchat, int]


@pytest_twisted.ensureDeferred
async def test_a_piped_session_prints_the_room_and_quits_at_the_end_of_input(room: Room) -> None:
    factory, port = room
    factory.after_login = ["* bob joined"]
    result = await threads.deferToThread(run_chat, port, input="alice\nhello\n/me waves\n")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        f"{WELCOME}\n"
        "Welcome alice! 1 user online: alice\n"
        "* bob joined\n"
        "<alice> hello\n"
        "<alice> /me waves\n"
        "Bye alice!\n"
    )
    assert factory.received == ["alice", "hello", "/me waves", "/quit"]


@pytest_twisted.ensureDeferred
async def test_a_taken_name_option_ends_a_piped_client_with_status_1(room: Room) -> None:
    factory, port = room
    factory.taken = {"alice"}
    result = await threads.deferToThread(
        run_chat, port, "--name", "alice", input="hello\n", keep_input_open=True
    )
    assert (result.returncode, result.stdout) == (1, f"{WELCOME}\n")
    assert result.stderr == (
        f"127.0.0.1:{port} refused the name 'alice': ERROR name taken: alice\n"
    )
    assert factory.received == ["alice"]


@pytest_twisted.ensureDeferred
async def test_a_login_timeout_in_answer_to_the_name_option_is_no_refusal_of_it(
    room: Room,
) -> None:
    factory, port = room
    factory.login_times_out = True
    result = await threads.deferToThread(
        run_chat, port, "--name", "alice", input="hello\n", keep_input_open=True
    )
    assert (result.returncode, result.stdout) == (1, f"{WELCOME}\n{LOGIN_TIMED_OUT}\n")
    assert result.stderr == (
        f"lost the connection to 127.0.0.1:{port}: the server closed the connection\n"
    )
    assert factory.received == ["alice"]


@pytest_twisted.ensureDeferred
async def test_piped_input_lines_are_tried_as_names_until_one_is_accepted(room: Room) -> None:
    factory, port = room
    factory.taken = {"alice"}
    result = await threads.deferToThread(run_chat, port, input="alice\nbob\nhi\n")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        f"{WELCOME}\n"
        "ERROR name taken: alice\n"
        "Welcome bob! 1 user online: bob\n"
        "<bob> hi\n"
        "Bye bob!\n"
    )
    assert factory.received == ["alice", "bob", "hi", "/quit"]


@pytest_twisted.ensureDeferred
async def test_a_server_that_closes_the_connection_ends_the_client_with_status_1(
    room: Room,
) -> None:
    factory, port = room
    factory.after_login = ["* server shutting down"]
    factory.hang_up_after_login = True
    result = await threads.deferToThread(
        run_chat, port, "--name", "alice", keep_input_open=True
    )
    assert result.returncode == 1
    assert result.stdout.endswith("Welcome alice! 1 user online: alice\n* server shutting down\n")
    assert result.stderr == (
        f"lost the connection to 127.0.0.1:{port}: the server closed the connection\n"
    )
    assert factory.received == ["alice"]


@pytest_twisted.ensureDeferred
async def test_a_full_room_ends_the_client_with_status_1(room: Room) -> None:
    factory, port = room
    factory.full = True
    result = await threads.deferToThread(run_chat, port, "--name", "alice", keep_input_open=True)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"127.0.0.1:{port} did not let us in: ERROR room full\n"


@pytest_twisted.ensureDeferred
async def test_control_characters_from_the_server_never_reach_the_output(room: Room) -> None:
    factory, port = room
    factory.after_login = ["* \x1b]0;owned\x07bob\x1b[8m joined\x9b"]
    result = await threads.deferToThread(run_chat, port, "--name", "alice")
    assert result.returncode == 0
    assert "* ]0;ownedbob[8m joined\n" in result.stdout
    assert not any(char in result.stdout for char in "\x1b\x07\x9b")


def test_an_invalid_name_option_is_status_2_before_connecting() -> None:
    result = run_chat(1, "--name", "no spaces allowed")
    assert result.returncode == 2
    assert result.stderr == (
        "labproto chat: argument --name: 'no spaces allowed' is not a name: "
        "use 1 to 24 ASCII letters, digits, _, - or . (see labproto chat --help)\n"
    )


def type_at_a_terminal(port: int) -> int | None:
    """Chat as a person would at a terminal: a name, a message, a rename, Ctrl-D; the status."""
    terminal = chat_at_a_terminal(port)
    # The prompts are matched without their trailing space, which the
    # terminal is told as a cursor movement.
    try:
        terminal.expect_exact(WELCOME)
        terminal.expect_exact("name:")
        terminal.send("alice\r")
        terminal.expect_exact("Welcome alice! 1 user online: alice")
        terminal.expect_exact("* bob joined")
        terminal.expect_exact("alice>")
        terminal.send("hello\r")
        terminal.expect_exact("<alice> hello")
        terminal.send("/nick carol\r")
        terminal.expect_exact("* alice is now known as carol")
        terminal.expect_exact("carol>")
        terminal.sendcontrol("d")
        terminal.expect_exact("Bye carol!")
        terminal.expect_exact(pexpect.EOF)
    finally:
        terminal.close()
    status: int | None = terminal.exitstatus
    return status


@pytest_twisted.ensureDeferred
async def test_at_a_terminal_the_room_is_shown_above_a_prompt_and_ctrl_d_quits(
    room: Room,
) -> None:
    factory, port = room
    factory.after_login = ["* bob joined"]
    assert await threads.deferToThread(type_at_a_terminal, port) == 0
    assert factory.received == ["alice", "hello", "/nick carol", "/quit"]


def lose_the_server_at_a_terminal(port: int) -> tuple[int | None, str]:
    """Log in at a terminal and wait for the end; the status and what was shown after login."""
    terminal = chat_at_a_terminal(port)
    try:
        # The server's prompt ends with "name:" too: the client's comes after it.
        terminal.expect_exact(WELCOME)
        terminal.expect_exact("name:")
        terminal.send("alice\r")
        terminal.expect_exact(pexpect.EOF)
    finally:
        terminal.close()
    return terminal.exitstatus, terminal.before


@pytest_twisted.ensureDeferred
async def test_at_a_terminal_a_lost_connection_is_one_line_and_status_1(room: Room) -> None:
    factory, port = room
    factory.after_login = ["* server shutting down"]
    factory.hang_up_after_login = True
    status, shown = await threads.deferToThread(lose_the_server_at_a_terminal, port)
    assert status == 1
    assert "* server shutting down" in shown
    assert shown.endswith(
        f"lost the connection to 127.0.0.1:{port}: the server closed the connection\r\n"
    )
    assert "Traceback" not in shown
