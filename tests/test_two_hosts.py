"""The lab "on two computers": servers and clients in two network namespaces joined by a link.

The server computer (192.0.2.1) runs each service as a real ``twistd -n``
process on its default port, listening on every interface as a lab's
server does; the client computer (192.0.2.2) runs the real ``labproto``
clients with ``--host 192.0.2.1``. Each test checks what the user sees
(the client's output and exit status) and that the server saw the client
come from the other computer's address. Namespaces need root: elsewhere
these tests skip and say why.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
from collections.abc import Callable, Iterator

from support.chat import PROMPT, ChatUser
from support.netns import TwoHosts
from support.processes import DEADLINE, ServerProcess, start_labproto
from support.system import openbsd_nc

Start = Callable[..., ServerProcess]

SERVER = re.escape("192.0.2.1")
# How each service shows a peer of the client computer in its log.
FROM_CLIENT = r"\('192\.0\.2\.2', \d+\)"
JOKE = ("Lettuce", "Lettuce in, it's cold out here!")


@contextlib.contextmanager
def nc_user(argv: list[str]) -> Iterator[ChatUser]:
    """A chat user typing through ``nc``: the test holds the other end of nc's stdin and stdout.

    nc's input and output are one end of a socket pair, so the test reads
    and writes it like any socket (support.chat.ChatUser), with deadlines.
    Closing it is nc's end of input: -N passes that on to the server.
    """
    ours, theirs = socket.socketpair()
    with ours:
        with theirs:
            process = subprocess.Popen(argv, stdin=theirs.fileno(), stdout=theirs.fileno())
        ours.settimeout(DEADLINE)
        try:
            yield ChatUser(ours)
        finally:
            ours.shutdown(socket.SHUT_WR)
            try:
                process.wait(DEADLINE)
            finally:
                process.kill()
                process.wait()


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    """The standard output of a client that must have ended with status 0 and no complaint."""
    assert (result.returncode, result.stderr) == (0, ""), result
    return result.stdout


def test_udpecho_answers_the_other_computer(hosts: TwoHosts, remote_servers: Start) -> None:
    server = remote_servers("udpecho")
    server.wait_for(r"udpecho listening on UDP 0\.0\.0\.0:43387$")
    result = hosts.run_labproto(
        "echo", "--host", "192.0.2.1", "--timeout", "10", "hello from the client computer"
    )
    assert succeeded(result) == "Client received MESSAGE= Ok from ADDR= ('192.0.2.1', 43387)\n"
    server.wait_for(
        rf"Server received MESSAGE= hello from the client computer from ADDR= {FROM_CLIENT}$"
    )
    # The client computer's own loopback is its own: no server there.
    alone = hosts.run_labproto("echo", "--timeout", "10")
    assert (alone.returncode, alone.stderr) == (
        1,
        "no server at 127.0.0.1:43387 (connection refused)\n",
    )


def test_udptime_answers_the_other_computer(hosts: TwoHosts, remote_servers: Start) -> None:
    server = remote_servers("udptime")
    server.wait_for(r"udptime listening on UDP 0\.0\.0\.0:43388$")
    result = hosts.run_labproto(
        "time",
        "--host",
        "192.0.2.1",
        "--count",
        "2",
        "--min-delay",
        "0",
        "--max-delay",
        "0",
        "--timeout",
        "10",
    )
    lines = succeeded(result).splitlines()
    assert len(lines) == 2
    for line in lines:
        assert re.fullmatch(
            r"Client received MESSAGE = (\d\d/\d\d/\d\d|\d\d:\d\d:\d\d) "
            r"from ADDR = \('192\.0\.2\.1', 43388\)",
            line,
        ), line
    server.wait_for(rf'Request "SEND_(DATE|TIME) \d+" \(64 bytes\) from {FROM_CLIENT}: answered ')


def test_knockknock_hears_a_joke_from_the_other_computer(
    hosts: TwoHosts, remote_servers: Start
) -> None:
    server = remote_servers("knockknock")
    server.wait_for(r"knockknock listening on TCP 0\.0\.0\.0:43390$")
    result = hosts.run_labproto("knock", "--host", "192.0.2.1", "--joke", *JOKE)
    assert succeeded(result) == (
        "CLIENT RECEIVED: Who's there?\n"
        "CLIENT RECEIVED: Lettuce who?\n"
        "CLIENT RECEIVED: Ha ha! Knock again?\n"
    )
    server.wait_for(rf"Connection initiated from {FROM_CLIENT}$")
    server.wait_for(r"SERVER RECEIVED: Lettuce in, it's cold out here!$")
    server.wait_for(rf"Connection closed from {FROM_CLIENT}$")


def test_labcalc_computes_for_the_other_computer(hosts: TwoHosts, remote_servers: Start) -> None:
    server = remote_servers("labcalc")
    server.wait_for(r"labcalc listening on TCP 0\.0\.0\.0:43391$")
    result = hosts.run_labproto(
        "calc", "--host", "192.0.2.1", "--name", "gautam", input="12 + 42\nq\n"
    )
    assert succeeded(result) == "Result: 54.0\nSession Ended\n"
    server.wait_for(rf"Connection from {FROM_CLIENT}$")
    server.wait_for(rf"{FROM_CLIENT} is gautam$")
    server.wait_for(r"gautam: 12 \+ 42 = 54\.0$")


def test_labchat_joins_a_user_of_each_computer(hosts: TwoHosts, remote_servers: Start) -> None:
    openbsd_nc()
    server = remote_servers("labchat")
    server.wait_for(r"labchat listening on TCP 0\.0\.0\.0:43389$")
    # bob sits at the server computer itself, with nc on its loopback.
    with nc_user(hosts.on_server("nc", "-N", "127.0.0.1", "43389")) as bob:
        bob.log_in("bob")
        server.wait_for(r"\] bob joined from \('127\.0\.0\.1', \d+\)$")
        # alice types at the client computer; her input stays open until bob has spoken.
        alice = start_labproto(
            "chat", "--host", "192.0.2.1", "--name", "alice", where=hosts.on_client
        )
        try:
            out, err = talk(alice, bob)
        finally:
            alice.kill()
            alice.wait()
        assert (alice.returncode, err) == (0, "")
        assert out == (
            f"{PROMPT}\n"
            "Welcome alice! 2 users online: alice, bob\n"
            "<alice> hello bob, from the other computer\n"
            "<bob> hello alice\n"
            "Bye alice!\n"
        )
        assert bob.lines_through("* alice left (quit)") == ["* alice left (quit)"]
    server.wait_for(rf"\] alice joined from {FROM_CLIENT}$")
    server.wait_for(r"\] <alice> hello bob, from the other computer$")
    server.wait_for(r"\] <bob> hello alice$")


def talk(alice: subprocess.Popen[str], bob: ChatUser) -> tuple[str, str]:
    """alice says hello, bob answers, alice's input ends: her output and complaints."""
    assert alice.stdin is not None
    alice.stdin.write("hello bob, from the other computer\n")
    alice.stdin.flush()
    assert bob.lines_through("<alice> hello bob, from the other computer") == [
        "* alice joined",
        "<alice> hello bob, from the other computer",
    ]
    bob.send("hello alice")
    # The room sends bob's line to alice before it echoes it to bob, and
    # before it reads alice's /quit: it is in her output before her Bye.
    bob.expect("<bob> hello alice")
    # communicate() closes her input: the end of input makes her quit.
    return alice.communicate(timeout=DEADLINE)


def test_labsuite_serves_all_five_to_the_other_computer(
    hosts: TwoHosts, remote_servers: Start
) -> None:
    suite = remote_servers("labsuite")
    for listening in (
        r"udpecho listening on UDP 0\.0\.0\.0:43387",
        r"udptime listening on UDP 0\.0\.0\.0:43388",
        r"labchat listening on TCP 0\.0\.0\.0:43389",
        r"knockknock listening on TCP 0\.0\.0\.0:43390",
        r"labcalc listening on TCP 0\.0\.0\.0:43391",
    ):
        suite.wait_for(listening + "$")
    there = ("--host", "192.0.2.1")

    echoed = hosts.run_labproto("echo", *there, "--timeout", "10", "suite echo")
    assert succeeded(echoed) == "Client received MESSAGE= Ok from ADDR= ('192.0.2.1', 43387)\n"
    suite.wait_for(rf"Server received MESSAGE= suite echo from ADDR= {FROM_CLIENT}$")

    timed = hosts.run_labproto("time", *there, "--count", "1", "--timeout", "10")
    assert re.fullmatch(
        r"Client received MESSAGE = \S+ from ADDR = \('192\.0\.2\.1', 43388\)\n", succeeded(timed)
    )
    suite.wait_for(rf"\(64 bytes\) from {FROM_CLIENT}: answered ")

    knocked = hosts.run_labproto("knock", *there, "--joke", *JOKE)
    assert succeeded(knocked).endswith("CLIENT RECEIVED: Ha ha! Knock again?\n")
    suite.wait_for(rf"Connection initiated from {FROM_CLIENT}$")

    calculated = hosts.run_labproto("calc", *there, "--name", "gautam", input="6 * 7\nq\n")
    assert succeeded(calculated) == "Result: 42.0\nSession Ended\n"
    suite.wait_for(rf"{FROM_CLIENT} is gautam$")

    chatted = hosts.run_labproto("chat", *there, "--name", "alice", input="suite chat\n")
    assert succeeded(chatted) == (
        f"{PROMPT}\nWelcome alice! 1 user online: alice\n<alice> suite chat\nBye alice!\n"
    )
    suite.wait_for(rf"\] alice joined from {FROM_CLIENT}$")
