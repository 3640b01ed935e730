"""--trace on real twistd processes: the exact trace lines of each server's conversations."""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from support.certificates import make_certificate, tls_endpoint
from support.chat import PROMPT, Connect, chat_server
from support.processes import DEADLINE, ServerProcess, run_labproto, tcp_server
from support.system import nc_lines

Start = Callable[..., ServerProcess]
UDP_LISTENING = r"listening on UDP \S+:(\d+)$"
CLOSED = re.escape("closed: Connection was closed cleanly.")
# A trace line as twistd prints it: its text, and in it the peer.
TRACE = r"\[labproto\.trace#info\] (trace {service} (\('127\.0\.0\.1', \d+\)) .*)$"


def traces(server: ServerProcess, service: str, last: str) -> list[str]:
    """Every trace line of service, once one ends as the pattern last says, each peer as PEER.

    All must be of one peer: each test here makes one connection, or
    sends from one socket.
    """
    server.wait_for(TRACE.format(service=service)[:-1] + last + "$")
    pattern = re.compile(TRACE.format(service=service))
    matches = [m for line in server.lines if (m := pattern.search(line))]
    assert len({m.group(2) for m in matches}) == 1, [m.group(1) for m in matches]
    return [m.group(1).replace(m.group(2), "PEER", 1) for m in matches]


def udp_server(servers: Start, plugin: str, *options: str) -> tuple[ServerProcess, int]:
    server = servers(plugin, "--port", "0", *options)
    return server, int(server.wait_for(UDP_LISTENING).group(1))





def test_knockknock_traces_a_whole_joke(servers: Start) -> None:
    server, port = tcp_server(servers, "knockknock", "--trace")
    result = run_labproto(
        "knock", "--port", str(port), "--joke", "Lettuce", "Lettuce in, it's cold out here!"
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert traces(server, "knockknock", CLOSED) == [
        "trace knockknock PEER connected",
        'trace knockknock PEER in 15 bytes: "Knock knock..\\r\\n"',
        "trace knockknock PEER out 14 bytes: \"Who's there?\\r\\n\"",
        'trace knockknock PEER in 9 bytes: "Lettuce\\r\\n"',
        'trace knockknock PEER out 14 bytes: "Lettuce who?\\r\\n"',
        "trace knockknock PEER in 33 bytes: \"Lettuce in, it's cold out here!\\r\\n\"",
        'trace knockknock PEER out 21 bytes: "Ha ha! Knock again?\\r\\n"',
        "trace knockknock PEER in FIN (the peer will send nothing more)",
        "trace knockknock PEER closed: Connection was closed cleanly.",
    ]
    # The service's own log is still there.
    server.wait_for(r"SERVER RECEIVED: Lettuce in, it's cold out here!$")


def test_labcalc_traces_a_client_session(servers: Start) -> None:
    server, port = tcp_server(servers, "labcalc", "--trace")
    result = run_labproto("calc", "--port", str(port), "--name", "bob", input="4.5 / -6\n")
    assert (result.returncode, result.stdout) == (0, "Result: -0.75\nSession Ended\n")
    assert traces(server, "labcalc", CLOSED) == [
        "trace labcalc PEER connected",
        "trace labcalc PEER out 39 bytes: \"Welcome to labcalc. What's your name?\\r\\n\"",
        'trace labcalc PEER in 5 bytes: "bob\\r\\n"',
        'trace labcalc PEER out 59 bytes: "Hello bob! Send an expression like 12 + 42, '
        'or q to quit.\\r\\n"',
        'trace labcalc PEER in 10 bytes: "4.5 / -6\\r\\n"',
        'trace labcalc PEER out 7 bytes: "-0.75\\r\\n"',
        'trace labcalc PEER in 3 bytes: "q\\r\\n"',
        'trace labcalc PEER out 15 bytes: "Session ended\\r\\n"',
        "trace labcalc PEER closed: Connection was closed cleanly.",
    ]
    server.wait_for(r"Session ended \(bob\)$")


def test_a_half_closed_labcalc_connection_gets_every_answer_and_traces_the_fin(
    servers: Start,
) -> None:
    server, port = tcp_server(servers, "labcalc", "--trace")
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        sock.sendall(b"gautamop\n12 + 42\n")
        sock.shutdown(socket.SHUT_WR)
        with sock.makefile("rb") as reader:
            answers = reader.read()
    assert answers == (
        b"Welcome to labcalc. What's your name?\r\n"
        b"Hello gautamop! Send an expression like 12 + 42, or q to quit.\r\n"
        b"54.0\r\n"
    )
    assert traces(server, "labcalc", CLOSED) == [
        "trace labcalc PEER connected",
        "trace labcalc PEER out 39 bytes: \"Welcome to labcalc. What's your name?\\r\\n\"",
        'trace labcalc PEER in 17 bytes: "gautamop\\n12 + 42\\n"',
        'trace labcalc PEER out 64 bytes: "Hello gautamop! Send an expression like 12 + 42, '
        'or q to quit.\\r\\n"',
        'trace labcalc PEER out 6 bytes: "54.0\\r\\n"',
        "trace labcalc PEER in FIN (the peer will send nothing more)",
        "trace labcalc PEER closed: Connection was closed cleanly.",
    ]


@pytest.mark.parametrize(
    ("typed", "answers"),
    [
        ("gautamop\n12 + 42\nq\n", ["54.0", "Session ended"]),
        ("gautamop\n12 + 42\n", ["54.0"]),
    ],
)
def test_nc_N_gets_every_answer_from_a_traced_labcalc(
    servers: Start, typed: str, answers: list[str]
) -> None:
    server, port = tcp_server(servers, "labcalc", "--trace")
    assert nc_lines(port, typed) == [
        "Welcome to labcalc. What's your name?",
        "Hello gautamop! Send an expression like 12 + 42, or q to quit.",
        *answers,
    ]
    traced = traces(server, "labcalc", CLOSED)
    shown_in = typed.replace("\n", "\\n")
    assert f'trace labcalc PEER in {len(typed)} bytes: "{shown_in}"' in traced


def test_labchat_traces_a_session(servers: Start, connect: Connect) -> None:
    server, port = chat_server(servers, "--trace")
    alice = connect(port)
    alice.log_in("alice")
    alice.send("hello, lab")
    alice.expect("<alice> hello, lab")
    alice.send("/quit")
    assert alice.rest() == ["Bye alice!"]
    assert traces(server, "labchat", CLOSED) == [
        "trace labchat PEER connected",
        f'trace labchat PEER out 45 bytes: "{PROMPT}\\r\\n"',
        'trace labchat PEER in 6 bytes: "alice\\n"',
        'trace labchat PEER out 37 bytes: "Welcome alice! 1 user online: alice\\r\\n"',
        'trace labchat PEER in 11 bytes: "hello, lab\\n"',
        'trace labchat PEER out 20 bytes: "<alice> hello, lab\\r\\n"',
        'trace labchat PEER in 6 bytes: "/quit\\n"',
        'trace labchat PEER out 12 bytes: "Bye alice!\\r\\n"',
        "trace labchat PEER closed: Connection was closed cleanly.",
    ]


def test_over_tls_the_trace_shows_the_plaintext(
    servers: Start, connect: Connect, tmp_path: Path
) -> None:
    certificate = make_certificate(tmp_path)
    server, port = chat_server(servers, "--port", tls_endpoint(certificate), "--trace")
    trusting = ssl.create_default_context(cafile=str(certificate.certificate))
    alice = connect(port, tls=trusting)
    alice.log_in("alice")
    alice.send("over TLS")
    alice.expect("<alice> over TLS")
    alice.send("/quit")
    assert alice.rest() == ["Bye alice!"]
    # The server's close_notify came with the end; the client's own ends the TLS session.
    assert isinstance(alice.sock, ssl.SSLSocket)
    alice.sock = alice.sock.unwrap()
    traced = traces(server, "labchat", CLOSED)
    # What the service read and wrote, not the TLS records that carried it.
    assert traced == [
        "trace labchat PEER connected",
        f'trace labchat PEER out 45 bytes: "{PROMPT}\\r\\n"',
        'trace labchat PEER in 6 bytes: "alice\\n"',
        'trace labchat PEER out 37 bytes: "Welcome alice! 1 user online: alice\\r\\n"',
        'trace labchat PEER in 9 bytes: "over TLS\\n"',
        'trace labchat PEER out 18 bytes: "<alice> over TLS\\r\\n"',
        'trace labchat PEER in 6 bytes: "/quit\\n"',
        'trace labchat PEER out 12 bytes: "Bye alice!\\r\\n"',
        "trace labchat PEER closed: Connection was closed cleanly.",
    ]


def test_udpecho_traces_each_datagram_in_and_out(servers: Start) -> None:
    server, port = udp_server(servers, "udpecho", "--trace")
    result = run_labproto("echo", "--port", str(port), "--timeout", "10", "héllo")
    assert (result.returncode, result.stderr) == (0, "")
    assert traces(server, "udpecho", 'out 2 bytes: "Ok"') == [
        'trace udpecho PEER in 6 bytes: "héllo"',
        'trace udpecho PEER out 2 bytes: "Ok"',
    ]
    server.wait_for(r"Server received MESSAGE= héllo from ADDR= ")


def test_udptime_traces_the_padded_request_and_the_answer(servers: Start) -> None:
    server, port = udp_server(
        servers, "udptime", "--trace", "--date-format", "D", "--time-format", "T"
    )
    result = run_labproto("time", "--port", str(port), "--count", "1", "--timeout", "10")
    assert (result.returncode, result.stderr) == (0, "")
    [request, answer] = traces(server, "udptime", 'out 3 bytes: "1 [DT]"')
    command = re.fullmatch(r'trace udptime PEER in 64 bytes: "(SEND_DATE|SEND_TIME) 1 +"', request)
    assert command is not None, request
    # The client pads its request with spaces to 64 bytes; all of them are shown.
    assert request.endswith(" " * (64 - len(command.group(1)) - 2) + '"')
    assert answer == f'trace udptime PEER out 3 bytes: "1 {command.group(1)[5]}"'


def test_without_trace_nothing_is_traced(servers: Start) -> None:
    server, port = udp_server(servers, "udpecho")
    assert run_labproto("echo", "--port", str(port), "--timeout", "10", "hi").returncode == 0
    server.wait_for(r"Server received MESSAGE= hi from ADDR= ")
    assert "trace udpecho" not in server.output()
