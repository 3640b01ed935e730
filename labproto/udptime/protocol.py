"""The udptime server: SEND_DATE and SEND_TIME answered, never with more bytes than asked."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

from labproto.text import format_address, loggable
from labproto.udpserver import UDPServerProtocol

SEND_DATE = "SEND_DATE"
SEND_TIME = "SEND_TIME"
ERROR = b"ERROR"

DEFAULT_DATE_FORMAT = "%d/%m/%y"
DEFAULT_TIME_FORMAT = "%H:%M:%S"

# A client may add a token of up to this many letters and digits, which the
# answer echoes, so that it can tell a late answer from the current one.
MAX_TOKEN_LENGTH = 8
# The labproto client pads every request with spaces to this size, to leave
# room for answers longer than the bare request.
PADDED_REQUEST_SIZE = 64

# The command in any case, then optionally one space and a token.
_REQUEST = re.compile(
    rb"(?i:(SEND_DATE|SEND_TIME))(?: ([A-Za-z0-9]{1,%d}))?" % MAX_TOKEN_LENGTH
)


@dataclass(frozen=True)
class TimeRequest:
    """A well-formed request: which command, and the client's token if it sent one."""

    command: str
    token: str | None = None


def parse_request(datagram: bytes) -> TimeRequest | None:
    """Parse a request datagram, ignoring surrounding white space; None if it is not one."""
    match = _REQUEST.fullmatch(datagram.strip())
    if match is None:
        return None
    command, token = match.groups()
    return TimeRequest(
        command=command.decode("ascii").upper(),
        token=None if token is None else token.decode("ascii"),
    )


@dataclass(frozen=True)
class Calendar:
    """How the server shows the date and the time: strftime formats and the time zone."""

    date_format: str = DEFAULT_DATE_FORMAT
    time_format: str = DEFAULT_TIME_FORMAT
    utc: bool = False

    def show(self, command: str, when: float) -> str:
        """Render the date (SEND_DATE) or the time (SEND_TIME) of the POSIX time when."""
        moment = time.gmtime(when) if self.utc else time.localtime(when)
        fmt = self.date_format if command == SEND_DATE else self.time_format
        return time.strftime(fmt, moment)


class ClockFace:
    """A calendar's answers as UTF-8 bytes, each rendered once per second of the clock.

    A busy server gets many requests in the same second, and rendering the
    date or time (localtime and strftime) costs more than the rest of an
    answer. time.localtime and time.gmtime floor the POSIX time to a whole
    second, and strftime shows nothing finer, so every moment of the same
    floored second shows the same text: kept for that second and command,
    an answer is the one Calendar.show would render again. (int() would
    not do: it rounds the times before 1970 towards zero, not down.)
    """

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self._second: int | None = None
        # The answers rendered in self._second, by command.
        self._shown: dict[str, bytes] = {}

    def show(self, command: str, when: float) -> bytes:
        """calendar.show(command, when), encoded as UTF-8."""
        second = math.floor(when)
        if second != self._second:
            self._second = second
            self._shown = {}
        shown = self._shown.get(command)
        if shown is None:
            shown = self._shown[command] = self.calendar.show(command, when).encode("utf-8")
        return shown


@dataclass(frozen=True)
class Reply:
    """What the server sends back (None: nothing) and why, for its log."""

    answer: bytes | None
    outcome: str


def reply_to(datagram: bytes, calendar: Calendar, when: float) -> Reply:
    """Decide the answer to one datagram received at the POSIX time when.

    No answer is longer than the datagram that caused it, so that nobody can
    use the service to amplify traffic towards a forged sender address.
    """
    request = parse_request(datagram)
    if request is None:
        if len(datagram) < len(ERROR):
            return Reply(None, "not answered: not a request, and too short for ERROR")
        return Reply(ERROR, "answered ERROR: not SEND_DATE or SEND_TIME")
    answer = calendar.show(request.command, when)
    if request.token is not None:
        answer = f"{request.token} {answer}"
    encoded = answer.encode("utf-8")
    if len(encoded) > len(datagram):
        return Reply(
            ERROR,
            f"answered ERROR: the {len(encoded)}-byte answer is longer than the request"
            " (a client makes room by padding its request with spaces)",
        )
    return Reply(encoded, f"answered {answer}")


# The commands as the fast path below looks them up, upper-cased: bytes.upper()
# changes ASCII letters only, just as IGNORECASE matches in a bytes regex.
_COMMANDS = {command.encode("ascii"): command for command in (SEND_DATE, SEND_TIME)}
_COMMAND_LENGTH = len(SEND_DATE)  # SEND_TIME's too
_SPACE = ord(" ")


def answer_to(datagram: bytes, face: ClockFace, when: float) -> bytes | None:
    """reply_to(datagram, face.calendar, when).answer, at a fraction of its cost.

    It exists for a quiet server, which needs the answer but not the words
    of a log line: it reads the request without the regex, builds no
    TimeRequest or Reply, and takes the rendered date or time from face.
    It accepts exactly what _REQUEST accepts in the same stripped bytes: a
    9-byte command in any ASCII case, then nothing, or one space and 1 to
    MAX_TOKEN_LENGTH ASCII letters or digits (bytes.isalnum() takes ASCII
    only); the tests hold its answers to reply_to's on arbitrary datagrams.
    """
    request = datagram.strip()
    size = len(request)
    # What the answer starts with: the token and a space, if there is a token.
    prefix = b""
    if size == _COMMAND_LENGTH:
        command = _COMMANDS.get(request.upper())
    elif (
        _COMMAND_LENGTH + 2 <= size <= _COMMAND_LENGTH + 1 + MAX_TOKEN_LENGTH
        and request[_COMMAND_LENGTH] == _SPACE
        and request[_COMMAND_LENGTH + 1 :].isalnum()
    ):
        command = _COMMANDS.get(request[:_COMMAND_LENGTH].upper())
        prefix = request[_COMMAND_LENGTH + 1 :] + b" "
    else:
        command = None
    if command is None:
        return None if len(datagram) < len(ERROR) else ERROR
    answer = prefix + face.show(command, when)
    return ERROR if len(answer) > len(datagram) else answer


class TimeServerProtocol(UDPServerProtocol):
    """Answer date and time requests, logging each request, its sender and the outcome.

    A quiet server logs nothing per datagram (twistd's ``--quiet``), so that
    a benchmark measures the service rather than its log.
    """

    service_name = "udptime"

    def __init__(self, calendar: Calendar, clock: IReactorTime, quiet: bool = False) -> None:
        self.calendar = calendar
        self.clock = clock
        self.quiet = quiet
        self.face = ClockFace(calendar)

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        when = self.clock.seconds()
        if self.quiet:
            # No log line to word: the fast path, which gives the same answer.
            answer = answer_to(datagram, self.face, when)
        else:
            reply = reply_to(datagram, self.calendar, when)
            self.log_request(datagram, addr, reply)
            answer = reply.answer
        if answer is not None:
            assert self.transport is not None
            self.transport.write(answer, addr)

    def log_request(self, datagram: bytes, addr: tuple[str, int], reply: Reply) -> None:
        """Log one request, its size, its sender and what the server did with it."""
        self.log.info(
            'Request "{request}" ({size} bytes) from {sender}: {outcome}',
            request=loggable(datagram.rstrip(b" ")),
            size=len(datagram),
            sender=format_address(*addr),
            outcome=reply.outcome,
        )
