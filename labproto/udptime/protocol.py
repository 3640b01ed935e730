"""The udptime server: SEND_DATE and SEND_TIME answered, never with more bytes than asked."""

from __future__ import annotations

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

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        reply = reply_to(datagram, self.calendar, self.clock.seconds())
        if not self.quiet:
            self.log_request(datagram, addr, reply)
        if reply.answer is not None:
            assert self.transport is not None
            self.transport.write(reply.answer, addr)

    def log_request(self, datagram: bytes, addr: tuple[str, int], reply: Reply) -> None:
        """Log one request, its size, its sender and what the server did with it."""
        self.log.info(
            'Request "{request}" ({size} bytes) from {sender}: {outcome}',
            request=loggable(datagram.rstrip(b" ")),
            size=len(datagram),
            sender=format_address(*addr),
            outcome=reply.outcome,
        )
