"""twistd wiring for udptime: ``twistd -n udptime [--port N] [--utc] [--date-format F]``."""

from __future__ import annotations

import time

from twisted.application.service import MultiService
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python import usage

from labproto import ports
from labproto.udpserver import UDPServerOptions, listening_parameters, udp_service
from labproto.udptime.protocol import (
    DEFAULT_DATE_FORMAT,
    DEFAULT_TIME_FORMAT,
    MAX_TOKEN_LENGTH,
    PADDED_REQUEST_SIZE,
    SEND_DATE,
    SEND_TIME,
    Calendar,
    TimeServerProtocol,
)

log = Logger()

# An answer must fit in a padded request together with a token and its space.
LONGEST_TOKEN_PREFIX = MAX_TOKEN_LENGTH + 1
# Every third day of a year: each month and each weekday, so each name is tried.
_SAMPLE_DAYS = range(0, 366, 3)


class Options(UDPServerOptions):
    """Options of the udptime server."""

    synopsis = (
        "[--port N] [--interface ADDR] [--utc] [--date-format F] [--time-format F] [--quiet]"
        " [--trace]"
    )
    longdesc = (
        "The lab's UDP date/time server: answers SEND_DATE and SEND_TIME "
        "(optionally followed by a token to echo), never with more bytes than "
        "the request. Try it with: labproto time --host THIS-HOST"
    )
    optFlags = [
        ["utc", "u", "Answer in UTC instead of the server's local time."],
        [
            "quiet",
            "q",
            "Do not log each request, so that a benchmark measures the service, not its log.",
        ],
    ]

    optParameters = listening_parameters(ports.UDPTIME) + [
        ["date-format", None, DEFAULT_DATE_FORMAT, "strftime format of SEND_DATE's answer."],
        ["time-format", None, DEFAULT_TIME_FORMAT, "strftime format of SEND_TIME's answer."],
    ]

    def postOptions(self) -> None:
        super().postOptions()
        for name in ("date-format", "time-format"):
            try:
                shown = time.strftime(self[name])
            except ValueError as e:
                raise usage.UsageError(f"--{name} is not a strftime format: {e}") from None
            if not shown:
                raise usage.UsageError(f"--{name} must not make an empty answer")

    def calendar(self) -> Calendar:
        """The date and time formats these options ask for."""
        return Calendar(
            date_format=self["date-format"],
            time_format=self["time-format"],
            utc=self["utc"],
        )


def warn_about_long_answers(calendar: Calendar, when: float) -> None:
    """Log a warning when an answer in the coming year may not fit in a padded request."""
    for command in (SEND_DATE, SEND_TIME):
        size = LONGEST_TOKEN_PREFIX + max(
            len(calendar.show(command, when + day * 86400).encode("utf-8"))
            for day in _SAMPLE_DAYS
        )
        if size > PADDED_REQUEST_SIZE:
            log.warn(
                "Answers to {command} take up to {size} bytes: requests shorter than "
                "that get ERROR, and labproto's client pads its requests to "
                "{padded} bytes only",
                command=command,
                size=size,
                padded=PADDED_REQUEST_SIZE,
            )


def makeService(options: Options) -> MultiService:
    """Serve udptime on the port and interface of options, with its date and time formats."""
    from twisted.internet import reactor

    return build_service(options, reactor)


def build_service(options: Options, clock: IReactorTime) -> MultiService:
    """Serve udptime as options say, reading the time from clock."""
    calendar = options.calendar()
    warn_about_long_answers(calendar, clock.seconds())
    return udp_service(options, TimeServerProtocol(calendar, clock, quiet=bool(options["quiet"])))
