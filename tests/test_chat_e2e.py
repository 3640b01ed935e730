"""labchat as a real twistd process, spoken to over loopback sockets by the test itself."""

from __future__ import annotations

import contextlib
import re
import resource
import signal
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.certificates import make_certificate, tls_endpoint
from support.chat import PROMPT, ChatUser, Connect, chat_server, flood, wait_until
from support.processes import DEADLINE, ServerProcess, poll_until, resident_mib

Start = Callable[..., ServerProcess]

WELCOME = re.compile(r"Welcome (\S+)! (\d+) users? online")






def messages(user: ChatUser) -> list[str]:
    """The messages (``<name> text``) a user has received."""
    return [line for line in user.lines if line.startswith("<")]


@pytest.fixture
def open_files() -> Iterator[Callable[[int], None]]:
    """Let the test open more files than the soft limit allows, and restore the limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def allow(count: int) -> None:
        if soft == resource.RLIM_INFINITY or soft >= count:
            return
        if hard != resource.RLIM_INFINITY and hard < count:
            pytest.skip(f"the hard limit of open files, {hard}, is below {count}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))

    yield allow
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


CROWD = 200


def test_200_users_hear_every_broadcast_in_one_order(
    servers: Start, connect: Connect, open_files: Callable[[int], None]
) -> None:
    open_files(CROWD + 100)
    server, port = chat_server(servers, "--rate", "0", "--quiet", "--max-per-host", "0")
    crowd: list[ChatUser] = []
    # In batches, each taken in before the next comes, so that the listening
    # socket's backlog never overflows (a dropped SYN costs a second).
    for batch in range(0, CROWD, 40):
        users = [connect(port) for _ in range(40)]
        wait_until(users, lambda user: len(user.lines) >= 1)
        for number, user in enumerate(users, batch):
            user.name = f"user{number:03d}"
            user.send(user.name)
        crowd += users
    # All log in at once: the server decides the order in which they join.
    wait_until(crowd, lambda user: len(user.lines) >= 2)
    position: dict[str, int] = {}
    for user in crowd:
        assert user.lines[0] == PROMPT
        welcome = WELCOME.match(user.lines[1])
        assert welcome is not None and welcome.group(1) == user.name, user.lines[1]
        position[user.name] = int(welcome.group(2))
    assert sorted(position.values()) == list(range(1, CROWD + 1))
    # Each has heard of everyone who joined after it.
    wait_until(crowd, lambda user: len(user.lines) >= 2 + CROWD - position[user.name])
    first = min(crowd, key=lambda user: position[user.name])
    joining_order = [first.name] + [
        line.removeprefix("* ").removesuffix(" joined") for line in first.lines[2:]
    ]
    assert sorted(joining_order) == sorted(position)
    for user in crowd:
        joined_at = position[user.name]
        assert joining_order[joined_at - 1] == user.name
        if joined_at <= 20:
            present = ", ".join(sorted(joining_order[:joined_at]))
            assert user.lines[1].endswith(f" online: {present}")
        else:
            counted = f"Welcome {user.name}! {joined_at} users online (/who lists them)"
            assert user.lines[1] == counted
        assert user.lines[2:] == [f"* {name} joined" for name in joining_order[joined_at:]]
        user.seen = len(user.lines)

    for user in crowd:
        user.send(f"hello from {user.name}")
    wait_until(crowd, lambda user: len(user.lines) >= user.seen + CROWD)
    heard = first.lines[first.seen :]
    assert sorted(heard) == sorted(f"<{user.name}> hello from {user.name}" for user in crowd)
    for user in crowd:
        assert user.lines[user.seen :] == heard, f"{user.name} heard another order"
    assert "hello from" not in server.output()


# About 1 KiB a message.
def join_slow_reader(port: int, connect: Connect, others: list[ChatUser]) -> ChatUser:
    """Log in a user who never reads, behind a small receive buffer, and wait for others to know."""
    slow = connect(port, receive_buffer=4096)
    slow.send("slow")  # and from now on, it never reads
    for user in others:
        user.expect("* slow joined")
    return slow


FLOOD_MIB = 24


def test_a_slow_reader_is_cut_off_and_the_others_hear_every_message(
    servers: Start, connect: Connect
) -> None:
    server, port = chat_server(servers, "--sendq", "64K", "--rate", "0", "--quiet")
    talker, listener = connect(port), connect(port)
    talker.log_in("talker")
    listener.log_in("listener")
    talker.expect("* listener joined")
    slow = join_slow_reader(port, connect, [talker, listener])
    before = resident_mib(server.process.pid)
    sizes = [before]

    expected = flood(
        talker,
        [talker, listener],
        FLOOD_MIB * 1024,
        lambda: sizes.append(resident_mib(server.process.pid)),
    )
    for user in (talker, listener):
        assert messages(user) == expected
        others = [line for line in user.lines[user.seen :] if not line.startswith("<")]
        assert others == ["* slow left (send queue exceeded)"]
    server.wait_for(r"\] slow left \(send queue exceeded\)$")
    # What the kernel held for it, cut off mid-line, and then the end: the server hung up.
    slow.wait(lambda user: user.ended)
    assert slow.lines[0] == PROMPT
    # A server that kept the slow reader's queue would hold all that went by.
    grown = max(sizes) - before
    assert grown < FLOOD_MIB / 2, f"the server grew by {grown:.1f} MiB as {FLOOD_MIB} MiB went by"


def stuck_slow_reader(servers: Start, connect: Connect) -> tuple[ServerProcess, ChatUser]:
    """A server holding output for a user who never reads; returns it and a user who reads."""
    server, port = chat_server(servers, "--sendq", "100M", "--rate", "0", "--quiet")
    alice = connect(port)
    alice.log_in("alice")
    join_slow_reader(port, connect, [alice])
    # More than the kernel's buffers take, so that the server itself holds some.
    most_the_kernel_takes = 4 * 1024 * 1024
    with contextlib.suppress(OSError):
        most_the_kernel_takes = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    flood(alice, [alice], 2 * most_the_kernel_takes // 1024)
    alice.seen = len(alice.lines)
    return server, alice


def test_a_reader_too_slow_for_the_shutdown_notice_is_cut_off_after_a_grace(
    servers: Start, connect: Connect
) -> None:
    server, alice = stuck_slow_reader(servers, connect)
    started = time.monotonic()
    assert server.stop() in (0, -signal.SIGINT)
    # The others had the notice at once; the slow reader got 3 s (room.SHUTDOWN_GRACE).
    assert 2 < time.monotonic() - started < DEADLINE / 2
    assert alice.rest() == ["* server shutting down"]
    output = server.output()
    assert "Cutting off connections not closed within 3 s: 1" in output
    assert "] alice left (server shutting down)" in output
    assert "Traceback" not in output
    assert output.endswith("Server Shut Down.")


def test_a_closed_terminal_stops_the_server_with_the_shutdown_notice(
    servers: Start, connect: Connect
) -> None:
    # Closing the terminal of "twistd -n" sends SIGHUP, which once killed it silently.
    server, port = chat_server(servers)
    alice = connect(port)
    alice.log_in("alice")
    server.process.send_signal(signal.SIGHUP)
    assert alice.rest() == ["* server shutting down"]
    assert server.process.wait(DEADLINE) == 0
    assert server.stop() == 0
    output = server.output()
    assert "Received SIGHUP (the terminal closed?), shutting down." in output
    assert "] alice left (server shutting down)" in output


def test_a_user_cut_off_at_shutdown_is_logged_leaving(servers: Start, connect: Connect) -> None:
    server, _ = stuck_slow_reader(servers, connect)
    server.stop()
    assert "] slow left (server shutting down)" in server.output()


def test_a_10_megabyte_line_is_refused_and_the_next_line_relayed(
    servers: Start, connect: Connect
) -> None:
    server, port = chat_server(servers)
    alice, bob = connect(port), connect(port)
    alice.log_in("alice")
    bob.log_in("bob")
    alice.expect("* bob joined")
    alice.sock.sendall(b"x" * 10_000_000 + b"\nstill here\n")
    alice.expect("ERROR line too long (max 1024 bytes)", "<alice> still here")
    bob.expect("<alice> still here")
    server.wait_for(r"<alice> still here$")
    assert "xxxx" not in server.output()


def test_a_flood_of_10000_lines_is_cut_to_the_burst_and_the_rate(
    servers: Start, connect: Connect
) -> None:
    server, port = chat_server(servers, "--quiet")  # --burst 20 --rate 10 by default
    flooder, other = connect(port), connect(port)
    flooder.log_in("flooder")
    other.log_in("other")
    flooder.expect("* other joined")
    started = time.monotonic()
    flooder.sock.sendall(b"".join(b"m%05d\n" % number for number in range(10_000)))
    answers = flooder.next_lines(10_000)
    took = time.monotonic() - started
    # Everything the flooder's lines caused is sent: other's own line comes after it.
    other.send("done")
    relayed = other.lines_through("<other> done")[:-1]

    assert relayed == [line for line in answers if line.startswith("<")]
    assert relayed[:20] == [f"<flooder> m{number:05d}" for number in range(20)]
    numbers = [int(line[len("<flooder> m") :]) for line in relayed]
    assert numbers == sorted(set(numbers)), "out of order, or twice"
    assert len(relayed) <= 20 + 10 * took + 1
    assert answers.count("ERROR slow down: message dropped") == 10_000 - len(relayed)
    server.wait_for(r"flooder sends too fast: dropping lines past 20 at once or 10(\.0)?/s$")


def test_a_connection_that_does_not_log_in_in_time_is_closed(
    servers: Start, connect: Connect
) -> None:
    server, port = chat_server(servers, "--login-timeout", "1")
    silent = connect(port)
    started = time.monotonic()
    assert silent.rest() == [PROMPT, "ERROR login timed out"]
    assert time.monotonic() - started > 0.5
    server.wait_for(r"Login timed out: \('127\.0\.0\.1', \d+\)$")


@pytest.mark.parametrize("ending", ["close", "reset"])
def test_a_user_gone_mid_line_leaves_and_the_half_line_is_never_relayed(
    servers: Start, connect: Connect, ending: str
) -> None:
    server, port = chat_server(servers)
    alice, bob = connect(port), connect(port)
    alice.log_in("alice")
    bob.log_in("bob")
    alice.expect("* bob joined")
    alice.sock.sendall(b"half a li")
    if ending == "reset":
        # Linger on, for 0 s: close() sends RST and drops what is unsent.
        alice.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    alice.sock.close()
    bob.expect("* alice left (connection lost)")
    bob.send("anyone?")
    bob.expect("<bob> anyone?")
    server.wait_for(r"\] alice left \(connection lost\)$")
    assert "half" not in server.output()


def test_past_max_users_a_connection_is_told_the_room_is_full_and_closed(
    servers: Start, connect: Connect
) -> None:
    server, port = chat_server(servers, "--max-users", "2")
    alice, bob = connect(port), connect(port)
    alice.log_in("alice")
    bob.log_in("bob")
    assert connect(port).rest() == ["ERROR room full"]
    alice.expect("* bob joined")
    server.wait_for(r"Room full: turned away \('127\.0\.0\.1', \d+\)$")


def test_past_max_per_host_a_connection_is_refused_instead_of_the_prompt_and_closed(
    servers: Start, connect: Connect
) -> None:
    server, port = chat_server(servers, "--max-per-host", "2")
    alice, waiting = connect(port), connect(port)
    alice.log_in("alice")
    waiting.expect(PROMPT)
    assert connect(port).rest() == ["ERROR too many connections from your address"]
    server.wait_for(r"Too many connections from 127\.0\.0\.1: turned away \('127\.0\.0\.1', \d+\)$")
    # One of them gone (once the server has closed its end too), the address may connect again.
    waiting.sock.close()

    def prompted() -> bool | None:
        return connect(port).next_lines(1) == [PROMPT] or None

    poll_until(prompted)


def test_a_room_that_fills_while_one_is_at_the_prompt_turns_that_one_away(
    servers: Start, connect: Connect
) -> None:
    _, port = chat_server(servers, "--max-users", "2")
    alice, bob, carol = connect(port), connect(port), connect(port)
    carol.expect(PROMPT)
    alice.log_in("alice")
    bob.log_in("bob")
    carol.send("carol")
    assert carol.rest() == ["ERROR room full"]


def test_a_name_taken_in_another_case_is_refused_and_login_goes_on(
    servers: Start, connect: Connect
) -> None:
    _, port = chat_server(servers)
    alice, other = connect(port), connect(port)
    alice.log_in("alice")
    other.expect(PROMPT)
    other.send("ALICE")
    other.expect("ERROR name taken: ALICE")
    other.send("bob")
    other.expect("Welcome bob! 2 users online: alice, bob")
    alice.expect("* bob joined")


def test_stopping_the_server_tells_every_connection_before_closing_it(
    servers: Start, connect: Connect
) -> None:
    server, port = chat_server(servers)
    alice, bob, carol = connect(port), connect(port), connect(port)
    alice.log_in("alice")
    bob.log_in("bob")
    alice.expect("* bob joined")
    carol.expect(PROMPT)
    # twistd re-raises the signal that stopped it, as a shell expects.
    assert server.stop() in (0, -signal.SIGINT)
    for user in (alice, bob, carol):
        assert user.rest() == ["* server shutting down"], user
    output = server.output()
    assert "Shutting down: telling 3 connections" in output
    assert "] alice left (server shutting down)" in output
    assert "] bob left (server shutting down)" in output
    assert "Cutting off" not in output
    assert "Traceback" not in output
    assert output.endswith("Server Shut Down.")


def test_a_session_over_tls(servers: Start, connect: Connect, tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path)
    server, port = chat_server(servers, "--port", tls_endpoint(certificate))
    server.wait_for(rf"labchat listening on TCP 127\.0\.0\.1:{port} \(TLS\)$")
    trusting = ssl.create_default_context(cafile=str(certificate.certificate))
    alice, bob = connect(port, tls=trusting), connect(port, tls=trusting)
    assert alice.log_in("alice") == "Welcome alice! 1 user online: alice"
    assert bob.log_in("bob") == "Welcome bob! 2 users online: alice, bob"
    alice.expect("* bob joined")
    alice.send("over TLS")
    for user in (alice, bob):
        user.expect("<alice> over TLS")
    server.wait_for(r"<alice> over TLS$")
