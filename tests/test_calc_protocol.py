"""The labcalc server against a fake TCP transport: the name, the answers, the session's end."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.python.failure import Failure

from labproto.calc import tap as calc_tap
from labproto.calc.protocol import CalculatorFactory, CalculatorProtocol

PEER = IPv4Address("TCP", "127.0.0.1", 5000)
WELCOME = b"Welcome to labcalc. What's your name?\r\n"
HELLO = b"Hello gautamop! Send an expression like 12 + 42, or q to quit.\r\n"
INVALID_NAME = b"ERROR invalid name: use 1 to 64 characters and no control characters\r\n"
BAD_FORMAT = b"ERROR expected NUMBER OP NUMBER, e.g. 12 + 42\r\n"


def connected(
    max_line: int = 1024, transport: StringTransport | None = None
) -> tuple[CalculatorProtocol, StringTransport]:
    protocol = CalculatorFactory(max_line).buildProtocol(PEER)
    transport = transport or StringTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    return protocol, transport


def named(
    max_line: int = 1024, transport: StringTransport | None = None
) -> tuple[CalculatorProtocol, StringTransport]:
    """A session whose client has named itself gautamop."""
    protocol, transport = connected(max_line, transport)
    protocol.dataReceived(b"gautamop\r\n")
    transport.clear()
    return protocol, transport


def closing() -> tuple[CalculatorProtocol, StringTransportWithDisconnection]:
    """A named session whose transport tells the protocol when it closes, as a real one does."""
    transport = StringTransportWithDisconnection(peerAddress=PEER)
    protocol, _ = named(transport=transport)
    transport.protocol = protocol
    return protocol, transport


def say(protocol: CalculatorProtocol, transport: StringTransport, data: bytes) -> bytes:
    """Send data to the server and return what it answered."""
    transport.clear()
    protocol.dataReceived(data)
    return transport.value()


def test_a_new_connection_is_welcomed_and_asked_its_name() -> None:
    _, transport = connected()
    assert transport.value() == WELCOME


def test_a_new_connection_is_logged_with_its_peer(logged) -> None:
    connected()
    assert logged.lines() == ["Connection from ('127.0.0.1', 5000)"]


def test_a_name_is_greeted_with_what_to_send_next() -> None:
    protocol, transport = connected()
    assert say(protocol, transport, b"gautamop\r\n") == HELLO
    assert protocol.name == "gautamop"


def test_a_name_is_trimmed() -> None:
    protocol, transport = connected()
    assert say(protocol, transport, b" \t gautamop  \r\n") == HELLO
    assert protocol.name == "gautamop"


def test_a_name_is_logged_with_its_peer(logged) -> None:
    named()
    assert logged.lines()[-1] == "('127.0.0.1', 5000) is gautamop"


@pytest.mark.parametrize("name", ["x" * 64, "é" * 64, "Gautam Op", "q", "12 + 42"])
def test_any_name_of_1_to_64_characters_without_controls_is_accepted(name: str) -> None:
    protocol, transport = connected()
    answer = say(protocol, transport, name.encode() + b"\n")
    assert answer == f"Hello {name}! Send an expression like 12 + 42, or q to quit.\r\n".encode()


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"   \t ",
        b"x" * 65,
        "é".encode() * 65,
        b"gautam\x1bop",
        b"gautam\top",
        b"gautam\x00op",
        b"gautam\x7fop",
        b"gautam\xc2\x85op",
        b"gautam\rop",
    ],
)
def test_an_invalid_name_is_refused_and_the_session_still_waits_for_one(line: bytes) -> None:
    protocol, transport = connected()
    assert say(protocol, transport, line + b"\r\n") == INVALID_NAME
    assert protocol.name is None
    assert say(protocol, transport, b"gautamop\n") == HELLO


def test_the_contract_session_gets_the_contract_answers() -> None:
    protocol, transport = connected()
    protocol.dataReceived(b"gautamop\n12 + 42\n4.5 / -6\n1 / 0\n12 +\nq\n")
    assert transport.value() == (
        WELCOME
        + HELLO
        + b"54.0\r\n-0.75\r\nERROR division by zero\r\n"
        + BAD_FORMAT
        + b"Session ended\r\n"
    )


def test_an_expression_is_answered_with_crlf() -> None:
    protocol, transport = named()
    assert say(protocol, transport, b"15 + 35\n") == b"50.0\r\n"


def test_each_request_is_logged_with_the_name_expression_and_answer(logged) -> None:
    protocol, _ = named()
    protocol.dataReceived(b"  15 + 35 \r\n")
    assert logged.lines()[-1] == "gautamop: 15 + 35 = 50.0"


def test_a_refused_request_is_logged_with_its_error(logged) -> None:
    protocol, _ = named()
    protocol.dataReceived(b"1 / 0\n")
    assert logged.lines()[-1] == "gautamop: 1 / 0 = ERROR division by zero"


def test_control_characters_in_a_request_are_logged_escaped(logged) -> None:
    protocol, transport = named()
    protocol.dataReceived(b"1 +\x1b[2J 2\n")
    assert transport.value() == BAD_FORMAT
    assert logged.lines()[-1] == (
        "gautamop: 1 +\\x1b[2J 2 = ERROR expected NUMBER OP NUMBER, e.g. 12 + 42"
    )


def test_the_name_is_remembered_across_a_hundred_requests(logged) -> None:
    protocol, transport = named()
    protocol.dataReceived(b"".join(b"%d + 1\r\n" % i for i in range(100)))
    assert transport.value() == b"".join(b"%d.0\r\n" % (i + 1) for i in range(100))
    assert logged.lines()[-100:] == [f"gautamop: {i} + 1 = {i + 1}.0" for i in range(100)]


def test_sessions_from_one_factory_keep_their_own_names(logged) -> None:
    factory = CalculatorFactory(1024)
    first, second = factory.buildProtocol(PEER), factory.buildProtocol(PEER)
    first.makeConnection(StringTransport(peerAddress=PEER))
    second.makeConnection(StringTransport(peerAddress=PEER))
    first.dataReceived(b"alice\n")
    second.dataReceived(b"bob\n")
    first.dataReceived(b"1 + 1\n")
    second.dataReceived(b"2 + 2\n")
    assert logged.lines()[-2:] == ["alice: 1 + 1 = 2.0", "bob: 2 + 2 = 4.0"]


def test_a_too_long_line_is_refused_and_the_session_goes_on() -> None:
    protocol, transport = named(max_line=16)
    answer = say(protocol, transport, b"1" * 17 + b" + 1\n1 + 1\n")
    assert answer == b"ERROR line too long (max 16 bytes)\r\n2.0\r\n"


def test_a_too_long_name_line_is_refused_and_the_session_still_waits_for_a_name() -> None:
    protocol, transport = connected(max_line=16)
    assert say(protocol, transport, b"x" * 17 + b"\n") == b"ERROR line too long (max 16 bytes)\r\n"
    assert protocol.name is None


def test_q_answers_session_ended_and_closes_the_connection() -> None:
    protocol, transport = named()
    assert say(protocol, transport, b"q\r\n") == b"Session ended\r\n"
    assert transport.disconnecting


def test_q_with_white_space_around_it_ends_the_session() -> None:
    protocol, transport = named()
    assert say(protocol, transport, b"  q \r\n") == b"Session ended\r\n"
    assert transport.disconnecting


@pytest.mark.parametrize("line", [b"Q", b"quit", b"QUIT", b"exit", b"Exit", b" quit \r"])
def test_quit_and_exit_in_any_case_end_the_session_as_q_does(line: bytes) -> None:
    protocol, transport = named()
    assert say(protocol, transport, line + b"\n") == b"Session ended\r\n"
    assert transport.disconnecting


@pytest.mark.parametrize("line", [b"qu", b"quitt", b"exit now", b"q q"])
def test_other_words_do_not_end_the_session(line: bytes) -> None:
    protocol, transport = named()
    assert say(protocol, transport, line + b"\n") == BAD_FORMAT
    assert not transport.disconnecting


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("a\u2028b", "a\\u2028b"),
        ("\u202emoc.evil", "\\u202emoc.evil"),
        ("ga\u200butamop", "ga\\u200butamop"),
        ("\ufeffgautamop", "\\ufeffgautamop"),
    ],
)
def test_a_name_reaches_every_log_line_escaped(logged, name: str, shown: str) -> None:
    transport = StringTransportWithDisconnection(peerAddress=PEER)
    protocol, _ = connected(transport=transport)
    transport.protocol = protocol
    protocol.dataReceived(name.encode() + b"\n1 + 1\nq\n")
    assert logged.lines()[1:] == [
        f"('127.0.0.1', 5000) is {shown}",
        f"{shown}: 1 + 1 = 2.0",
        f"Session ended ({shown})",
    ]


def test_a_name_with_such_characters_is_still_greeted_as_typed() -> None:
    # The contract forbids control characters in a name, not these: only the log escapes them.
    protocol, transport = connected()
    assert say(protocol, transport, "a\u2028b\n".encode()) == (
        "Hello a\u2028b! Send an expression like 12 + 42, or q to quit.\r\n".encode()
    )


def test_q_is_not_logged_as_a_request(logged) -> None:
    protocol, _ = named()
    protocol.dataReceived(b"q\n")
    assert not any(line.startswith("gautamop: ") for line in logged.lines())


def test_lines_after_q_in_the_same_chunk_are_not_answered(logged) -> None:
    protocol, transport = named()
    assert say(protocol, transport, b"q\n1 + 1\n2 + 2\n") == b"Session ended\r\n"
    assert not any(line.startswith("gautamop: ") for line in logged.lines())


def test_lines_after_q_after_a_too_long_line_are_not_answered() -> None:
    protocol, transport = named(max_line=16)
    answer = say(protocol, transport, b"x" * 100 + b"\nq\n1 + 1\n")
    assert answer == b"ERROR line too long (max 16 bytes)\r\nSession ended\r\n"


def test_the_end_of_a_session_by_q_is_logged_with_the_name(logged) -> None:
    protocol, transport = closing()
    protocol.dataReceived(b"q\n")
    assert logged.lines()[-1] == "Session ended (gautamop)"


def test_the_end_of_a_session_by_a_dropped_connection_is_logged_with_the_name(logged) -> None:
    protocol, _ = named()
    protocol.connectionLost(Failure(ConnectionLost()))
    assert logged.lines()[-1] == "Session ended (gautamop)"


def test_a_connection_dropped_before_a_name_is_logged_with_its_peer(logged) -> None:
    protocol, _ = connected()
    protocol.connectionLost(Failure(ConnectionLost()))
    assert logged.lines()[-1] == "Connection closed before a name from ('127.0.0.1', 5000)"


def test_a_half_close_after_q_gets_session_ended() -> None:
    protocol, transport = named()
    protocol.dataReceived(b"1 + 1\nq\n")
    protocol.readConnectionLost()
    assert transport.value() == b"2.0\r\nSession ended\r\n"
    assert transport.disconnecting


def answered_lines(sent: bytes) -> list[bytes]:
    """The lines in sent, each checked to end with CRLF and to hold no other CR or LF."""
    assert sent == b"" or sent.endswith(b"\r\n")
    lines = sent.split(b"\r\n")[:-1]
    for line in lines:
        assert b"\r" not in line and b"\n" not in line, line
    return lines


def is_an_answer(line: bytes) -> bool:
    """Whether line is something the server may say in a named session."""
    if line == b"Session ended" or line.startswith(b"ERROR "):
        return True
    try:
        float(line)
    except ValueError:
        return False
    return True


@given(
    data=st.binary(max_size=2000),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=30),
    max_line=st.sampled_from([8, 64, 1024]),
)
def test_any_bytes_in_any_chunks_never_raise_and_every_answer_ends_with_crlf(
    data: bytes, cuts: list[int], max_line: int
) -> None:
    protocol, transport = named(max_line)
    points = sorted({0, len(data), *(cut for cut in cuts if cut < len(data))})
    for start, end in pairwise(points):
        if transport.disconnecting:
            break
        protocol.dataReceived(data[start:end])
    for line in answered_lines(transport.value()):
        assert is_an_answer(line), line


def session_of_twistd(*argv: str) -> tuple[CalculatorProtocol, StringTransportWithDisconnection]:
    """A connection to the factory that ``twistd labcalc argv`` would serve, with its transport."""
    options = calc_tap.Options()
    options.parseOptions(list(argv))
    (server,) = list(calc_tap.makeService(options))
    protocol = server.factory.buildProtocol(PEER)
    transport = StringTransportWithDisconnection(peerAddress=PEER)
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return protocol, transport


@pytest.mark.parametrize("flag", ["--quiet", "-q"])
def test_quiet_logs_no_request_but_still_the_connection_and_its_end(logged, flag: str) -> None:
    protocol, transport = session_of_twistd(flag)
    protocol.dataReceived(b"gautamop\n15 + 35\n1 / 0\nq\n")
    assert transport.value() == (
        WELCOME + HELLO + b"50.0\r\nERROR division by zero\r\nSession ended\r\n"
    )
    assert logged.lines() == [
        "Connection from ('127.0.0.1', 5000)",
        "('127.0.0.1', 5000) is gautamop",
        "Session ended (gautamop)",
    ]


def test_without_quiet_each_request_is_logged_between_the_connection_and_its_end(logged) -> None:
    protocol, _ = session_of_twistd()
    protocol.dataReceived(b"gautamop\n15 + 35\nq\n")
    assert logged.lines() == [
        "Connection from ('127.0.0.1', 5000)",
        "('127.0.0.1', 5000) is gautamop",
        "gautamop: 15 + 35 = 50.0",
        "Session ended (gautamop)",
    ]
