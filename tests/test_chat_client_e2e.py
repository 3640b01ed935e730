"""``labproto chat`` end to end: the real client against a real ``twistd -n labchat``.

The client runs piped (as a script would run it) and at a pseudo-terminal
(as a person would, driven with pexpect); the other users of the room are
raw sockets of the test itself (support.chat.ChatUser). Nothing waits on a
clock for ordering: each step waits for a line in the server's log, on the
terminal or on a socket, with a deadline.
"""

from __future__ import annotations

import contextlib
import io
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest
from support.certificates import make_certificate, tls_endpoint
from support.chat import PROMPT, ChatUser, Connect, chat_at_a_terminal, chat_server
from support.processes import (
    DEADLINE,
    ServerProcess,
    run_labproto,
    start_labproto,
)

Start = Callable[..., ServerProcess]
Terminals = Callable[..., pexpect.spawn]

# prompt_toolkit draws between the prompt and the text typed after it
# whatever it likes: cursor moves, colour resets, the prompt's trailing
# space. None of it is a character of the line.
DRAWING = r"(?:\x1b\[[0-9;?]*[A-Za-z]| )*"
# A control sequence (CSI): its parameters and its final character.
CSI = re.compile(r"\x1b\[([0-9;?]*)([@-~])")
# Any other escape: an OSC such as a window title, ended by BEL or ST, or ESC and one character.
OTHER_ESCAPE = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[^\[]")





def logged_in(connect: Connect, port: int, name: str) -> ChatUser:
    """A raw-socket user in the room under name, its welcome line read."""
    user = connect(port)
    user.log_in(name)
    return user


def piped(port: int, *arguments: str, input: str) -> subprocess.CompletedProcess[str]:
    """Run ``labproto chat`` on port to its end, input piped in and then closed."""
    return run_labproto("chat", "--port", str(port), *arguments, input=input)


@contextlib.contextmanager
def running_client(port: int, *arguments: str) -> Iterator[subprocess.Popen[str]]:
    """``labproto chat`` on port, its input a pipe left open until the test closes it.

    Killed if it is still running at the end, and its pipes closed.
    """
    client = start_labproto("chat", "--port", str(port), *arguments)
    try:
        yield client
    finally:
        client.kill()
        client.wait()
        for pipe in (client.stdin, client.stdout, client.stderr):
            if pipe is not None:
                pipe.close()


def type_into(client: subprocess.Popen[str], line: str) -> None:
    """Write one line to the client's input, at once."""
    assert client.stdin is not None
    client.stdin.write(line + "\n")
    client.stdin.flush()


def end_of(client: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Wait for the client to end: its exit status, standard output and standard error."""
    assert client.stdout is not None and client.stderr is not None
    status = client.wait(DEADLINE)
    return status, client.stdout.read(), client.stderr.read()


def joined(name: str) -> str:
    """The server's log line for name's login from loopback, as a pattern."""
    return rf"\] {name} joined from \('127\.0\.0\.1', \d+\)$"


def left(name: str, reason: str) -> str:
    """The server's log line for name's leave, as a pattern."""
    return rf"\] {name} left \({reason}\)$"


# Piped


def test_a_piped_session_says_hello_asks_who_and_quits_at_the_end_of_input(
    servers: Start,
) -> None:
    server, port = chat_server(servers)
    result = piped(port, "--name", "alice", input="hello\n/who\n")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        f"{PROMPT}\n"
        "Welcome alice! 1 user online: alice\n"
        "<alice> hello\n"
        "1 user online: alice\n"
        "Bye alice!\n"
    )
    server.wait_for(joined("alice"))
    server.wait_for(r"\] <alice> hello$")
    server.wait_for(left("alice", "quit"))


def test_a_piped_client_and_a_socket_user_hear_each_other(servers: Start, connect: Connect) -> None:
    _, port = chat_server(servers)
    bob = logged_in(connect, port, "bob")
    result = piped(port, "--name", "alice", input="hello bob\n")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        f"{PROMPT}\nWelcome alice! 2 users online: alice, bob\n<alice> hello bob\nBye alice!\n"
    )
    assert bob.lines_through("* alice left (quit)") == [
        "* alice joined",
        "<alice> hello bob",
        "* alice left (quit)",
    ]
    # And the other way: alice, back with her input open, hears bob.
    with running_client(port, "--name", "alice") as alice:
        bob.expect("* alice joined")
        bob.send("welcome back")
        bob.expect("<bob> welcome back")
        type_into(alice, "thanks")
        bob.expect("<alice> thanks")
        assert alice.stdin is not None
        alice.stdin.close()
        bob.expect("* alice left (quit)")
        assert end_of(alice) == (
            0,
            f"{PROMPT}\n"
            "Welcome alice! 2 users online: alice, bob\n"
            "<bob> welcome back\n"
            "<alice> thanks\n"
            "Bye alice!\n",
            "",
        )


def test_without_a_name_option_a_taken_name_is_shown_and_the_next_line_tried(
    servers: Start, connect: Connect
) -> None:
    server, port = chat_server(servers)
    bob = logged_in(connect, port, "bob")
    # Taken whatever its case; the error quotes it as typed.
    result = piped(port, input="Bob\nalice\nhello\n")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        f"{PROMPT}\n"
        "ERROR name taken: Bob\n"
        "Welcome alice! 2 users online: alice, bob\n"
        "<alice> hello\n"
        "Bye alice!\n"
    )
    assert bob.lines_through("* alice left (quit)") == [
        "* alice joined",
        "<alice> hello",
        "* alice left (quit)",
    ]
    server.wait_for(left("alice", "quit"))


def test_a_taken_name_option_ends_a_piped_client_with_status_1(
    servers: Start, connect: Connect
) -> None:
    server, port = chat_server(servers)
    first = logged_in(connect, port, "alice")
    result = piped(port, "--name", "alice", input="hello\n")
    assert (result.returncode, result.stdout) == (1, f"{PROMPT}\n")
    assert result.stderr == (
        f"127.0.0.1:{port} refused the name 'alice': ERROR name taken: alice\n"
    )
    server.wait_for(r"Disconnected \('127\.0\.0\.1', \d+\) before logging in$")
    # Nothing of it reached the room.
    first.send("/who")
    first.expect("1 user online: alice")
    assert "hello" not in server.output()


def test_a_server_shutting_down_ends_a_connected_client_with_status_1(
    servers: Start,
) -> None:
    server, port = chat_server(servers)
    with running_client(port, "--name", "alice") as alice:
        server.wait_for(joined("alice"))
        assert server.stop() in (0, -signal.SIGINT)
        # Its input still open: the client leaves because the server went, not of itself.
        assert end_of(alice) == (
            1,
            f"{PROMPT}\nWelcome alice! 1 user online: alice\n* server shutting down\n",
            f"lost the connection to 127.0.0.1:{port}: the server closed the connection\n",
        )
    assert "] alice left (server shutting down)" in server.output()


def test_a_piped_session_over_tls(servers: Start, tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path)
    server, port = chat_server(servers, "--port", tls_endpoint(certificate))
    server.wait_for(rf"labchat listening on TCP 127\.0\.0\.1:{port} \(TLS\)$")
    result = piped(
        port,
        "--tls",
        "--ca-file",
        str(certificate.certificate),
        "--name",
        "alice",
        input="over TLS\n",
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        f"{PROMPT}\nWelcome alice! 1 user online: alice\n<alice> over TLS\nBye alice!\n"
    )
    server.wait_for(r"\] <alice> over TLS$")
    server.wait_for(left("alice", "quit"))


# At a terminal


@pytest.fixture
def terminals() -> Iterator[Terminals]:
    """Start ``labproto chat`` on pseudo-terminals; each is closed when the test ends."""
    started: list[pexpect.spawn] = []

    def start(port: int, *arguments: str) -> pexpect.spawn:
        terminal = chat_at_a_terminal(port, *arguments)
        # Everything the client draws, for shown().
        terminal.logfile_read = io.StringIO()
        started.append(terminal)
        return terminal

    yield start
    for terminal in started:
        terminal.close(force=True)


def screen(drawn: str) -> list[str]:
    """The lines a terminal shows after drawn, which moves the cursor as prompt_toolkit does.

    Enough of a terminal for a prompt drawn with relative cursor moves: text,
    CR, LF, cursor up, down, forward and back, erasing to the end of the
    line or the screen; colours and modes are ignored, and the screen never
    scrolls off its top.
    """
    rows: list[list[str]] = [[]]
    row = column = 0
    at = 0
    while at < len(drawn):
        sequence = CSI.match(drawn, at)
        if sequence:
            parameters, final = sequence.groups()
            count = int(parameters) if parameters.isdigit() else 1
            if final == "A":
                row = max(0, row - count)
            elif final == "B":
                row += count
            elif final == "C":
                column += count
            elif final == "D":
                column = max(0, column - count)
            elif final in "JK":
                rows.extend([] for _ in range(row + 1 - len(rows)))
                del rows[row][column:]
                if final == "J":
                    del rows[row + 1 :]
            at = sequence.end()
            continue
        other = OTHER_ESCAPE.match(drawn, at)
        if other:
            at = other.end()
            continue
        character = drawn[at]
        at += 1
        if character == "\r":
            column = 0
        elif character == "\n":
            row += 1
        elif character == "\b":
            column = max(0, column - 1)
        elif character.isprintable():
            rows.extend([] for _ in range(row + 1 - len(rows)))
            line = rows[row]
            line.extend(" " for _ in range(column + 1 - len(line)))
            line[column] = character
            column += 1
    shown = ["".join(line).rstrip() for line in rows]
    while shown and not shown[-1]:
        shown.pop()
    return shown


def shown(terminal: pexpect.spawn) -> list[str]:
    """The lines on the screen of a terminal from terminals, as far as pexpect has read."""
    return screen(terminal.logfile_read.getvalue())


def type_name(terminal: pexpect.spawn, name: str) -> None:
    """Answer the client's name prompt and wait for the server's welcome and our prompt."""
    # The prompts are matched without their trailing space, which the
    # terminal is told as a cursor movement.
    terminal.expect_exact(PROMPT)
    terminal.expect_exact("name:")
    terminal.send(f"{name}\r")
    terminal.expect_exact(f"Welcome {name}! ")
    terminal.expect_exact(f"{name}>")


def ended(terminal: pexpect.spawn) -> int | None:
    """Wait for the client at terminal to end and return its exit status."""
    terminal.expect_exact(pexpect.EOF)
    terminal.close()
    assert "Traceback" not in terminal.logfile_read.getvalue()
    status: int | None = terminal.exitstatus
    return status


def test_at_a_terminal_a_half_typed_line_survives_an_incoming_one(
    servers: Start, connect: Connect, terminals: Terminals
) -> None:
    server, port = chat_server(servers)
    terminal = terminals(port)
    type_name(terminal, "alice")
    bob = logged_in(connect, port, "bob")
    terminal.expect_exact("* bob joined")
    terminal.expect_exact("alice>")
    terminal.send("hello\r")
    terminal.expect_exact("<alice> hello\r\n")
    bob.expect("<alice> hello")

    terminal.send("half a li")
    terminal.expect_exact("half a li")
    bob.send("are you there?")
    bob.expect("<bob> are you there?")
    # bob's line on a line of its own, then the prompt redrawn below it
    # with what alice had typed so far.
    terminal.expect_exact("<bob> are you there?\r\n")
    terminal.expect(f"alice>{DRAWING}half a li")
    assert "\n" not in terminal.before
    assert shown(terminal) == [
        PROMPT,
        "Welcome alice! 1 user online: alice",
        "* bob joined",
        "<alice> hello",
        "<bob> are you there?",
        "alice> half a li",
    ]
    terminal.send("ne, sorry\r")
    terminal.expect_exact("<alice> half a line, sorry\r\n")
    bob.expect("<alice> half a line, sorry")

    terminal.sendcontrol("d")
    terminal.expect_exact("Bye alice!")
    assert ended(terminal) == 0
    # The prompt taken away, and no complaint.
    assert shown(terminal)[-3:] == [
        "<bob> are you there?",
        "<alice> half a line, sorry",
        "Bye alice!",
    ]
    bob.expect("* alice left (quit)")
    server.wait_for(left("alice", "quit"))


def test_ctrl_c_at_the_prompt_of_a_terminal_quits(servers: Start, terminals: Terminals) -> None:
    server, port = chat_server(servers)
    terminal = terminals(port)
    type_name(terminal, "alice")
    terminal.sendcontrol("c")
    terminal.expect_exact("Bye alice!")
    assert ended(terminal) == 0
    assert shown(terminal) == [PROMPT, "Welcome alice! 1 user online: alice", "Bye alice!"]
    server.wait_for(left("alice", "quit"))


def test_ctrl_c_at_the_name_prompt_of_a_terminal_leaves_without_a_name(
    servers: Start, terminals: Terminals
) -> None:
    server, port = chat_server(servers)
    terminal = terminals(port)
    # The server's prompt ends in "name:" too: wait for the client's own after it.
    terminal.expect_exact(PROMPT)
    terminal.expect_exact("name:")
    terminal.sendcontrol("c")
    assert ended(terminal) == 0
    # Nothing shown after the prompt: no complaint, no answer to a name.
    assert shown(terminal) == [PROMPT]
    server.wait_for(r"Disconnected \('127\.0\.0\.1', \d+\) before logging in$")


def test_at_a_terminal_the_prompt_follows_our_nick_and_not_a_me_that_reads_like_one(
    servers: Start, terminals: Terminals
) -> None:
    server, port = chat_server(servers)
    terminal = terminals(port)
    type_name(terminal, "alice")
    # The server relays this word for word as it would relay /nick zed.
    terminal.send("/me is now known as zed\r")
    terminal.expect_exact("* alice is now known as zed\r\n")
    terminal.expect_exact("alice>")
    assert shown(terminal)[-2:] == ["* alice is now known as zed", "alice>"]
    terminal.send("/nick carol\r")
    terminal.expect_exact("* alice is now known as carol\r\n")
    terminal.expect_exact("carol>")
    terminal.sendcontrol("d")
    terminal.expect_exact("Bye carol!")
    assert ended(terminal) == 0
    server.wait_for(left("carol", "quit"))
