"""The docs' claims that no other test backs, each tried on real processes.

Grouped by page: docs/stateful.rst, docs/two-computers.rst, docs/labsuite.rst,
docs/wire.rst, docs/labchat.rst, and the README, whose commands are what a
newcomer copies first: each is run as shown (on free ports) and what it
prints and logs is compared with the README's lines. Each test names the page and line of the
claim it backs. Where a page shows output (a log, a trace), the test reads
the lines from the page itself, so that the page and the program cannot
drift apart. The claims already backed elsewhere (every ``$ printf ... | nc``
session by test_docs_examples.py, the trace format by test_trace*.py, ...)
are not repeated here.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import signal
import socket
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.certificates import make_certificate
from support.chat import PROMPT, ChatUser, Connect, chat_server
from support.netns import TwoHosts
from support.processes import (
    DEADLINE,
    LABPROTO,
    TWISTD,
    ServerProcess,
    child_environment,
    loopback_suite,
    poll_until,
    run_labproto,
    start_labproto,
    tcp_server,
)
from support.system import nc_lines, openbsd_nc
from support.system import ss as system_ss
from twisted.python import usage

from labproto.suite import tap as suite_tap

Start = Callable[..., ServerProcess]

DOCS = Path(__file__).resolve().parent.parent / "docs"
UDP_LISTENING = r"listening on UDP \S+:(\d+)$"
# A peer as every log line shows it.
PEER = re.compile(r"\('127\.0\.0\.1', \d+\)")
# twistd's time stamp before each log line: the pages leave it out.
STAMPED = re.compile(r"^\S+ (\[.*)$")
CALC_WELCOME = "Welcome to labcalc. What's your name?"
KNOCK_ERROR = 'ERROR you\'re supposed to say "Knock knock"'


def calc_hello(name: str) -> str:
    return f"Hello {name}! Send an expression like 12 + 42, or q to quit."


# Reading the pages.


def literal_block_after(page: str, marker: str) -> list[str]:
    """The literal block that follows the first line of page containing marker, dedented.

    The block starts after the next blank line and ends at the first line
    indented less than its own first line.
    """
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if marker in line)
    while lines[index].strip():
        index += 1
    while not lines[index].strip():
        index += 1
    indent = len(lines[index]) - len(lines[index].lstrip())
    block: list[str] = []
    for line in lines[index:]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        block.append(line[indent:])
    while block and not block[-1].strip():
        block.pop()
    return block


def block_from(page: str, first: str) -> list[str]:
    """The lines of page from the one that is first (stripped) up to a blank line, stripped."""
    lines = [line.strip() for line in (DOCS / page).read_text(encoding="utf-8").splitlines()]
    start = lines.index(first)
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def page_line(page: str, pattern: str) -> re.Match[str]:
    """The first match of pattern in a line of page."""
    for line in (DOCS / page).read_text(encoding="utf-8").splitlines():
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"{page} has no line matching {pattern!r}")


def log_text(line: str) -> str:
    """A twistd log line as the pages show it: without its time stamp."""
    match = STAMPED.match(line)
    return match.group(1) if match else line


def trace_texts(server: ServerProcess, service: str) -> list[str]:
    """The text of every trace line of service, from ``trace`` on."""
    found = (re.search(rf"(trace {service} .*)$", line) for line in server.lines)
    return [match.group(1) for match in found if match]


# Tools a test may lack.


def udp_server(servers: Start, plugin: str, *options: str) -> tuple[ServerProcess, int]:
    """Start a UDP service on a free port of 127.0.0.1; return it with the port it took."""
    if "--port" not in options:
        options = ("--port", "0", *options)
    if "--interface" not in options:
        options = (*options, "--interface", "127.0.0.1")
    server = servers(plugin, *options)
    return server, int(server.wait_for(UDP_LISTENING).group(1))


def ask_udp(sock: socket.socket, port: int, datagram: bytes) -> bytes:
    """Send datagram to port of 127.0.0.1 from sock, and return the answer."""
    sock.sendto(datagram, ("127.0.0.1", port))
    answer, sender = sock.recvfrom(65535)
    assert sender == ("127.0.0.1", port)
    return answer


def tcp_lines(port: int) -> tuple[socket.socket, Iterator[str]]:
    """A connection to port of 127.0.0.1, and its lines from the server as they come.

    Read with recv(), not makefile(): a file would keep the socket open after close().
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)

    def lines() -> Iterator[str]:
        buffer = b""
        while True:
            while b"\n" not in buffer:
                data = sock.recv(4096)
                if not data:
                    return
                buffer += data
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode("utf-8").rstrip("\r")

    return sock, lines()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed sock's connection: end of file, or a reset."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def ss_rows(ss: str, port: int) -> list[list[str]]:
    """``ss -tan 'sport = :PORT or dport = :PORT'``, the page's command: its rows, split."""
    result = subprocess.run(
        [ss, "-tan", f"sport = :{port} or dport = :{port}"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=True,
    )
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["State", "Recv-Q", "Send-Q"], header
    return [row.split() for row in rows]


def wait_for_rows(ss: str, port: int, done: Callable[[list[list[str]]], bool]) -> list[list[str]]:
    """ss's rows for port once done(rows) holds: the kernel moves a socket's state on its own."""

    def rows_once_done() -> list[list[str]] | None:
        rows = ss_rows(ss, port)
        return rows if done(rows) else None

    return poll_until(rows_once_done)


# docs/stateful.rst


def test_ss_shows_the_listening_socket_and_both_ends_of_a_connection(servers: Start) -> None:
    """stateful.rst:57-64: ``ss -tan`` shows a server LISTEN and both ends of a connection ESTAB."""
    ss = system_ss()
    _, port = tcp_server(servers, "labcalc")
    sock, lines = tcp_lines(port)
    with sock:
        assert next(lines) == CALC_WELCOME
        client = f"127.0.0.1:{sock.getsockname()[1]}"
        server = f"127.0.0.1:{port}"
        rows = ss_rows(ss, port)
        # Other programs' sockets may match the filter too (a port number is reused by the
        # kernel for connections elsewhere): the three of this server must be there.
        states = {(row[0], row[3], row[4]) for row in rows}
        assert states >= {
            ("LISTEN", server, "0.0.0.0:*"),
            ("ESTAB", server, client),
            ("ESTAB", client, server),
        }, rows
        # The page's Send-Q of the listening socket: its backlog, labproto's 1024, not Twisted's 50.
        [listening] = [row for row in rows if row[0] == "LISTEN" and row[3] == server]
        assert listening[2] == "1024", listening


def test_the_side_that_closes_first_keeps_the_connection_in_time_wait(
    servers: Start, connect: Connect
) -> None:
    """stateful.rst:53-54 and wire.rst:190-195: after /quit the server closes first (FIN), so
    its end of the connection, not the client's, waits in TIME-WAIT."""
    ss = system_ss()
    _, port = chat_server(servers)
    alice = connect(port)
    alice.log_in("alice")
    alice.send("/quit")
    assert alice.rest() == ["Bye alice!"]
    client_port = alice.sock.getsockname()[1]
    alice.sock.close()
    server, client = f"127.0.0.1:{port}", f"127.0.0.1:{client_port}"
    rows = wait_for_rows(
        ss, port, lambda rows: any(row[0] == "TIME-WAIT" and row[3] == server for row in rows)
    )
    waiting = [(row[3], row[4]) for row in rows if row[0] == "TIME-WAIT"]
    assert (server, client) in waiting, rows
    assert (client, server) not in waiting, rows


@pytest.mark.parametrize(
    ("plugin", "request_", "answer"),
    [
        ("udpecho", b"hello", re.compile(rb"Ok")),
        ("udptime", b"SEND_TIME 17", re.compile(rb"17 \d\d:\d\d:\d\d")),
    ],
)
def test_a_udp_server_restart_loses_nothing(
    servers: Start, tmp_path: Path, plugin: str, request_: bytes, answer: re.Pattern[bytes]
) -> None:
    """stateful.rst:98-99 and 119-120, udpecho.rst:37-38, udptime.rst:139-140: a client that
    sends again after the server restarted gets its answer, from the same socket; and
    stateful.rst:241-242: the server wrote nothing to disk (its working directory stays empty)."""
    first, port = udp_server(servers, plugin)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        client.settimeout(DEADLINE)
        assert answer.fullmatch(ask_udp(client, port, request_))
        assert first.stop() in (0, -signal.SIGINT)
        again, same_port = udp_server(servers, plugin, "--port", str(port))
        assert same_port == port
        assert answer.fullmatch(ask_udp(client, port, request_))
        assert again.stop() in (0, -signal.SIGINT)
    assert list(tmp_path.iterdir()) == []


def test_knockknock_connections_share_nothing_and_a_new_one_starts_at_knock(
    servers: Start,
) -> None:
    """stateful.rst:125-134 and 142-144: the same line gets another answer in another state;
    two tellers never see each other's jokes; a new connection starts at ``knock`` again."""
    _, port = tcp_server(servers, "knockknock")
    first, first_lines = tcp_lines(port)
    second, second_lines = tcp_lines(port)
    with first, second:
        first.sendall(b"Knock knock\n")
        assert next(first_lines) == "Who's there?"
        # The first teller is at the name turn; the second is still at knock.
        second.sendall(b"Lettuce\n")
        assert next(second_lines) == KNOCK_ERROR
        first.sendall(b"Lettuce\n")
        assert next(first_lines) == "Lettuce who?"
    third, third_lines = tcp_lines(port)
    with third:
        third.sendall(b"Lettuce\n")
        assert next(third_lines) == KNOCK_ERROR


def test_a_server_restart_closes_every_connection_and_ends_every_session(
    servers: Start,
) -> None:
    """stateful.rst:144-145 and 179-183: stopping the server closes every connection, and
    labcalc logs ``Session ended (gautamop)`` as for a dropped connection; after the
    restart a new connection is asked for a name again, and a joke starts at knock."""
    calc, calc_port = tcp_server(servers, "labcalc")
    knock, knock_port = tcp_server(servers, "knockknock")
    session, session_lines = tcp_lines(calc_port)
    joke, joke_lines = tcp_lines(knock_port)
    with session, joke:
        assert next(session_lines) == CALC_WELCOME
        session.sendall(b"gautamop\n")
        assert next(session_lines).startswith("Hello gautamop! ")
        joke.sendall(b"Knock knock\n")
        assert next(joke_lines) == "Who's there?"
        for server in (calc, knock):
            assert server.stop() in (0, -signal.SIGINT)
        assert closed_by_server(session)
        assert closed_by_server(joke)
    assert "Session ended (gautamop)" in [log_text(line).split("] ", 1)[-1] for line in calc.lines]

    tcp_server(servers, "labcalc", "--port", f"tcp:{calc_port}:interface=127.0.0.1")
    tcp_server(servers, "knockknock", "--port", f"tcp:{knock_port}:interface=127.0.0.1")
    session, session_lines = tcp_lines(calc_port)
    joke, joke_lines = tcp_lines(knock_port)
    with session, joke:
        assert next(session_lines) == CALC_WELCOME
        session.sendall(b"12 + 42\n")
        assert next(session_lines) == calc_hello("12 + 42")
        joke.sendall(b"Lettuce\n")
        assert next(joke_lines) == KNOCK_ERROR


def test_hello_is_a_name_at_login_and_a_message_in_the_room(
    servers: Start, connect: Connect
) -> None:
    """stateful.rst:192-194: the stage decides what a line is."""
    _, port = chat_server(servers)
    user = connect(port)
    assert user.log_in("hello") == "Welcome hello! 1 user online: hello"
    user.send("hello")
    user.expect("<hello> hello")


def test_the_room_keeps_no_history(servers: Start, connect: Connect) -> None:
    """stateful.rst:224: a user who joins sees only what is said after."""
    _, port = chat_server(servers)
    alice = connect(port)
    alice.log_in("alice")
    alice.send("said before bob came")
    alice.expect("<alice> said before bob came")
    bob = connect(port)
    assert bob.log_in("bob") == "Welcome bob! 2 users online: alice, bob"
    alice.expect("* bob joined")
    alice.send("said after")
    alice.expect("<alice> said after")
    bob.expect("<alice> said after")
    assert bob.lines == [PROMPT, "Welcome bob! 2 users online: alice, bob", "<alice> said after"]


def test_a_restarted_labchat_is_an_empty_room(servers: Start, connect: Connect) -> None:
    """stateful.rst:218-222: the server stops, every connection gets ``* server shutting
    down`` and is closed; started again, the room is empty and nothing said before is kept."""
    first, port = chat_server(servers)
    alice = connect(port)
    alice.log_in("alice")
    waiting = connect(port)
    waiting.expect(PROMPT)
    alice.send("remember me")
    alice.expect("<alice> remember me")
    assert first.stop() in (0, -signal.SIGINT)
    # Logged in or still at the prompt: the shutdown reaches both (stateful.rst:205-206).
    assert alice.rest() == ["* server shutting down"]
    assert waiting.rest() == ["* server shutting down"]

    chat_server(servers, "--port", f"tcp:{port}:interface=127.0.0.1")
    bob = connect(port)
    assert bob.log_in("bob") == "Welcome bob! 1 user online: bob"
    # alice's name is free again: nobody is in the new room.
    alice_again = connect(port)
    assert alice_again.log_in("alice") == "Welcome alice! 2 users online: alice, bob"
    bob.expect("* alice joined")
    bob.send("/who")
    bob.expect("2 users online: alice, bob")
    assert "<alice> remember me" not in bob.lines + alice_again.lines


# docs/two-computers.rst


def run_together(
    commands: dict[str, list[str]], inputs: dict[str, str] | None = None
) -> dict[str, tuple[int, str, str]]:
    """Run commands at once, each to its end, input piped in if given: their exit status,
    output and complaints."""
    inputs = inputs or {}
    started = {
        key: subprocess.Popen(
            argv,
            env=child_environment(),
            stdin=subprocess.PIPE if key in inputs else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for key, argv in commands.items()
    }
    results = {}
    try:
        for key, process in started.items():
            out, err = process.communicate(inputs.get(key), timeout=DEADLINE)
            results[key] = (process.returncode, out, err)
    finally:
        for process in started.values():
            process.kill()
            process.wait()
    return results


def test_nc_alone_reaches_every_service_from_the_other_computer(
    hosts: TwoHosts, remote_servers: Start
) -> None:
    """two-computers.rst:19-20 and 92-98: the page's own nc command lines, run on B against
    labsuite on A, each get their service's answer (chat and knockknock as on their pages)."""
    openbsd_nc()
    suite = remote_servers("labsuite")
    for port in range(43387, 43392):
        suite.wait_for(rf"listening on (TCP|UDP) 0\.0\.0\.0:{port}$")
    page = (DOCS / "two-computers.rst").read_text(encoding="utf-8")
    commands = re.findall(r"^ +(printf .* \| nc .*192\.0\.2\.10 \d+)$", page, re.MULTILINE)
    assert len(commands) == 3, commands
    expected = {
        "43391": [
            CALC_WELCOME,
            calc_hello("gautamop"),
            "54.0",
            "Session ended",
        ],
        "43387": ["Ok"],
        "43388": [r"\d\d:\d\d:\d\d"],
        # labchat.rst:261 and stateful.rst:129, from the other computer.
        "43389": [PROMPT, "Welcome alice! 1 user online: alice", "Bye alice!"],
        "43390": [KNOCK_ERROR, "Who's there?", "Lettuce who?"],
    }
    commands += [
        "printf 'alice\\n/quit\\n' | nc -N 192.0.2.10 43389",
        "printf 'Lettuce\\nKnock knock\\nLettuce\\n' | nc -N 192.0.2.10 43390",
    ]
    # All at once: each UDP one waits out its -w1.
    results = run_together(
        {
            command.rsplit(" ", 1)[1]: hosts.on_client(
                "bash", "-o", "pipefail", "-c", command.replace("192.0.2.10", "192.0.2.1")
            )
            for command in commands
        }
    )
    for port, (status, out, err) in results.items():
        assert (status, err) == (0, ""), (port, out, err)
        lines = [line.rstrip("\r") for line in out.splitlines()]
        assert len(lines) == len(expected[port]), (port, lines)
        for line, pattern in zip(lines, expected[port], strict=True):
            assert re.fullmatch(pattern if port == "43388" else re.escape(pattern), line), line
    # A's log shows B's address as the peer (two-computers.rst:100-102).
    suite.wait_for(r"Connection from \('192\.0\.2\.2', \d+\)$")
    suite.wait_for(r"alice joined from \('192\.0\.2\.2', \d+\)$")


def test_the_clients_say_in_one_line_why_the_other_computer_cannot_be_reached(
    hosts: TwoHosts,
) -> None:
    """two-computers.rst:107-116 and 128-130: with no server on A, each client says
    ``no server at A:PORT (connection refused)`` (TCP reset, or ICMP for UDP) with status 1,
    and ``nc -v`` says ``Connection refused``; an address B has no route to is
    ``cannot connect to ...``, with the network's own words."""
    nc = openbsd_nc()
    # A TCP client and a UDP one: the others share their ways of connecting (test_tcp_e2e.py
    # and test_udp_e2e.py try each on loopback).
    refused = {"chat": 43389, "echo": 43387}
    commands = {
        client: hosts.on_client(LABPROTO, client, "--host", "192.0.2.1", "--timeout", "10")
        for client in refused
    }
    commands["nc"] = hosts.on_client(nc, "-v", "192.0.2.1", "43389")
    # B has a route to 192.0.2.0/24 alone: 198.51.100.1 is on no network it knows.
    commands["nowhere"] = hosts.on_client(LABPROTO, "calc", "--host", "198.51.100.1")
    commands["nowhere by UDP"] = hosts.on_client(LABPROTO, "echo", "--host", "198.51.100.1")
    results = run_together(commands)
    for client, port in refused.items():
        assert results[client] == (
            1,
            "",
            f"no server at 192.0.2.1:{port} (connection refused)\n",
        ), client
    status, _, complaint = results["nc"]
    assert status == 1
    assert "nc: connect to 192.0.2.1 port 43389 (tcp) failed: Connection refused" in complaint
    assert results["nowhere"] == (
        1,
        "",
        "cannot connect to 198.51.100.1:43391: Network is unreachable\n",
    )
    # The page shows the TCP clients' words; the UDP clients say it their own way.
    assert results["nowhere by UDP"] == (
        1,
        "",
        "cannot reach 198.51.100.1:43387: Network is unreachable\n",
    )


def test_a_server_on_loopback_is_reachable_from_its_own_computer_alone(
    hosts: TwoHosts, remote_servers: Start
) -> None:
    """two-computers.rst:37-40: udpecho with ``--interface 127.0.0.1`` and labchat with
    ``--port tcp:43389:interface=127.0.0.1`` answer on A and refuse B."""
    echo = remote_servers("udpecho", "--interface", "127.0.0.1")
    chat = remote_servers("labchat", "--port", "tcp:43389:interface=127.0.0.1")
    echo.wait_for(r"udpecho listening on UDP 127\.0\.0\.1:43387$")
    chat.wait_for(r"labchat listening on TCP 127\.0\.0\.1:43389$")
    results = run_together(
        {
            "echo": hosts.on_client(LABPROTO, "echo", "--host", "192.0.2.1"),
            "chat": hosts.on_client(LABPROTO, "chat", "--host", "192.0.2.1"),
            "at home": hosts.on_server(LABPROTO, "echo", "--timeout", "10", "from A"),
        }
    )
    for client, port in (("echo", 43387), ("chat", 43389)):
        assert results[client] == (
            1,
            "",
            f"no server at 192.0.2.1:{port} (connection refused)\n",
        ), client
    assert results["at home"] == (
        0,
        "Client received MESSAGE= Ok from ADDR= ('127.0.0.1', 43387)\n",
        "",
    )


def test_a_udp_client_accepts_an_answer_only_from_the_address_it_asked() -> None:
    """two-computers.rst:132-134: answers from another address of the server's computer
    (127.0.0.2 for 127.0.0.1) are not taken: the client waits in vain; the same answer
    from the address it asked is taken. (labproto time opens its socket the same way,
    labproto.clients.udp.connect_udp.)"""
    with contextlib.ExitStack() as stack:
        asked = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        other = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        asked.bind(("127.0.0.1", 0))
        try:
            other.bind(("127.0.0.2", 0))
        except OSError as e:
            pytest.skip(f"no second loopback address 127.0.0.2 here: {e}")
        asked.settimeout(DEADLINE)
        port = asked.getsockname()[1]
        # In vain, a short wait and one resend; heard, a long wait, for a slow machine.
        for answerer, options, requests, status, out, err in (
            (other, ("--timeout", "0.1", "--retries", "1"), 2, 1, "",
             "no reply yet, retrying in 0.2 s (2/2)\n"
             f"no reply from 127.0.0.1:{port} after 2 tries\n"),
            (asked, ("--timeout", "10"), 1, 0,
             f"Client received MESSAGE= Ok from ADDR= ('127.0.0.1', {port})\n", ""),
        ):  # fmt: skip
            process = start_labproto(
                "echo", "--port", str(port), *options, stdin=subprocess.DEVNULL
            )
            try:
                for _ in range(requests):
                    _, sender = asked.recvfrom(65535)
                    answerer.sendto(b"Ok", sender)
                printed = process.communicate(timeout=DEADLINE)
            finally:
                process.kill()
                process.wait()
            assert (process.returncode, *printed) == (status, out, err)


# docs/labsuite.rst


def test_a_bad_port_is_a_usage_error_and_nothing_starts(tmp_path: Path) -> None:
    """labsuite.rst:231-234: the page's line, naming labsuite's own option (test_suite.py tries
    the other options' messages), status 1, and nothing listens."""
    result = subprocess.run(
        # -n as the page has it: twistd names itself by its first two words.
        [TWISTD, "-n", "--pidfile=", "labsuite", "--calc-port", "99999"],
        cwd=tmp_path,
        env=child_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    output = result.stdout + result.stderr
    # The page's line, with the twistd that was run (a path, when it was found on PATH).
    shown = page_line("labsuite.rst", r"twistd -n: --calc-port must be .*$").group(0)
    assert re.search(rf"^\S*{re.escape(shown)}$", output, re.MULTILINE), output
    assert result.returncode == 1
    assert "listening on" not in output


def test_a_taken_port_stops_the_suite_with_the_line_the_service_alone_writes(
    servers: Start,
) -> None:
    """labsuite.rst:236-239: the page's line (its port aside), the same from labcalc alone and
    from labsuite, and exit status 1 for both."""
    shown = page_line("labsuite.rst", r"Cannot listen on tcp:43391: .*$").group(0)
    with socket.socket() as taken:
        # Every interface, as the default port's tcp:N takes it.
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        alone = servers("labcalc", "--port", str(port))
        suite = servers(*loopback_suite(calc_port=str(port)))
        said = [server.wait_for(r"\] (Cannot listen on .*)$").group(1) for server in (alone, suite)]
        statuses = [server.process.wait(DEADLINE) for server in (alone, suite)]
    assert said == [shown.replace("43391", str(port))] * 2
    assert statuses == [1, 1]
    assert "Traceback" not in suite.output()


def parsed(*argv: str) -> suite_tap.Options:
    options = suite_tap.Options()
    options.parseOptions(list(argv))
    return options


def test_each_service_of_the_suite_keeps_its_own_defaults() -> None:
    """labsuite.rst:184-186 and 243-245: the services get the very options they get alone;
    the other options are not labsuite's, but each service's own (its --help lists them)."""
    suite = parsed()
    for part in suite_tap.PARTS:
        alone = part.tap.Options()
        alone.parseOptions([])
        assert dict(suite.service_options[part.name]) == dict(alone), part.name
    for not_labsuites in (["--max-line", "10"], ["--burst", "5"], ["--utc"]):
        with pytest.raises(usage.UsageError):
            parsed(*not_labsuites)
    [chat] = [part for part in suite_tap.PARTS if part.name == "labchat"]
    chat_help = str(chat.tap.Options())
    for option in ("--max-line", "--burst", "--rate", "--sendq", "--max-users"):
        assert option in chat_help


def test_a_tcp_port_option_takes_a_number_or_an_endpoint() -> None:
    """labsuite.rst:215-222: a number is a TCP port (0 any free one), or an endpoint."""
    options = parsed(
        "--chat-port", "0", "--calc-port", "5000", "--knock-port", "tcp6:43390", "--echo-port", "0"
    )
    ports = {name: opts["port"] for name, opts in options.service_options.items()}
    assert ports == {
        "udpecho": 0,
        "udptime": 43388,
        "labchat": "tcp:0",
        "knockknock": "tcp6:43390",
        "labcalc": "tcp:5000",
    }


def test_the_suite_serves_tls_on_an_ssl_port(servers: Start, tmp_path: Path) -> None:
    """labsuite.rst:218-222: ``--calc-port ssl:...:privateKey=key.pem:certKey=cert.pem``."""
    certificate = make_certificate(tmp_path)
    tls_port = f"ssl:0:interface=127.0.0.1:privateKey={certificate.key}"
    suite = servers(*loopback_suite(calc_port=f"{tls_port}:certKey={certificate.certificate}"))
    port = suite.wait_for(r"labcalc listening on TCP 127\.0\.0\.1:(\d+) \(TLS\)$").group(1)
    result = run_labproto(
        "calc", "--port", port, "--ca-file", str(certificate.certificate), "--name", "ada",
        input="6 * 7\n",
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "Result: 42.0\nSession Ended\n",
        "",
    )


def test_the_every_port_free_example_logs_the_ports_it_took(servers: Start) -> None:
    """labsuite.rst:201-210 and 257-261: the page's command as it is; each service logs the
    port it took on 0.0.0.0, where it answers on loopback too."""
    page = (DOCS / "labsuite.rst").read_text(encoding="utf-8")
    command = re.search(r"twistd -n labsuite (--echo-port 0 [^\n]*\\\n[^\n]*)", page)
    assert command is not None
    arguments = command.group(1).replace("\\\n", " ").split()
    assert arguments == [
        "--echo-port", "0", "--time-port", "0", "--chat-port", "0",
        "--knock-port", "0", "--calc-port", "0",
    ]  # fmt: skip
    suite = servers("labsuite", *arguments)
    port = {
        name: int(suite.wait_for(rf"\] {name} listening on (?:TCP|UDP) 0\.0\.0\.0:(\d+)$")[1])
        for name in ("udpecho", "udptime", "labchat", "knockknock", "labcalc")
    }
    assert 0 not in port.values() and len(set(port.values())) == 5, port
    results = run_together(
        {
            "echo": [LABPROTO, "echo", "--port", str(port["udpecho"]), "--timeout", "10"],
            "calc": [LABPROTO, "calc", "--port", str(port["labcalc"]), "--name", "ada"],
        },
        {"calc": "1 + 1\n"},
    )
    assert results["echo"] == (
        0,
        f"Client received MESSAGE= Ok from ADDR= ('127.0.0.1', {port['udpecho']})\n",
        "",
    )
    assert results["calc"] == (0, "Result: 2.0\nSession Ended\n", "")


def test_the_interface_option_of_the_suite_binds_the_udp_services_only(
    hosts: TwoHosts, remote_servers: Start
) -> None:
    """labsuite.rst:223-226: ``--interface`` is the UDP services' address; the TCP services
    keep theirs (every interface, unless their endpoint says otherwise)."""
    suite = remote_servers("labsuite", "--interface", "127.0.0.1")
    suite.wait_for(r"udpecho listening on UDP 127\.0\.0\.1:43387$")
    suite.wait_for(r"labcalc listening on TCP 0\.0\.0\.0:43391$")
    results = run_together(
        {
            "echo": hosts.on_client(LABPROTO, "echo", "--host", "192.0.2.1"),
            "calc": hosts.on_client(LABPROTO, "calc", "--host", "192.0.2.1", "--name", "b"),
        },
        {"calc": "1 + 2\n"},
    )
    assert results["echo"] == (1, "", "no server at 192.0.2.1:43387 (connection refused)\n")
    assert results["calc"] == (0, "Result: 3.0\nSession Ended\n", "")


# docs/wire.rst


def normalized(lines: list[str], ours: str, theirs: str) -> list[str]:
    """Lines with our peer written as the page's."""
    return [line.replace(ours, theirs) for line in lines]


def test_the_tcp_session_log_is_the_one_the_page_shows(servers: Start) -> None:
    """wire.rst:52-75: the whole log of a traced labcalc session, service lines between the
    trace lines, nc's three lines arriving as one chunk of 19 bytes, and no FIN traced."""
    openbsd_nc()
    shown = literal_block_after("wire.rst", "The server's log (without the time stamps")
    assert len(shown) == 11, shown
    page_peer = PEER.search(shown[0])
    assert page_peer is not None
    server, port = tcp_server(servers, "labcalc", "--trace")
    nc_lines(port, "gautamop\n12 + 42\nq\n")
    server.wait_for(r"Session ended \(gautamop\)$")
    logged = [log_text(line) for line in server.lines]
    start = next(i for i, line in enumerate(logged) if "trace labcalc" in line)
    peer = PEER.search(logged[start])
    assert peer is not None
    assert normalized(logged[start:], peer.group(0), page_peer.group(0)) == shown


def test_without_q_the_server_sees_the_fin_first_answers_and_closes(servers: Start) -> None:
    """wire.rst:76-84: the page's command, and the last three trace lines it shows."""
    openbsd_nc()
    shown = literal_block_after("wire.rst", "$ printf 'gautamop\\n7 / 2\\n' | nc -N")
    assert len(shown) == 3, shown
    page_peer = PEER.search(shown[0])
    assert page_peer is not None
    server, port = tcp_server(servers, "labcalc", "--trace")
    assert nc_lines(port, "gautamop\n7 / 2\n")[-1] == "3.5"
    server.wait_for(r"trace labcalc .* closed: ")
    traced = trace_texts(server, "labcalc")
    peer = PEER.search(traced[0])
    assert peer is not None
    assert normalized(traced[-3:], peer.group(0), page_peer.group(0)) == shown


def test_the_udp_exchange_log_is_the_one_the_page_shows(servers: Start) -> None:
    """wire.rst:91-102: a datagram in, the service's line, the answer out; no connected, no
    closed."""
    shown = literal_block_after("wire.rst", "The server's log::")
    assert len(shown) == 3, shown
    page_peer = PEER.search(shown[0])
    assert page_peer is not None
    server, port = udp_server(servers, "udpecho", "--trace")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        client.settimeout(DEADLINE)
        assert ask_udp(client, port, b"hello") == b"Ok"
        ours = str(client.getsockname())
    server.wait_for(r'trace udpecho .* out 2 bytes: "Ok"$')
    logged = [log_text(line) for line in server.lines]
    start = next(i for i, line in enumerate(logged) if "trace udpecho" in line)
    assert normalized(logged[start:], ours, page_peer.group(0)) == shown


def test_a_reset_connection_is_traced_with_another_reason(servers: Start) -> None:
    """wire.rst:38-40: ``closed: Connection was closed cleanly.`` after FINs, another
    sentence when the connection was reset."""
    server, port = tcp_server(servers, "labcalc", "--trace")
    sock, lines = tcp_lines(port)
    with sock:
        assert next(lines) == CALC_WELCOME
        # SO_LINGER with a zero timeout: close() sends a reset, not a FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    closed = server.wait_for(r"trace labcalc \S+ \d+\) closed: (.*)$").group(1)
    assert closed != "Connection was closed cleanly."
    assert closed.endswith(".") and len(closed.split()) > 3, closed
    assert not any("in FIN" in line for line in trace_texts(server, "labcalc"))


def test_over_tls_the_trace_shows_the_plaintext_the_page_shows(
    servers: Start, tmp_path: Path
) -> None:
    """wire.rst:261-297: the page's labproto calc command over TLS, and the trace lines it
    shows: labproto ends its lines with \\r\\n."""
    shown = literal_block_after("wire.rst", "reads and writes, after decryption")
    assert len(shown) == 4, shown
    page_peer = PEER.search(shown[0])
    assert page_peer is not None
    certificate = make_certificate(tmp_path)
    server, port = tcp_server(
        servers,
        "labcalc",
        "--port",
        f"ssl:0:interface=127.0.0.1:privateKey={certificate.key}:certKey={certificate.certificate}",
        "--trace",
    )
    result = run_labproto(
        "calc", "--port", str(port), "--ca-file", str(certificate.certificate),
        "--name", "gautamop", input="12 + 42\n",
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "Result: 54.0\nSession Ended\n",
        "",
    )
    server.wait_for(r"trace labcalc .* closed: ")
    traced = trace_texts(server, "labcalc")
    peer = PEER.search(traced[0])
    assert peer is not None
    traced = normalized(traced, peer.group(0), page_peer.group(0))
    start = traced.index(shown[0])
    assert traced[start : start + 4] == shown, traced


# docs/labchat.rst


def test_an_interactive_nc_session_shows_the_pages_lines(servers: Start) -> None:
    """labchat.rst:268-279: the page's transcript, each line typed after the server's."""
    nc = openbsd_nc()
    shown = block_from("labchat.rst", "$ nc 127.0.0.1 43389")[1:]
    typed = shown[1::2]
    assert typed == ["alice", "hello", "/quit"]
    _, port = chat_server(servers)
    ours, theirs = socket.socketpair()
    with ours:
        with theirs:
            process = subprocess.Popen(
                [nc, "127.0.0.1", str(port)], stdin=theirs.fileno(), stdout=theirs.fileno()
            )
        ours.settimeout(DEADLINE)
        try:
            user = ChatUser(ours)
            transcript = user.next_lines(1)
            for line in typed:
                transcript.append(line)
                user.send(line)
                transcript += user.next_lines(1)
            # nc stays until its input ends (Ctrl-D), even after the server has closed.
            ours.shutdown(socket.SHUT_WR)
            assert process.wait(DEADLINE) == 0
        finally:
            process.kill()
            process.wait()
    assert transcript == shown


# README.rst

README = DOCS.parent / "README.rst"
# The servers the README starts, each with the options that put it on a free
# port of 127.0.0.1 instead of its default one, which may be taken.
LOOPBACK_OPTIONS = {
    "udpecho": ("--port", "0", "--interface", "127.0.0.1"),
    "udptime": ("--port", "0", "--interface", "127.0.0.1"),
    "knockknock": ("--port", "tcp:0:interface=127.0.0.1"),
    "labcalc": ("--port", "tcp:0:interface=127.0.0.1"),
    "labchat": ("--port", "tcp:0:interface=127.0.0.1"),
}
# Where the service itself listens: not labchat's web page, which --web logs first.
TCP_OR_UDP_LISTENING = r"(?<! web) listening on (?:UDP|TCP) \S+:(\d+)$"


def readme_blocks() -> list[list[tuple[str, list[str]]]]:
    """The README's literal blocks that hold commands: each ``$ COMMAND`` with the lines after it.

    The lines shown after a command run up to a blank line or the next
    command: a server's log lines start with ``... `` (where the page
    leaves out the time stamp and the logger), a client's lines are as it
    prints them, and a session at a terminal shows the lines typed as well.
    """
    blocks: list[list[tuple[str, list[str]]]] = []
    block: list[tuple[str, list[str]]] | None = None
    after_blank = False
    for line in README.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text:
            after_blank = True
            continue
        if not line.startswith("    "):
            block = None
        elif line.startswith("    $ "):
            if block is None:
                block = []
                blocks.append(block)
            block.append((text[2:], []))
        elif block and not after_blank:
            block[-1][1].append(text)
        after_blank = False
    return blocks


def readme_servers() -> list[tuple[str, list[str]]]:
    """The README's ``$ twistd -n SERVICE`` commands that take no option, with their log lines."""
    return [
        (command.split()[2], [line.removeprefix("... ") for line in shown])
        for block in readme_blocks()
        for command, shown in block
        if re.fullmatch(r"twistd -n \w+", command)
    ]


# What varies between the README's lines and a test's: dates and times, addresses,
# the port of a peer or of a listening line. The open-file limits are the machine's.
VARYING = re.compile(
    r"(\d\d/\d\d/\d\d|\d\d:\d\d:\d\d|\d+\.\d+\.\d+\.\d+|(?<=', )\d+|(?<=:)\d+$)"
)
VARYING_FIGURES = re.compile(r"(\d+)")


def readme_pattern(shown: str) -> str:
    """A line the README shows, as a pattern: exact, but for what varies from run to run."""
    varying = VARYING_FIGURES if shown.startswith("Open file limit") else VARYING
    pieces = varying.split(shown)
    pattern = []
    for index, piece in enumerate(pieces):
        if index % 2 == 0:
            pattern.append(re.escape(piece))
        elif "/" in piece or piece.count(":") == 2:
            pattern.append(r"\d\d[/:]\d\d[/:]\d\d")
        elif "." in piece:
            pattern.append(r"[0-9.]+")
        else:
            pattern.append(r"\d+")
    return "".join(pattern)


def test_the_readme_servers_run_side_by_side_from_one_folder(tmp_path: Path) -> None:
    """README.rst: ``twistd -n udpecho``, then ``twistd -n udptime`` and the others, from one
    folder: each starts while the others run, and none leaves a twistd.pid there."""
    servers = [plugin for plugin, _ in readme_servers()]
    assert servers == ["udpecho", "udptime", "knockknock", "labcalc", "labchat"]
    started: list[ServerProcess] = []
    try:
        for plugin in servers:
            server = ServerProcess([TWISTD, "-n", plugin, *LOOPBACK_OPTIONS[plugin]], tmp_path)
            started.append(server)
            server.wait_for(TCP_OR_UDP_LISTENING)
        assert [server.process.poll() for server in started] == [None] * len(servers)
        assert not (tmp_path / "twistd.pid").exists()
    finally:
        for server in started:
            server.stop()


def readme_server_argv(command: str) -> list[str]:
    """A README server command, run on free ports of 127.0.0.1 rather than the default ones."""
    words = shlex.split(command)
    plugin = words[2]
    words = ["tcp:0:interface=127.0.0.1" if word.startswith("tcp:") else word for word in words]
    return [TWISTD, *words[1:], *LOOPBACK_OPTIONS[plugin]]


def readme_client_run(command: str, shown: list[str], port: int) -> tuple[list[str], list[str]]:
    """Run one of the README's ``labproto`` commands against port: the lines it printed, and
    those of the README it must print (a session at a terminal is run piped, with its typed
    lines as input, and shows only its own lines then)."""
    words = shlex.split(command)
    arguments = [words[1], "--port", str(port), *words[2:]]
    typed = ""
    expected = [line for line in shown if line != "..."]
    if words[1] == "time":
        arguments += ["--count", str(len(expected)), "--min-delay", "0", "--max-delay", "0"]
    elif words[1] == "calc":
        typed = "".join(f"{line}\n" for line in shown[1::2])
        expected = [line for line in shown[4::2]]
    elif words[1] == "chat":
        # The terminal session shows a room of two; its own part is alice's hello.
        arguments = ["chat", "--port", str(port), "--name", "alice"]
        typed, expected = "hello\n", [line for line in shown if line.startswith("<alice>")]
    result = run_labproto(*arguments, input=typed)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    if words[1] == "chat":
        printed = [line for line in printed if line.startswith("<alice>")]
    return printed, expected


@pytest.mark.parametrize(
    "block", [block for block in readme_blocks() if block[0][0].startswith("twistd -n ")],
    ids=lambda block: block[0][0],
)
def test_the_readme_sessions_print_and_log_the_lines_the_readme_shows(
    block: list[tuple[str, list[str]]], tmp_path: Path
) -> None:
    """README.rst: each server's block, its server started as shown and its clients run: each
    client prints the lines shown after it, and the server logs each ``...`` line shown."""
    (server_command, logged), *clients = block
    server = ServerProcess(readme_server_argv(server_command), tmp_path)
    try:
        port = int(server.wait_for(TCP_OR_UDP_LISTENING).group(1))
        for command, shown in clients:
            printed, expected = readme_client_run(command, shown, port)
            if not shown:
                continue  # The README shows no output: the command need only work.
            assert len(printed) == len(expected), (command, printed, expected)
            for line, want in zip(printed, expected, strict=True):
                assert re.fullmatch(readme_pattern(want), line), (command, line, want)
        for line in logged:
            server.wait_for(rf"\] {readme_pattern(line.removeprefix('... '))}$")
    finally:
        server.stop()


def test_the_readme_wrong_service_line_is_what_the_client_says(servers: Start) -> None:
    """README.rst: ``labproto chat --port 43391`` at labcalc's port, and the line it prints."""
    (command, shown), = next(
        block for block in readme_blocks() if block[0][0] == "labproto chat --port 43391"
    )
    _, port = tcp_server(servers, "labcalc")
    result = run_labproto("chat", "--port", str(port), input="")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [line.replace("43391", str(port)) for line in shown]


def test_the_readme_docs_build_builds_the_docs_alone_and_says_where() -> None:
    """README.rst and docs/index.rst: ``bash docs/build.sh`` builds the HTML and names its page."""
    command = "bash docs/build.sh"
    assert command in README.read_text(encoding="utf-8")
    assert f"``{command}``" in (DOCS / "index.rst").read_text(encoding="utf-8")
    result = subprocess.run(
        shlex.split(command),
        cwd=DOCS.parent,
        env=child_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    page = DOCS.parent / "build" / "docs" / "index.html"
    assert result.stdout == f"docs built: open {page}\n"
    assert page.is_file()
