"""udpecho and udptime as real twistd processes, driven by the real labproto clients."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator

import pytest
from support.processes import (
    DEADLINE,
    LABPROTO,
    ServerProcess,
    child_environment,
    run_labproto,
    start_labproto,
)

LISTENING = r"listening on UDP \S+:(\d+)$"
Start = Callable[..., ServerProcess]


def udp_server(servers: Start, plugin: str, *options: str) -> tuple[ServerProcess, int]:
    """Start a UDP service on a free port and return it with the port it took."""
    server = servers(plugin, "--port", "0", *options)
    return server, int(server.wait_for(LISTENING).group(1))


@pytest.fixture
def silent_port() -> Iterator[socket.socket]:
    """A bound UDP socket that receives but never answers, like a server that hangs."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(DEADLINE)
        yield sock


@pytest.fixture
def lab_socket() -> Iterator[socket.socket]:
    """A raw UDP socket for sending what no well-behaved client would."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(DEADLINE)
        yield sock


def test_echo_client_prints_the_servers_ok(servers: Start) -> None:
    server, port = udp_server(servers, "udpecho")
    result = run_labproto("echo", "--port", str(port), "--timeout", "10")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"Client received MESSAGE= Ok from ADDR= ('127.0.0.1', {port})\n"
    server.wait_for(
        r"Server received MESSAGE= I could tell you a UDP joke but I'm not sure you'll get it\. "
        r"from ADDR= \('127\.0\.0\.1', \d+\)$"
    )


def test_echo_server_logs_the_message_the_user_typed(servers: Start) -> None:
    server, port = udp_server(servers, "udpecho")
    result = run_labproto("echo", "--host", "localhost", "--port", str(port), "héllo, lab")
    assert result.returncode == 0
    server.wait_for(r"Server received MESSAGE= héllo, lab from ADDR=")


def test_echo_sends_an_argument_that_is_not_utf8_as_it_is(servers: Start) -> None:
    server, port = udp_server(servers, "udpecho")
    result = subprocess.run(
        [LABPROTO.encode(), b"echo", b"--port", str(port).encode(), b"caf\xe9 \x1b[2J"],
        capture_output=True, env=child_environment(), timeout=DEADLINE,
    )
    assert (result.returncode, result.stderr) == (0, b"")
    server.wait_for(r"Server received MESSAGE= caf\ufffd \\x1b\[2J from ADDR=")


def test_ctrl_c_while_waiting_ends_the_echo_client_quietly(silent_port: socket.socket) -> None:
    port = silent_port.getsockname()[1]
    client = start_labproto(
        "echo", "--port", str(port), "--timeout", "0.05", "--retries", "9", "--quiet",
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    # The second try proves the client's reactor, and its Ctrl-C handler, are running.
    silent_port.recv(100)
    silent_port.recv(100)
    client.send_signal(signal.SIGINT)
    out, err = client.communicate(timeout=DEADLINE)
    assert (client.returncode, out, err) == (0, "", "")


def test_echo_client_reports_a_port_nobody_listens_on(closed_port: int) -> None:
    result = run_labproto("echo", "--port", str(closed_port))
    assert result.returncode == 1
    assert result.stderr == f"no server at 127.0.0.1:{closed_port} (connection refused)\n"
    assert result.stdout == ""


def test_echo_client_gives_up_on_a_silent_server(silent_port: socket.socket) -> None:
    port = silent_port.getsockname()[1]
    result = run_labproto("echo", "--port", str(port), "--timeout", "0.05", "--retries", "2", "hi")
    assert result.returncode == 1
    assert result.stderr == (
        "no reply yet, retrying in 0.1 s (2/3)\n"
        "no reply yet, retrying in 0.2 s (3/3)\n"
        f"no reply from 127.0.0.1:{port} after 3 tries\n"
    )
    assert [silent_port.recv(100) for _ in range(3)] == [b"hi"] * 3


def test_quiet_echo_client_says_only_that_it_gave_up(silent_port: socket.socket) -> None:
    port = silent_port.getsockname()[1]
    result = run_labproto(
        "echo", "--port", str(port), "--timeout", "0.05", "--retries", "2", "--quiet", "hi"
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"no reply from 127.0.0.1:{port} after 3 tries\n"


def test_time_client_prints_each_round(servers: Start) -> None:
    _, port = udp_server(servers, "udptime")
    result = run_labproto(
        "time", "--port", str(port), "--count", "4", "--min-delay", "0", "--max-delay", "0.01",
        "--timeout", "10",
    )
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    for line in lines:
        assert re.fullmatch(
            r"Client received MESSAGE = (\d\d/\d\d/\d\d|\d\d:\d\d:\d\d) "
            rf"from ADDR = \('127\.0\.0\.1', {port}\)",
            line,
        ), line


def test_time_server_formats_reach_the_answers(servers: Start) -> None:
    _, port = udp_server(
        servers, "udptime", "--utc", "--date-format", "D%Y", "--time-format", "T%H"
    )
    result = run_labproto(
        "time", "--port", str(port), "--count", "6", "--min-delay", "0", "--max-delay", "0",
        "--timeout", "10",
    )
    answers = {line.split()[4][0] for line in result.stdout.splitlines()}
    assert result.returncode == 0
    assert answers <= {"D", "T"} and answers


def test_time_server_logs_requests_and_their_senders(servers: Start) -> None:
    server, port = udp_server(servers, "udptime")
    result = run_labproto("time", "--port", str(port), "--count", "1", "--timeout", "10")
    assert result.returncode == 0
    server.wait_for(
        r'Request "SEND_(DATE|TIME) 1" \(64 bytes\) from \(\'127\.0\.0\.1\', \d+\): '
        r"answered 1 \S+$"
    )


def test_time_client_reports_a_port_nobody_listens_on(closed_port: int) -> None:
    result = run_labproto("time", "--port", str(closed_port), "--count", "3")
    assert result.returncode == 1
    assert result.stderr == f"no server at 127.0.0.1:{closed_port} (connection refused)\n"


def test_time_client_reports_each_timeout_and_then_the_silence(
    silent_port: socket.socket,
) -> None:
    port = silent_port.getsockname()[1]
    result = run_labproto(
        "time", "--port", str(port), "--count", "2", "--timeout", "0.05", "--min-delay", "0",
        "--max-delay", "0",
    )
    assert result.returncode == 1
    assert re.fullmatch(
        r"no reply to SEND_(DATE|TIME) \(timed out\)\n"
        r"no reply to SEND_(DATE|TIME) \(timed out\)\n"
        rf"no reply from 127\.0\.0\.1:{port} to any of 2 requests\n",
        result.stderr,
    ), result.stderr


def test_time_server_survives_bad_datagrams(servers: Start, lab_socket: socket.socket) -> None:
    server, port = udp_server(servers, "udptime", "--utc")
    address = ("127.0.0.1", port)
    exchanges = [
        (b"", None),
        (b"\xff\xfe", None),
        (b"\xff\xfe\x1b[2J\x00", b"ERROR"),
        (b"x" * 65507, b"ERROR"),
        (b"HELLO", b"ERROR"),
        (b"SEND_TIME 123456789", b"ERROR"),
    ]
    for request, expected in exchanges:
        lab_socket.sendto(request, address)
        # A valid request after each one: the next datagram back tells whether
        # the bad one drew an answer, with no waiting for a silence.
        lab_socket.sendto(b"SEND_DATE ok", address)
        received = lab_socket.recv(70000)
        if expected is not None:
            assert received == expected, request[:20]
            received = lab_socket.recv(70000)
        assert re.fullmatch(rb"ok \d\d/\d\d/\d\d", received), request[:20]
    server.wait_for(r'Request "\ufffd\ufffd\\x1b\[2J\\x00" \(7 bytes\) from .*: answered ERROR')
    server.wait_for(r"\(65507 bytes in all\)\" \(65507 bytes\) from .*: answered ERROR")


def test_time_server_answers_lower_case_and_padded_requests(
    servers: Start, lab_socket: socket.socket
) -> None:
    _, port = udp_server(servers, "udptime", "--utc", "--time-format", "%H:%M")
    lab_socket.sendto(b"  send_time abc \r\n", ("127.0.0.1", port))
    assert re.fullmatch(rb"abc \d\d:\d\d", lab_socket.recv(100))


def test_echo_server_survives_bad_datagrams(servers: Start, lab_socket: socket.socket) -> None:
    server, port = udp_server(servers, "udpecho")
    for request in (b"", b"\x00", b"\xff" * 100, b"y" * 65507):
        lab_socket.sendto(request, ("127.0.0.1", port))
    lab_socket.sendto(b"ping", ("127.0.0.1", port))
    # Only the datagrams of two bytes or more were answered.
    assert [lab_socket.recv(100) for _ in range(3)] == [b"Ok"] * 3
    server.wait_for(r"Server received MESSAGE= ping from")
    server.wait_for(r"\(65507 bytes in all\) from ADDR=")


def test_a_taken_port_is_one_clear_log_line_and_status_1(servers: Start) -> None:
    _, port = udp_server(servers, "udpecho")
    second = servers("udpecho", "--port", str(port))
    second.wait_for(rf"Cannot listen on UDP port {port} of every interface: .*in use")
    assert second.process.wait(DEADLINE) == 1
    assert "Traceback" not in second.output()


def test_servers_stop_cleanly_on_ctrl_c(servers: Start, lab_socket: socket.socket) -> None:
    server, port = udp_server(servers, "udptime")
    # An answer proves the reactor runs, and with it twistd's signal handlers.
    lab_socket.sendto(b"SEND_TIME", ("127.0.0.1", port))
    lab_socket.recv(100)
    # twistd re-raises the signal that stopped it, as a shell expects.
    assert server.stop() in (0, -signal.SIGINT)
    server.wait_for(r"Server Shut Down\.$")
    assert "Traceback" not in server.output()


@pytest.mark.parametrize("plugin", ["udpecho", "udptime"])
def test_servers_stop_cleanly_when_their_terminal_closes(
    servers: Start, lab_socket: socket.socket, plugin: str
) -> None:
    server, port = udp_server(servers, plugin)
    lab_socket.sendto(b"SEND_TIME", ("127.0.0.1", port))
    lab_socket.recv(100)
    server.process.send_signal(signal.SIGHUP)
    assert server.process.wait(DEADLINE) == 0
    server.wait_for(r"Server Shut Down\.$")
    assert "Received SIGHUP (the terminal closed?), shutting down." in server.output()


def test_ipv6_client_and_server(servers: Start) -> None:
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6 support")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError as e:
        pytest.skip(f"this machine has no IPv6 loopback: {e}")
    _, port = udp_server(servers, "udpecho", "--interface", "::")
    # :: is IPv6 and IPv4 alike (docs/labsuite.rst, docs/udpecho.rst).
    for host in ("::1", "127.0.0.1"):
        result = run_labproto("echo", "--host", host, "--port", str(port), "--timeout", "10")
        assert result.returncode == 0
        assert result.stdout == f"Client received MESSAGE= Ok from ADDR= ('{host}', {port})\n"


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (("echo", "--port", "0"), "labproto echo: argument --port: '0' is not a port number"),
        (("time", "--timeout", "-1"), "labproto time: argument --timeout: '-1' is not a number"),
        (("time", "--count", "0"), "labproto time: argument --count: '0' is not a whole number"),
        (("echo", "x"), "the message must be at least 2 bytes long"),
        (
            ("time", "--min-delay", "3", "--max-delay", "1"),
            "labproto time: --min-delay must not be longer than --max-delay "
            "(see labproto time --help)",
        ),
        (("chess",), "labproto: argument CLIENT: invalid choice: 'chess'"),
        ((), "labproto: the following arguments are required: CLIENT"),
    ],
)
def test_usage_errors_are_one_line_and_status_2(arguments: tuple[str, ...], complaint: str) -> None:
    result = run_labproto(*arguments)
    assert result.returncode == 2
    assert result.stderr.startswith(complaint)
    assert result.stderr.count("\n") == 1


def test_twistd_usage_errors_say_what_is_wrong(servers: Start) -> None:
    server = servers("udptime", "--port", "65536")
    server.wait_for(r"--port must be a UDP port number from 0 to 65535, not '65536'")
    assert server.process.wait(DEADLINE) == 1


def test_time_client_says_when_its_output_cannot_be_written(servers: Start) -> None:
    _, port = udp_server(servers, "udptime")
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [LABPROTO, "time", "--port", str(port), "--count", "2", "--timeout", "10"],
            stdout=full, stderr=subprocess.PIPE, text=True, env=child_environment(),
            timeout=DEADLINE,
        )
    assert result.returncode == 1
    assert result.stderr == "cannot write to standard output: No space left on device\n"


def test_time_client_ends_quietly_when_its_reader_goes(servers: Start) -> None:
    _, port = udp_server(servers, "udptime")
    client = start_labproto(
        "time", "--port", str(port), "--min-delay", "0", "--max-delay", "0",
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert client.stdout is not None and client.stderr is not None
    assert client.stdout.readline().startswith("Client received MESSAGE = ")
    client.stdout.close()  # as `labproto time | head -1` does
    assert client.wait(DEADLINE) == 0
    assert client.stderr.read() == ""
    client.stderr.close()


def test_labproto_help_lists_every_client() -> None:
    result = run_labproto("--help")
    assert result.returncode == 0
    assert re.search(r"^    echo +send a message to udpecho", result.stdout, re.MULTILINE)
    assert re.search(r"^    time +ask udptime for the date", result.stdout, re.MULTILINE)
    assert "Exit status: 0 when the exchange ends normally" in " ".join(result.stdout.split())


@pytest.mark.parametrize(
    ("client", "options"),
    [
        ("echo", ["--host", "--port", "--timeout", "--retries", "(default: 43387)"]),
        ("time", ["--host", "--port", "--count", "--timeout", "--min-delay", "--max-delay",
                  "(default: 43388)"]),
    ],
)
def test_each_client_explains_its_options(client: str, options: list[str]) -> None:
    result = run_labproto(client, "--help")
    assert result.returncode == 0
    for option in options:
        assert option in result.stdout
