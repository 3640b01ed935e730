"""The knockknock server against a fake TCP transport: its turns, its refusals, its log lines."""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from labproto.knock.protocol import KnockKnockFactory, KnockKnockProtocol, Turn

PEER = IPv4Address("TCP", "127.0.0.1", 5000)
EXPECTED_KNOCK = b'ERROR you\'re supposed to say "Knock knock"\r\n'
EXPECTED_NAME = b"ERROR you're supposed to say who's there, e.g. \"Lettuce\"\r\n"
EXPECTED_PUNCHLINE = b'ERROR you\'re supposed to say the punchline, "Lettuce ..."\r\n'


def connected(max_line: int = 1024) -> tuple[KnockKnockProtocol, StringTransport]:
    protocol = KnockKnockFactory(max_line).buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    return protocol, transport


def say(protocol: KnockKnockProtocol, transport: StringTransport, data: bytes) -> bytes:
    """Send data to the server and return what it answered."""
    transport.clear()
    protocol.dataReceived(data)
    return transport.value()


def at_turn(turn: Turn) -> tuple[KnockKnockProtocol, StringTransport]:
    """A connection that has got as far as turn in the Lettuce joke."""
    protocol, transport = connected()
    lines = {
        Turn.KNOCK: b"",
        Turn.NAME: b"Knock knock..\n",
        Turn.PUNCHLINE: b"Knock knock\nLettuce\n",
    }
    protocol.dataReceived(lines[turn])
    assert protocol.turn is turn
    return protocol, transport


def test_a_new_connection_waits_for_a_knock_and_says_nothing() -> None:
    protocol, transport = connected()
    assert (protocol.turn, transport.value()) == (Turn.KNOCK, b"")


def test_the_whole_joke_gets_the_three_answers_of_the_lab() -> None:
    protocol, transport = connected()
    assert say(protocol, transport, b"Knock knock..\r\n") == b"Who's there?\r\n"
    assert say(protocol, transport, b"Lettuce\r\n") == b"Lettuce who?\r\n"
    punchline = b"Lettuce in, it's cold out here!\r\n"
    assert say(protocol, transport, punchline) == b"Ha ha! Knock again?\r\n"


def test_a_knock_moves_to_the_name_turn() -> None:
    protocol, _ = at_turn(Turn.KNOCK)
    protocol.dataReceived(b"Knock knock..\n")
    assert protocol.turn is Turn.NAME


def test_a_name_moves_to_the_punchline_turn_and_is_remembered() -> None:
    protocol, _ = at_turn(Turn.NAME)
    protocol.dataReceived(b"Lettuce\n")
    assert (protocol.turn, protocol.name) == (Turn.PUNCHLINE, "Lettuce")


def test_the_punchline_returns_to_the_start() -> None:
    protocol, _ = at_turn(Turn.PUNCHLINE)
    protocol.dataReceived(b"Lettuce in, it's cold out here!\n")
    assert protocol.turn is Turn.KNOCK


def test_a_second_joke_works_after_the_laugh() -> None:
    protocol, transport = connected()
    protocol.dataReceived(b"Knock knock\nLettuce\nLettuce in!\n")
    transport.clear()
    protocol.dataReceived(b"Knock knock\nBoo\nDon't cry, it's only a joke.\n")
    assert transport.value() == b"Who's there?\r\nBoo who?\r\nHa ha! Knock again?\r\n"


def test_a_whole_joke_in_one_chunk_gets_every_answer_in_order() -> None:
    protocol, transport = connected()
    protocol.dataReceived(b"Knock knock..\r\nLettuce\r\nLettuce in!\r\n")
    assert transport.value() == b"Who's there?\r\nLettuce who?\r\nHa ha! Knock again?\r\n"


@pytest.mark.parametrize(
    "knock",
    [
        b"Knock knock..",
        b"knock knock",
        b"KNOCK KNOCK",
        b"Knock-knock!",
        b"knock, knock?",
        b"  Knock   Knock  ",
        b"knockknock",
        b"Knock\tknock.",
    ],
)
def test_any_knock_knock_whatever_its_case_and_punctuation_is_a_knock(knock: bytes) -> None:
    protocol, transport = connected()
    assert say(protocol, transport, knock + b"\r\n") == b"Who's there?\r\n"


@pytest.mark.parametrize(
    "line",
    [
        b"Lettuce",
        b"Knock",
        b"knock knock knock",
        b"who's there?",
        b"",
        b"   ",
        b"Kn\xc3\xb6ck knock",
    ],
)
def test_anything_but_a_knock_at_the_start_is_refused_and_the_turn_stays(line: bytes) -> None:
    protocol, transport = at_turn(Turn.KNOCK)
    assert say(protocol, transport, line + b"\r\n") == EXPECTED_KNOCK
    assert protocol.turn is Turn.KNOCK


@pytest.mark.parametrize("line", [b"", b"   ", b"\t", b"\x1b", b"\x1b\x07\x7f"])
def test_a_blank_name_is_refused_and_the_turn_stays(line: bytes) -> None:
    protocol, transport = at_turn(Turn.NAME)
    assert say(protocol, transport, line + b"\r\n") == EXPECTED_NAME
    assert protocol.turn is Turn.NAME


@pytest.mark.parametrize("line", [b"", b"   ", b"\x1b"])
def test_a_blank_punchline_is_refused_quoting_the_name_and_the_turn_stays(line: bytes) -> None:
    protocol, transport = at_turn(Turn.PUNCHLINE)
    assert say(protocol, transport, line + b"\r\n") == EXPECTED_PUNCHLINE
    assert (protocol.turn, protocol.name) == (Turn.PUNCHLINE, "Lettuce")


def test_the_joke_goes_on_after_a_refusal() -> None:
    protocol, transport = at_turn(Turn.NAME)
    protocol.dataReceived(b"\n")
    assert say(protocol, transport, b"Lettuce\n") == b"Lettuce who?\r\n"


def test_the_name_is_trimmed_before_it_is_echoed() -> None:
    protocol, transport = at_turn(Turn.NAME)
    assert say(protocol, transport, b"   Lettuce \t\r\n") == b"Lettuce who?\r\n"


def test_controls_and_whole_escape_sequences_are_removed_from_the_echoed_name() -> None:
    protocol, transport = at_turn(Turn.NAME)
    answer = say(protocol, transport, b"Let\x1b[2Jtu\x07c\x7fe\xc2\x9b\r\n")
    assert answer == b"Lettuce who?\r\n"


@pytest.mark.parametrize(
    "name",
    [
        b"\x1b[31mLettuce\x1b[0m",
        b"Lettuce\x1b]0;owned\x07",
        b"Let\xe2\x80\xaetuce",
        b"\x1b[1;31mLettuce",
    ],
)
def test_no_part_of_an_escape_sequence_or_invisible_character_is_echoed(name: bytes) -> None:
    protocol, transport = at_turn(Turn.NAME)
    assert say(protocol, transport, name + b"\n") == b"Lettuce who?\r\n"


def test_a_punchline_of_escape_sequences_alone_is_refused_as_empty() -> None:
    protocol, transport = at_turn(Turn.PUNCHLINE)
    answer = say(protocol, transport, b"\x1b[31m\x1b[0m\n")
    assert answer.startswith(b"ERROR you're supposed to say the punchline")


def test_a_tab_inside_a_name_is_kept() -> None:
    protocol, transport = at_turn(Turn.NAME)
    assert say(protocol, transport, b"Ice\tcream\n") == b"Ice\tcream who?\r\n"


def test_the_punchline_refusal_quotes_the_name_without_its_control_characters() -> None:
    protocol, transport = at_turn(Turn.NAME)
    protocol.dataReceived(b"Let\x07tuce\x1b[0m\n")
    assert say(protocol, transport, b"\n") == EXPECTED_PUNCHLINE


def test_a_non_ascii_name_is_echoed_as_utf8() -> None:
    protocol, transport = at_turn(Turn.NAME)
    assert say(protocol, transport, "Crème brûlée\n".encode()) == "Crème brûlée who?\r\n".encode()


def test_a_too_long_line_is_refused_and_the_turn_stays() -> None:
    protocol, transport = connected(max_line=16)
    protocol.dataReceived(b"Knock knock\n")
    assert say(protocol, transport, b"L" * 17 + b"\n") == b"ERROR line too long (max 16 bytes)\r\n"
    assert protocol.turn is Turn.NAME


def test_connections_from_one_factory_share_no_state() -> None:
    factory = KnockKnockFactory(1024)
    first, second = factory.buildProtocol(PEER), factory.buildProtocol(PEER)
    first.makeConnection(StringTransport(peerAddress=PEER))
    second.makeConnection(StringTransport(peerAddress=PEER))
    first.dataReceived(b"Knock knock\n")
    assert (first.turn, second.turn) == (Turn.NAME, Turn.KNOCK)


def test_a_connection_is_logged_as_initiated_from_its_peer(logged) -> None:
    connected()
    assert logged.lines() == ["Connection initiated from ('127.0.0.1', 5000)"]


def test_each_line_is_logged_as_the_server_received_it(logged) -> None:
    protocol, _ = connected()
    protocol.dataReceived(b"Knock knock..\r\nLettuce\n")
    assert logged.lines()[1:] == ["SERVER RECEIVED: Knock knock..", "SERVER RECEIVED: Lettuce"]


def test_a_refused_line_is_logged_too(logged) -> None:
    protocol, _ = connected()
    protocol.dataReceived(b"Lettuce\n")
    assert logged.lines()[-1] == "SERVER RECEIVED: Lettuce"


def test_control_characters_are_logged_escaped(logged) -> None:
    protocol, _ = at_turn(Turn.NAME)
    protocol.dataReceived(b"Let\x1b[2Jtuce\ta\rb\x00\r\n")
    assert logged.lines()[-1] == "SERVER RECEIVED: Let\\x1b[2Jtuce\\ta\\rb\\x00"


@pytest.mark.parametrize("char", ["\u2028", "\u202e", "\u200b", "\ufeff"])
def test_invisible_characters_are_logged_escaped(logged, char: str) -> None:
    protocol, _ = at_turn(Turn.NAME)
    protocol.dataReceived(f"Let{char}tuce\n".encode())
    assert logged.lines()[-1] == f"SERVER RECEIVED: Let\\u{ord(char):04x}tuce"


def test_invalid_utf8_is_logged_as_the_replacement_character(logged) -> None:
    protocol, transport = at_turn(Turn.NAME)
    protocol.dataReceived(b"Lett\xffuce\n")
    assert logged.lines()[-1] == "SERVER RECEIVED: Lett\ufffduce"
    assert transport.value().endswith("Lett\ufffduce who?\r\n".encode())


@pytest.mark.parametrize("reason", [ConnectionDone(), ConnectionLost()])
def test_a_closed_connection_is_logged_with_its_peer(logged, reason: Exception) -> None:
    protocol, _ = connected()
    protocol.connectionLost(Failure(reason))
    assert logged.lines()[-1] == "Connection closed from ('127.0.0.1', 5000)"
