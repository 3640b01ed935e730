"""The udptime server: request parsing, the no-amplification rule, answers and log lines."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fakes import DatagramPort
from twisted.internet.task import Clock

from labproto.udptime import tap as udptime_tap
from labproto.udptime.protocol import (
    Calendar,
    TimeRequest,
    TimeServerProtocol,
    parse_request,
    reply_to,
)

CLIENT = ("192.0.2.7", 5000)
# 2023-02-02 04:06:21 UTC, the moment of the lab's own screenshot.
WHEN = calendar.timegm((2023, 2, 2, 4, 6, 21))
UTC = Calendar(utc=True)


def answer(datagram: bytes, cal: Calendar = UTC) -> bytes | None:
    return reply_to(datagram, cal, WHEN).answer


@pytest.mark.parametrize(
    ("datagram", "parsed"),
    [
        (b"SEND_DATE", TimeRequest("SEND_DATE")),
        (b"send_time", TimeRequest("SEND_TIME")),
        (b"  Send_Time\r\n", TimeRequest("SEND_TIME")),
        (b"SEND_TIME 17", TimeRequest("SEND_TIME", "17")),
        (b"SEND_DATE aZ09bY87" + b" " * 40, TimeRequest("SEND_DATE", "aZ09bY87")),
    ],
)
def test_requests_parse_in_any_case_with_padding_and_tokens(
    datagram: bytes, parsed: TimeRequest
) -> None:
    assert parse_request(datagram) == parsed


@pytest.mark.parametrize(
    "datagram",
    [
        b"SEND_DATES",
        b"SEND_TIME  17",  # a token follows exactly one space
        b"SEND_TIME 123456789",  # tokens are 1-8 characters
        b"SEND_TIME 1-2",
        b"SEND_TIME \xc3\xa9",
        b"SEND DATE",
        b"",
    ],
)
def test_other_datagrams_are_not_requests(datagram: bytes) -> None:
    assert parse_request(datagram) is None


def test_send_date_answers_the_date_in_the_lab_format() -> None:
    assert answer(b"SEND_DATE") == b"02/02/23"


def test_send_time_answers_hh_mm_ss() -> None:
    assert answer(b"send_time") == b"04:06:21"


def test_a_token_starts_the_answer() -> None:
    assert answer(b"SEND_TIME 17") == b"17 04:06:21"


def test_local_time_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    local = Calendar()
    monkeypatch.setattr("time.localtime", lambda when: (2001, 9, 9, 1, 46, 40, 6, 252, 0))
    assert answer(b"SEND_TIME", local) == b"01:46:40"


def test_formats_are_configurable() -> None:
    iso = Calendar(date_format="%Y-%m-%d", time_format="%H.%M", utc=True)
    assert answer(b"SEND_DATE   ", iso) == b"2023-02-02"
    assert answer(b"SEND_TIME", iso) == b"04.06"


def test_unknown_requests_of_five_bytes_or_more_get_error() -> None:
    assert answer(b"HELLO") == b"ERROR"
    assert answer(b"\xff\xfe\x00garbage") == b"ERROR"


def test_unknown_requests_shorter_than_error_get_no_answer() -> None:
    for datagram in (b"", b"a", b"HELP"):
        assert answer(datagram) is None


def test_an_answer_longer_than_its_request_is_refused() -> None:
    wordy = Calendar(date_format="%A %d %B %Y", utc=True)  # "Thursday 02 February 2023"
    assert answer(b"SEND_DATE", wordy) == b"ERROR"
    assert answer(b"SEND_DATE".ljust(64), wordy) == b"Thursday 02 February 2023"


def test_a_non_ascii_answer_is_measured_in_bytes() -> None:
    accented = Calendar(date_format="%d ééééé", utc=True)
    # "02 ééééé" is 8 characters, fewer than "SEND_DATE" has, but 13 bytes.
    assert answer(b"SEND_DATE", accented) == b"ERROR"
    assert answer(b"SEND_DATE    ", accented) == "02 ééééé".encode()


@given(st.binary(max_size=200))
def test_no_answer_is_ever_longer_than_its_request(datagram: bytes) -> None:
    reply = reply_to(datagram, UTC, WHEN)
    assert reply.answer is None or len(reply.answer) <= len(datagram)


@given(st.sampled_from(["send_date", "SEND_TIME", "Send_Date"]),
       st.text("abcXYZ0189", min_size=1, max_size=8),
       st.text(" \t\r\n", max_size=60))
def test_every_padded_tokened_request_gets_its_token_back(
    command: str, token: str, padding: str
) -> None:
    datagram = f"{padding}{command} {token}{padding}".ljust(64).encode()
    reply = answer(datagram)
    assert reply is not None and reply.startswith(token.encode() + b" ")


def started() -> DatagramPort:
    return DatagramPort().attach(TimeServerProtocol(UTC, Clock()))


def test_the_server_answers_the_sender_with_the_clock_time() -> None:
    clock = Clock()
    clock.advance(WHEN)
    port = DatagramPort().attach(TimeServerProtocol(UTC, clock))
    port.protocol.datagramReceived(b"SEND_TIME 9", CLIENT)
    assert port.written == [(b"9 04:06:21", CLIENT)]


def test_the_server_logs_each_request_its_sender_and_outcome(logged) -> None:
    port = started()
    port.protocol.datagramReceived(b"SEND_DATE 3".ljust(64), CLIENT)
    port.protocol.datagramReceived(b"\x1b[31mhi", CLIENT)
    port.protocol.datagramReceived(b"hi", CLIENT)
    assert logged.lines()[-3:] == [
        "Request \"SEND_DATE 3\" (64 bytes) from ('192.0.2.7', 5000): answered 3 01/01/70",
        "Request \"\\x1b[31mhi\" (7 bytes) from ('192.0.2.7', 5000): "
        "answered ERROR: not SEND_DATE or SEND_TIME",
        "Request \"hi\" (2 bytes) from ('192.0.2.7', 5000): "
        "not answered: not a request, and too short for ERROR",
    ]
    assert port.sent() == [b"3 01/01/70", b"ERROR"]


def test_start_logs_the_port_it_listens_on(logged) -> None:
    started()
    assert logged.lines() == ["udptime listening on UDP 0.0.0.0:4321"]


def served_by_twistd(*argv: str) -> DatagramPort:
    """A port served by the protocol that ``twistd udptime argv`` would run."""
    options = udptime_tap.Options()
    options.parseOptions(list(argv))
    (server,) = list(udptime_tap.build_service(options, Clock()))
    return DatagramPort().attach(server.args[1])


@pytest.mark.parametrize("flag", ["--quiet", "-q"])
def test_quiet_logs_no_request_and_still_answers(logged, flag: str) -> None:
    port = served_by_twistd(flag, "--utc")
    port.protocol.datagramReceived(b"SEND_DATE", CLIENT)
    port.protocol.datagramReceived(b"HELLO", CLIENT)
    assert port.sent() == [b"01/01/70", b"ERROR"]
    assert not [line for line in logged.lines() if line.startswith("Request ")]


def test_without_quiet_each_request_is_logged(logged) -> None:
    port = served_by_twistd("--utc")
    port.protocol.datagramReceived(b"SEND_DATE", CLIENT)
    assert port.sent() == [b"01/01/70"]
    assert [line for line in logged.lines() if line.startswith("Request ")] == [
        "Request \"SEND_DATE\" (9 bytes) from ('192.0.2.7', 5000): answered 01/01/70"
    ]
