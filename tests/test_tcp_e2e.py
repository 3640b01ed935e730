"""knockknock and labcalc as real twistd processes, driven by the real labproto clients."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.certificates import CertificateFiles, make_certificate, tls_endpoint
from support.processes import (
    DEADLINE,
    LABPROTO,
    ServerProcess,
    child_environment,
    resident_mib,
    run_labproto,
    start_labproto,
    tcp_server,
)

Start = Callable[..., ServerProcess]


@pytest.fixture
def closed_tcp_port() -> Iterator[int]:
    """A TCP port held by a socket that does not listen: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def certificate(tmp_path: Path) -> CertificateFiles:
    """A self-signed certificate for 127.0.0.1, made for this test."""
    return make_certificate(tmp_path)


class PlayedServer:
    """A labcalc server played by the test, line by line, with a real calc client connected."""

    def __init__(self, connection: socket.socket, client: subprocess.Popen[str], port: int):
        self.connection = connection
        self.reader = connection.makefile("rb")
        self.client = client
        self.where = f"127.0.0.1:{port}"

    def greet(self, name: bytes) -> None:
        """Play the server's part of the login, up to the greeting."""
        self.connection.sendall(b"Welcome to labcalc. What's your name?\r\n")
        assert self.reader.readline() == name + b"\r\n"
        self.connection.sendall(
            b"Hello " + name + b"! Send an expression like 12 + 42, or q to quit.\r\n"
        )

    def hang_up(self) -> None:
        """Close the connection, as a server that goes away does."""
        self.reader.close()  # The socket stays open while its file object does.
        self.connection.close()

    def client_result(self) -> tuple[int, str, str]:
        """The client's exit status and output, once it has ended by itself."""
        try:
            status = self.client.wait(DEADLINE)
        finally:
            self.client.kill()
        assert self.client.stdout is not None and self.client.stderr is not None
        return status, self.client.stdout.read(), self.client.stderr.read()


@pytest.fixture
def played_server() -> Iterator[Callable[..., PlayedServer]]:
    """Start labproto calc with arguments against a server that the test plays itself."""
    played: list[PlayedServer] = []

    def start(*arguments: str) -> PlayedServer:
        listener = socket.socket()
        with listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.settimeout(DEADLINE)
            port = listener.getsockname()[1]
            client = start_labproto("calc", "--port", str(port), *arguments)
            connection, _ = listener.accept()
        played.append(PlayedServer(connection, client, port))
        return played[-1]

    yield start
    for server in played:
        server.hang_up()
        server.client.kill()
        server.client.wait()
        for pipe in (server.client.stdin, server.client.stdout, server.client.stderr):
            if pipe is not None:
                pipe.close()


def test_knock_client_prints_the_servers_answer_as_the_lab_template_does(
    servers: Start,
) -> None:
    server, port = tcp_server(servers, "knockknock")
    result = run_labproto("knock", "--port", str(port))
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "CLIENT RECEIVED: Who's there?\n",
        "",
    )
    server.wait_for(r"Connection initiated from \('127\.0\.0\.1', \d+\)$")
    server.wait_for(r"SERVER RECEIVED: Knock knock\.\.$")


def test_knock_client_tells_a_whole_joke(servers: Start) -> None:
    server, port = tcp_server(servers, "knockknock")
    result = run_labproto(
        "knock", "--port", str(port), "--joke", "Lettuce", "Lettuce in, it's cold out here!"
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "CLIENT RECEIVED: Who's there?\n"
        "CLIENT RECEIVED: Lettuce who?\n"
        "CLIENT RECEIVED: Ha ha! Knock again?\n"
    )
    server.wait_for(r"SERVER RECEIVED: Lettuce in, it's cold out here!$")


def test_calc_client_runs_a_piped_session_and_the_server_logs_it_by_name(
    servers: Start,
) -> None:
    server, port = tcp_server(servers, "labcalc")
    session = "gautamop\n15 + 35\n1 / 0\n12 +\n\n0.1 + 0.2\r\n1e308 * 10\nq\n99 + 1\n"
    result = run_labproto("calc", "--port", str(port), input=session)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "Result: 50.0\n"
        "Result: ERROR division by zero\n"
        "Result: 0.3\n"
        "Result: ERROR result out of range\n"
        "Session Ended\n"
    )
    assert result.stderr == "not sent: 12 +: expected NUMBER OP NUMBER, e.g. 12 + 42\n"
    server.wait_for(r"gautamop: 15 \+ 35 = 50\.0$")
    server.wait_for(r"gautamop: 1e308 \* 10 = ERROR result out of range$")
    server.wait_for(r"Session ended \(gautamop\)$")
    assert "99 + 1" not in server.output()


def test_calc_client_ends_the_session_when_its_input_ends(servers: Start) -> None:
    server, port = tcp_server(servers, "labcalc")
    result = run_labproto("calc", "--port", str(port), "--name", "bob", input="4.5 / -6\n")
    assert (result.returncode, result.stdout) == (0, "Result: -0.75\nSession Ended\n")
    server.wait_for(r"bob: 4\.5 / -6 = -0\.75$")
    server.wait_for(r"Session ended \(bob\)$")


def test_calc_client_with_standard_input_closed_has_no_input(servers: Start) -> None:
    _, port = tcp_server(servers, "labcalc")
    result = subprocess.run(
        ["bash", "-c", f'exec "$0" calc --port {port} --name hal <&-', LABPROTO],
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "Session Ended\n", "")


def test_calc_server_logs_the_end_of_a_session_whose_client_vanished(servers: Start) -> None:
    server, port = tcp_server(servers, "labcalc")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock,
        sock.makefile("rb") as reader,
    ):
        sock.sendall(b"carol\r\n12 + 42\r\n")
        assert reader.readline() == b"Welcome to labcalc. What's your name?\r\n"
        assert reader.readline() == (
            b"Hello carol! Send an expression like 12 + 42, or q to quit.\r\n"
        )
        assert reader.readline() == b"54.0\r\n"
        sock.sendall(b"3.24 - 4")  # and gone, mid-line
    server.wait_for(r"Session ended \(carol\)$")
    assert "3.24" not in server.output()


def test_a_10_megabyte_line_is_refused_and_the_session_goes_on(servers: Start) -> None:
    server, port = tcp_server(servers, "labcalc")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock,
        sock.makefile("rb") as reader,
    ):
        sock.sendall(b"dave\n")
        reader.readline(), reader.readline()
        sock.sendall(b"7" * 10_000_000 + b"\n15 + 35\n")
        assert reader.readline() == b"ERROR line too long (max 1024 bytes)\r\n"
        assert reader.readline() == b"50.0\r\n"
    server.wait_for(r"Session ended \(dave\)$")


def test_a_peer_that_sends_and_never_reads_cannot_grow_the_server(servers: Start) -> None:
    # Each joke told earns answers as long as itself: a server that read on
    # while its answers could not be sent would hold all of them.
    server, port = tcp_server(servers, "knockknock")
    before = resident_mib(server.process.pid)
    joke = b"Knock knock\n" + b"x" * 1000 + b"\npunchline\n"
    jokes = joke * (65536 // len(joke))
    sent = 0
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        while sent < 50_000_000:
            # A second without room to send: the server has stopped reading.
            _, writable, _ = select.select([], [sock], [], 1.0)
            if not writable:
                break
            try:
                sent += sock.send(jokes)
            except BlockingIOError:
                continue
        grown = resident_mib(server.process.pid) - before
        # Meanwhile the server serves everyone else.
        assert run_labproto("knock", "--port", str(port)).returncode == 0
    assert sent < 50_000_000, "the server read on"
    assert grown < 50, f"the server grew by {grown:.0f} MiB"


def test_clients_say_when_no_server_listens(closed_tcp_port: int) -> None:
    for client in ("knock", "calc"):
        result = run_labproto(client, "--port", str(closed_tcp_port), input="")
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == f"no server at 127.0.0.1:{closed_tcp_port} (connection refused)\n"


def test_calc_client_says_when_the_server_drops_the_connection(
    played_server: Callable[..., PlayedServer],
) -> None:
    server = played_server("--name", "erin")
    server.hang_up()
    assert server.client.stdin is not None
    server.client.stdin.write("1 + 1\n")
    server.client.stdin.close()
    assert server.client_result() == (
        1,
        "",
        f"lost the connection to {server.where}: the server closed the connection\n",
    )


def test_a_port_in_use_is_one_log_line_and_exit_status_1(servers: Start) -> None:
    first, port = tcp_server(servers, "knockknock")
    second = servers("knockknock", "--port", f"tcp:{port}:interface=127.0.0.1")
    second.wait_for(rf"Cannot listen on tcp:{port}:interface=127\.0\.0\.1: .*in use")
    assert second.process.wait(DEADLINE) == 1
    assert "Traceback" not in second.output()


def test_calc_over_tls_with_a_certificate_the_client_trusts(
    servers: Start, certificate: CertificateFiles
) -> None:
    endpoint = tls_endpoint(certificate)
    server, port = tcp_server(servers, "labcalc", "--port", endpoint)
    server.wait_for(rf"labcalc listening on TCP 127\.0\.0\.1:{port} \(TLS\)$")
    result = run_labproto(
        "calc", "--port", str(port), "--ca-file", str(certificate.certificate),
        "--name", "frank", input="12 + 42\n",
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "Result: 54.0\nSession Ended\n",
        "",
    )
    server.wait_for(r"frank: 12 \+ 42 = 54\.0$")


def test_tls_client_refuses_a_certificate_it_does_not_trust(
    servers: Start, certificate: CertificateFiles
) -> None:
    endpoint = tls_endpoint(certificate)
    _, port = tcp_server(servers, "knockknock", "--port", endpoint)
    result = run_labproto("knock", "--port", str(port), "--tls")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(f"lost the connection to 127.0.0.1:{port}: TLS failed: ")
    assert "certificate verify failed" in result.stderr


def test_plaintext_client_does_not_get_an_answer_from_a_tls_server(
    servers: Start, certificate: CertificateFiles
) -> None:
    endpoint = tls_endpoint(certificate)
    _, port = tcp_server(servers, "knockknock", "--port", endpoint)
    result = run_labproto("knock", "--port", str(port))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"lost the connection to 127.0.0.1:{port}: the server closed the connection\n"
    )


def test_tls_client_says_when_the_server_does_not_speak_tls(servers: Start) -> None:
    _, port = tcp_server(servers, "knockknock")
    result = run_labproto("knock", "--port", str(port), "--tls")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"lost the connection to 127.0.0.1:{port}: TLS failed: wrong version number\n"
    )


def test_calc_client_notices_a_hang_up_while_its_user_has_not_typed_yet(
    played_server: Callable[..., PlayedServer],
) -> None:
    # The user's input stays open and empty: the client must not wait on it.
    server = played_server("--name", "erin")
    server.greet(b"erin")
    server.hang_up()
    assert server.client_result() == (
        1,
        "",
        f"lost the connection to {server.where}: the server closed the connection\n",
    )


def test_ctrl_c_ends_a_calc_session_with_q_and_status_0(
    played_server: Callable[..., PlayedServer],
) -> None:
    server = played_server("--name", "gil")
    server.greet(b"gil")
    # An expression sent shows that the client has read the greeting, and
    # with it learned its farewell: a Ctrl-C before that would only hang up.
    assert server.client.stdin is not None
    server.client.stdin.write("1 + 1\n")
    server.client.stdin.flush()
    assert server.reader.readline() == b"1 + 1\r\n"
    server.client.send_signal(signal.SIGINT)
    assert server.reader.readline() == b"q\r\n"
    assert server.client_result() == (0, "", "")


# Each TCP client at another service's port: the line it prints and its status.

CALC_WELCOME = "Welcome to labcalc. What's your name?"
CHAT_PROMPT = "Welcome to labchat! Please enter your name:"


@pytest.mark.parametrize(
    ("client", "service", "first_line"),
    [
        ("chat", "labcalc", CALC_WELCOME),
        ("calc", "labchat", CHAT_PROMPT),
        ("knock", "labcalc", CALC_WELCOME),
        ("knock", "labchat", CHAT_PROMPT),
    ],
)
def test_a_client_at_another_services_port_says_so_and_fails(
    servers: Start, client: str, service: str, first_line: str
) -> None:
    _, port = tcp_server(servers, service)
    result = run_labproto(client, "--port", str(port), input="alice\n")
    served = {"chat": "labchat", "calc": "labcalc", "knock": "knockknock"}[client]
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"127.0.0.1:{port} is not a {served} server (it said: {first_line})\n"
    )


@pytest.mark.parametrize("client", ["chat", "calc"])
def test_a_client_at_knockknocks_port_says_that_nothing_came(servers: Start, client: str) -> None:
    # knockknock waits for the teller's first line: no greeting ever comes.
    _, port = tcp_server(servers, "knockknock")
    result = run_labproto(client, "--port", str(port), "--timeout", "0.5", input="alice\n")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"no answer from 127.0.0.1:{port} within 0.5 s\n"


# labcalc's forms without spaces, its quit words, and a login that fails


def test_calc_answers_expressions_without_spaces_and_ends_on_quit(servers: Start) -> None:
    server, port = tcp_server(servers, "labcalc")
    result = run_labproto(
        "calc", "--port", str(port), "--name", "bob", input="2+3\n4.5/-6\n3.24-45\nQuit\n"
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "Result: 5.0\nResult: -0.75\nResult: -41.76\nSession Ended\n"
    server.wait_for(r"bob: 3\.24-45 = -41\.76$")
    server.wait_for(r"Session ended \(bob\)$")


def test_a_piped_calc_session_whose_name_is_never_accepted_fails(servers: Start) -> None:
    _, port = tcp_server(servers, "labcalc")
    result = run_labproto("calc", "--port", str(port), input="n" * 65 + "\n")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "not sent: invalid name: use 1 to 64 characters and no control characters\n"
        "no session: the input ended before a name was accepted\n"
    )


def test_a_piped_calc_session_whose_server_closes_at_login_fails(
    played_server: Callable[..., PlayedServer],
) -> None:
    server = played_server()
    server.connection.sendall(b"Welcome to labcalc. What's your name?\r\n")
    server.hang_up()
    assert server.client.stdin is not None
    server.client.stdin.write("erin\n")
    server.client.stdin.close()
    status, out, err = server.client_result()
    assert (status, out) == (1, "")
    assert err.startswith(f"lost the connection to {server.where}: ")


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        (b"9 ** 9 ** 9", b"ERROR expected NUMBER OP NUMBER, e.g. 12 + 42"),
        (b"(" * 1000 + b"1" + b")" * 1000, b"ERROR line too long (max 1024 bytes)"),
        (b"(" * 500 + b"1" + b")" * 500, b"ERROR expected NUMBER OP NUMBER, e.g. 12 + 42"),
        (b"1" * 65536, b"ERROR line too long (max 1024 bytes)"),
        (
            b"9" * 1000 + b"+1",
            b"ERROR number too long: " + b"9" * 16 + b"... (at most 64 characters)",
        ),
    ],
)
def test_a_hostile_expression_is_refused_at_once_and_others_are_still_served(
    servers: Start, line: bytes, answer: bytes
) -> None:
    _, port = tcp_server(servers, "labcalc")
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as attacker:
        reader = attacker.makefile("rb")
        reader.readline()
        attacker.sendall(b"mallory\n")
        reader.readline()
        started = time.monotonic()
        attacker.sendall(line + b"\n")
        assert reader.readline() == answer + b"\r\n"
        assert time.monotonic() - started < 0.5
        reader.close()
        # Another client, meanwhile, gets its session as if nothing had happened.
        result = run_labproto("calc", "--port", str(port), "--name", "bob", input="2+3\n")
        assert (result.returncode, result.stdout) == (0, "Result: 5.0\nSession Ended\n")
