"""The udpecho server against a fake datagram transport."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fakes import DatagramPort

from labproto.udpecho.protocol import EchoServerProtocol

CLIENT = ("192.0.2.7", 5000)


def started() -> DatagramPort:
    return DatagramPort().attach(EchoServerProtocol())


def test_every_datagram_is_answered_ok_to_its_sender() -> None:
    port = started()
    port.protocol.datagramReceived(b"hello", CLIENT)
    assert port.written == [(b"Ok", CLIENT)]


def test_each_datagram_is_logged_as_the_lab_server_prints_it(logged) -> None:
    port = started()
    port.protocol.datagramReceived(b"I could tell you a UDP joke", CLIENT)
    assert logged.lines()[-1] == (
        "Server received MESSAGE= I could tell you a UDP joke from ADDR= ('192.0.2.7', 5000)"
    )


def test_start_logs_the_port_it_listens_on(logged) -> None:
    started()
    assert logged.lines() == ["udpecho listening on UDP 0.0.0.0:4321"]


def test_invalid_utf8_and_escapes_are_logged_escaped_and_answered(logged) -> None:
    port = started()
    port.protocol.datagramReceived(b"\xff\x1b[2J\r\n", CLIENT)
    assert port.sent() == [b"Ok"]
    assert logged.lines()[-1] == (
        "Server received MESSAGE= \ufffd\\x1b[2J\\r\\n from ADDR= ('192.0.2.7', 5000)"
    )


def test_datagrams_shorter_than_the_answer_are_logged_not_answered(logged) -> None:
    port = started()
    port.protocol.datagramReceived(b"", CLIENT)
    port.protocol.datagramReceived(b"x", CLIENT)
    assert port.written == []
    assert "Server received MESSAGE=  from ADDR= ('192.0.2.7', 5000)" in logged.lines()
    assert "Server received MESSAGE= x from ADDR= ('192.0.2.7', 5000)" in logged.lines()


def test_a_64k_datagram_is_answered_and_logged_with_its_size(logged) -> None:
    port = started()
    port.protocol.datagramReceived(b"z" * 65507, CLIENT)
    assert port.sent() == [b"Ok"]
    assert logged.lines()[-1].endswith("... (65507 bytes in all) from ADDR= ('192.0.2.7', 5000)")


def test_the_server_keeps_answering_after_garbage() -> None:
    port = started()
    for garbage in (b"\x00" * 100, b"\xc3", b"", b"\xff" * 3):
        port.protocol.datagramReceived(garbage, CLIENT)
    port.protocol.datagramReceived(b"still there?", CLIENT)
    assert port.written[-1] == (b"Ok", CLIENT)


@pytest.mark.parametrize("char", ["\u2028", "\u202e", "\u200b", "\ufeff"])
def test_invisible_characters_are_logged_escaped(logged, char: str) -> None:
    port = started()
    port.protocol.datagramReceived(f"I could{char}tell".encode(), CLIENT)
    assert logged.lines()[-1] == (
        f"Server received MESSAGE= I could\\u{ord(char):04x}tell from ADDR= ('192.0.2.7', 5000)"
    )


@given(st.binary(max_size=100))
def test_no_answer_is_ever_longer_than_its_datagram(datagram: bytes) -> None:
    port = started()
    port.protocol.datagramReceived(datagram, CLIENT)
    assert all(len(answer) <= len(datagram) for answer in port.sent())
