"""The udptime server: request parsing, the no-amplification rule, answers and log lines."""

from __future__ import annotations

import calendar
import socket
from collections.abc import Iterator

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from support.fakes import DatagramPort
from twisted.internet import error, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock

from labproto.udpserver import AnsweringPort, udp_service
from labproto.udptime import tap as udptime_tap
from labproto.udptime.protocol import (
    SEND_DATE,
    SEND_TIME,
    Calendar,
    ClockFace,
    TimeRequest,
    TimeServerProtocol,
    answer_to,
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


@pytest.mark.parametrize("char", ["\u2028", "\u202e", "\u200b", "\ufeff"])
def test_invisible_characters_of_a_request_are_logged_escaped(logged, char: str) -> None:
    port = started()
    port.protocol.datagramReceived(f"SEND{char}TIME".encode(), CLIENT)
    assert logged.lines()[-1].startswith(f'Request "SEND\\u{ord(char):04x}TIME" (')


@given(st.binary(max_size=200))
def test_the_server_never_sends_more_bytes_than_the_request_it_answers(datagram: bytes) -> None:
    port = started()
    port.protocol.datagramReceived(datagram, CLIENT)
    assert all(len(answer) <= len(datagram) for answer in port.sent())


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


# The fast path of a quiet server (answer_to, with its answers rendered once
# a second) against the general one (reply_to), which the tests above hold to
# the wire contract.

WORDY = Calendar(date_format="%A %d %B %Y", time_format="%H:%M:%S %Z", utc=True)
CALENDARS = st.sampled_from([UTC, WORDY, Calendar(date_format="%d ééééé", utc=True)])
# Around the lab's moment, around 1970 (where int() and flooring differ) and
# whole seconds anywhere.
MOMENTS = st.one_of(
    st.floats(min_value=WHEN - 2, max_value=WHEN + 2),
    st.floats(min_value=-2, max_value=2),
    st.integers(min_value=-(2**31), max_value=2**32).map(float),
)


def any_case(word: str) -> st.SearchStrategy[bytes]:
    """word with each of its letters in either case."""
    letters = [st.sampled_from(sorted({char.lower(), char.upper()})) for char in word]
    return st.tuples(*letters).map(lambda chars: "".join(chars).encode())


# Pieces of near-requests: each command in mixed case, and misspellings; the
# separators and tokens around the rule's edges; white space that
# bytes.strip() removes, and bytes that it does not (NUL, non-ASCII).
COMMAND = st.sampled_from(
    ["SEND_DATE", "SEND_TIME", "SEND_DATES", "SEND DATE", "SEND_TIM", ""]
).flatmap(any_case)
SEPARATOR = st.sampled_from([b"", b" ", b"  ", b"\t", b"\x0b", b"_"])
TOKEN = st.one_of(
    st.text("abcXYZ0189", max_size=10).map(str.encode),
    st.text("aZ09-é ", max_size=10).map(str.encode),
    st.binary(max_size=10),
)
SPACE = st.lists(
    st.sampled_from([b" ", b"\t", b"\r", b"\n", b"\x0b", b"\x0c", b"\x00", b"\xa0"]),
    max_size=70,
).map(b"".join)
NEAR_REQUESTS = st.builds(
    lambda before, command, separator, token, after: before + command + separator + token + after,
    SPACE,
    COMMAND,
    SEPARATOR,
    TOKEN,
    SPACE,
)


@given(st.one_of(NEAR_REQUESTS, st.binary(max_size=80)), CALENDARS, MOMENTS)
def test_the_fast_path_answers_every_datagram_as_the_general_one_does(
    datagram: bytes, cal: Calendar, when: float
) -> None:
    assert answer_to(datagram, ClockFace(cal), when) == reply_to(datagram, cal, when).answer


@given(st.lists(st.tuples(NEAR_REQUESTS, MOMENTS), max_size=20), CALENDARS)
def test_one_clock_face_asked_again_and_again_answers_as_the_general_path(
    requests: list[tuple[bytes, float]], cal: Calendar
) -> None:
    face = ClockFace(cal)
    for datagram, when in requests:
        assert answer_to(datagram, face, when) == reply_to(datagram, cal, when).answer


def test_a_clock_face_shows_the_new_time_once_the_clocks_second_changes() -> None:
    face = ClockFace(UTC)
    assert face.show(SEND_TIME, WHEN + 0.999) == b"04:06:21"
    assert face.show(SEND_TIME, WHEN + 1) == b"04:06:22"
    assert face.show(SEND_TIME, WHEN + 0.5) == b"04:06:21"


def test_a_clock_face_shows_the_new_date_at_midnight() -> None:
    face = ClockFace(UTC)
    midnight = calendar.timegm((2023, 2, 3, 0, 0, 0))
    assert face.show(SEND_DATE, midnight - 0.001) == b"02/02/23"
    assert face.show(SEND_TIME, midnight - 0.001) == b"23:59:59"
    assert face.show(SEND_DATE, midnight) == b"03/02/23"
    assert face.show(SEND_TIME, midnight) == b"00:00:00"


def test_a_clock_face_floors_a_time_before_1970_as_gmtime_does() -> None:
    # int() would take -0.5 for the second 0, whose answer is 00:00:00.
    face = ClockFace(UTC)
    assert face.show(SEND_TIME, 0.25) == b"00:00:00"
    assert face.show(SEND_TIME, -0.5) == b"23:59:59"


def test_a_clock_face_renders_each_answer_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered: list[float] = []
    real = Calendar.show

    def counted(self: Calendar, command: str, when: float) -> str:
        rendered.append(when)
        return real(self, command, when)

    monkeypatch.setattr(Calendar, "show", counted)
    face = ClockFace(UTC)
    for offset in (0.0, 0.3, 0.9):
        face.show(SEND_TIME, WHEN + offset)
        face.show(SEND_DATE, WHEN + offset)
    face.show(SEND_TIME, WHEN + 1.2)
    assert rendered == [WHEN, WHEN, WHEN + 1.2]


@pytest.mark.parametrize("clock_start", [WHEN, WHEN + 0.999])
def test_a_quiet_server_answers_the_new_second_as_the_clock_moves(clock_start: float) -> None:
    clock = Clock()
    clock.advance(clock_start)
    port = DatagramPort().attach(TimeServerProtocol(UTC, clock, quiet=True))
    port.protocol.datagramReceived(b"SEND_TIME 1", CLIENT)
    clock.advance(1)
    port.protocol.datagramReceived(b"SEND_TIME 2", CLIENT)
    assert port.sent() == [b"1 04:06:21", b"2 04:06:22"]


DIALOGUE = [
    b"SEND_DATE",
    b"send_time",
    b"  Send_Time\r\n",
    b"SEND_TIME 17",
    b"SEND_DATE aZ09bY87".ljust(64),
    b"SEND_TIME  17",
    b"SEND_TIME 123456789",
    b"SEND_TIME \xc3\xa9",
    b"HELLO",
    b"hi",
    b"",
    b"SEND_DATE\x00",
]


@pytest.mark.parametrize("cal", [UTC, WORDY])
def test_quiet_and_logging_servers_send_the_same_answers(cal: Calendar) -> None:
    sent = []
    for quiet in (False, True):
        clock = Clock()
        clock.advance(WHEN)
        port = DatagramPort().attach(TimeServerProtocol(cal, clock, quiet=quiet))
        for datagram in DIALOGUE:
            port.protocol.datagramReceived(datagram, CLIENT)
            clock.advance(0.4)
        sent.append(port.written)
    assert sent[0] == sent[1]
    assert len(sent[0]) == len(DIALOGUE) - 2  # "hi" and "" get no answer


# The port the UDP services listen on: it checks a host once, then sends to it
# straight away, as Twisted's port does after checking it each time.


class Recorder(DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[str, int]]] = []

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        self.received.append((datagram, addr))


@pytest.fixture
def peer() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        yield sock


@pytest_twisted.ensureDeferred
async def test_the_port_sends_to_a_host_again_and_refuses_a_host_name(peer: socket.socket) -> None:
    port = AnsweringPort(0, Recorder(), "127.0.0.1", reactor=reactor)
    port.startListening()
    try:
        address = peer.getsockname()
        for datagram in (b"one", b"two", b"three"):
            port.write(datagram, address)
        assert [peer.recv(100) for _ in range(3)] == [b"one", b"two", b"three"]
        for refused in (("localhost", address[1]), ("::1", address[1])):
            with pytest.raises(error.InvalidAddressError):
                port.write(b"four", refused)
        with pytest.raises(error.MessageLengthError):
            port.write(b"x" * 70000, address)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_the_port_remembers_a_bounded_number_of_hosts(peer: socket.socket) -> None:
    port = AnsweringPort(0, Recorder(), "127.0.0.1", reactor=reactor)
    port.startListening()
    try:
        for last in range(AnsweringPort.MAX_CHECKED_HOSTS + 10):
            # 127.0.0.0/8 is all loopback, so each of these hosts exists and differs.
            port.write(b"", (f"127.0.{last // 250}.{last % 250 + 1}", peer.getsockname()[1]))
        assert 0 < len(port._checked_hosts) <= AnsweringPort.MAX_CHECKED_HOSTS
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_udp_service_listens_on_an_answering_port(peer: socket.socket) -> None:
    options = udptime_tap.Options()
    options.parseOptions(["--port", "0", "--interface", "127.0.0.1", "--utc", "--quiet"])
    clock = Clock()
    clock.advance(WHEN)
    (server,) = list(udp_service(options, TimeServerProtocol(UTC, clock, quiet=True)))
    server.privilegedStartService()
    try:
        port = server._port
        assert isinstance(port, AnsweringPort)
        for request in (b"SEND_TIME", b"SEND_DATE 7".ljust(64)):
            # Loopback delivers the datagram within sendto: it waits to be read.
            peer.sendto(request, ("127.0.0.1", port.getHost().port))
            port.doRead()
        assert [peer.recv(100) for _ in range(2)] == [b"04:06:21", b"7 02/02/23"]
    finally:
        await server.stopService()
