"""Line framing shared by the TCP services: LF or CRLF in, CRLF out, and a bounded line length."""

from __future__ import annotations

import contextlib
import ipaddress
import os
from typing import Any, cast

from twisted.internet import tcp
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IHalfCloseableProtocol,
    IPushProducer,
    IReactorTime,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from labproto.text import decode_text, format_address
from labproto.writenow import can_write_now, write_now

_log = Logger()

DEFAULT_MAX_LINE = 1024
SERVER_LINE_END = b"\r\n"


def line_too_long(max_line: int) -> str:
    """The refusal of a line longer than max_line bytes."""
    return f"ERROR line too long (max {max_line} bytes)"


def peer_host(address: IAddress) -> str | None:
    """The address a peer connects from (``'10.0.0.7'``), or None where it has none (UNIX)."""
    host = getattr(address, "host", None)
    if not isinstance(host, str):
        return None
    # An IPv4 client of an IPv6 listener (tcp6:) is the same host as on an IPv4 one.
    if host.startswith("::ffff:"):
        with contextlib.suppress(ValueError):
            mapped = ipaddress.IPv6Address(host).ipv4_mapped
            if mapped is not None:
                return str(mapped)
    return host


def describe_peer(address: IAddress) -> str:
    """Show a peer as the lab's Python servers print it, ``('127.0.0.1', 5000)``, if it can."""
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if isinstance(host, str) and isinstance(port, int):
        return format_address(host, port)
    # A UNIX socket's peer has no host and port, and usually no name either.
    name = getattr(address, "name", None)
    return repr(os.fsdecode(name) if name else "local peer")


# The most lines of one connection handled in one turn of the reactor. A
# peer can send 65536 empty lines in one 64 KiB chunk; handled at once, they
# would hold up every other connection (and a node's link to Redis) for a
# tenth of a second a chunk. Past this many, the connection stops reading
# until the next turn, and the peer waits on TCP's flow control instead.
LINES_PER_TURN = 256

# Why a connection is not being read: its output waits for the peer (it is
# the transport's producer), its lines of this turn are spent, or it stopped.
_OUTPUT_WAITS = "output waits"
_TURN_SPENT = "turn spent"
_STOPPED = "stopped"


@implementer(IHalfCloseableProtocol, IPushProducer)
class LineProtocol(Protocol):
    """A line protocol that keeps the framing rules every labproto TCP service shares.

    A line ends with LF, and one CR before it is dropped, so ``nc``,
    ``telnet`` and ``socat`` all work; the server's own lines end with CRLF.
    A line longer than max_line bytes (without its ending) is refused with
    one error line and thrown away up to its end, and the connection goes
    on: whatever a peer sends, no more than one chunk of it (what a single
    read returns) and about max_line bytes of an unfinished line are ever
    held. Subclasses receive each line as text in textReceived().

    The framing is done here, not by Twisted's LineReceiver, so that a
    chunk is split once (LineReceiver copies the rest of the chunk for
    each line: a chunk of 65536 empty lines costs it gigabytes of copying)
    and at most LINES_PER_TURN lines of one connection are handled per turn.

    A peer that shuts down its sending side (``printf 'q\\n' | nc -N``)
    still gets every answer: the connection closes once they are written.
    Without this, Twisted would close at once and drop the unsent answers.
    """

    delimiter = b"\n"
    # The clock that resumes a connection whose lines of the turn are spent;
    # LineServerFactory sets it.
    clock: IReactorTime | None = None
    _following_output = False
    # Whether a line may go straight to the socket (see sendLine).
    _can_write_now = False

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.max_line = max_line
        # The start of a line whose end has not come yet.
        self._partial = b""
        # Dropping what is left of a line refused for its length.
        self._discarding = False
        # Whole lines read and not handled yet, each ending with LF, from _next on.
        self._waiting = b""
        self._next = 0
        self._handling = False
        self._paused_by: set[str] = set()

    def textReceived(self, text: str) -> None:
        """Called with each line, decoded from UTF-8 with its line ending removed."""
        raise NotImplementedError

    def makeConnection(self, transport: Any) -> None:
        self._can_write_now = can_write_now(transport)
        super().makeConnection(transport)

    def send_text(self, text: str) -> None:
        """Send text to the peer as one line ending in CRLF."""
        self.sendLine(text.encode("utf-8"))

    def sendLine(self, line: bytes) -> None:
        """Send line, bytes without their ending, to the peer, ended with CRLF."""
        assert self.transport is not None
        # A client that waits for each answer before it sends its next line
        # (the usual dialogue, and a closed-loop benchmark) has its answer
        # sent at once, not on the reactor's next turn: that saves two
        # epoll_ctl calls and a trip through the reactor per line (see
        # labproto.writenow, which keeps the bytes in order and Twisted's
        # flow control as it was). The answers to several lines of one chunk
        # still go out in one send: only the last of them is written now, and
        # write_now() leaves it after the others, in Twisted's buffer.
        if self._can_write_now and not self._more_lines_in_chunk():
            write_now(cast(tcp.Connection, self.transport), line + SERVER_LINE_END)
        else:
            self.transport.write(line + SERVER_LINE_END)

    def _more_lines_in_chunk(self) -> bool:
        return self._next < len(self._waiting)

    def peer(self) -> str:
        """The peer of this connection, as the lab's servers log it."""
        assert self.transport is not None
        return describe_peer(self.transport.getPeer())

    def _follow_output(self) -> None:
        # The connection pauses this protocol, and so stops reading the
        # peer, while more of its answers wait to be sent than the socket
        # buffers take: a peer that sends and never reads cannot make the
        # server hold its answers without limit. Not from the start but from
        # the peer's first bytes: over TLS, an answer written before the
        # handshake ends would pause the reading that the handshake needs.
        cast(IConsumer, self.transport).registerProducer(self, True)
        self._following_output = True

    def hang_up(self) -> None:
        """Close the connection once every answer has been written."""
        assert self.transport is not None
        if self._following_output:
            # Twisted's TLS ends a connection only once no producer is left.
            self._following_output = False
            cast(IConsumer, self.transport).unregisterProducer()
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if data and not self._following_output:
            self._follow_output()
        self._split(data)
        self._handle_lines()

    def _split(self, data: bytes) -> None:
        """Add the whole lines of data to those waiting, and keep the start of the next."""
        if self._discarding:
            end = data.find(self.delimiter)
            if end < 0:
                return
            self._discarding = False
            data = data[end + 1 :]
        if self.delimiter not in data:
            partial, whole = self._partial + data, b""
        else:
            data = self._partial + data
            end = data.rfind(self.delimiter) + 1
            whole, partial = data[:end], data[end:]
        # One more than max_line, for the CR of a CRLF, which does not count.
        if len(partial) > self.max_line + 1:
            # Refused now, without waiting for its end: its start, too long
            # for a line, waits among the lines, and is refused in its turn.
            whole += partial[: self.max_line + 2] + self.delimiter
            partial = b""
            self._discarding = True
        self._partial = partial
        if whole:
            waiting = self._waiting[self._next :]
            self._waiting = waiting + whole if waiting else whole
            self._next = 0

    def _handle_lines(self) -> None:
        """Handle the waiting lines, up to LINES_PER_TURN, unless reading is paused."""
        if self._handling:
            # Resumed from within a line's own handling: the loop below goes on.
            return
        self._handling = True
        try:
            budget = LINES_PER_TURN
            while self._next < len(self._waiting) and not self._paused_by:
                if getattr(self.transport, "disconnecting", True):
                    # Closing: nothing more the peer sent is answered.
                    self._waiting, self._next = b"", 0
                    return
                if not budget:
                    self._spend_turn()
                    return
                budget -= 1
                start = self._next
                end = self._waiting.index(self.delimiter, start)
                self._next = end + 1
                self.lineReceived(self._waiting[start:end])
            if self._next == len(self._waiting):
                self._waiting, self._next = b"", 0
        finally:
            self._handling = False

    def _spend_turn(self) -> None:
        """Stop reading until the reactor's next turn, when the lines waiting go on."""
        clock = self.clock
        if clock is None:
            from twisted.internet import reactor as clock
        assert clock is not None
        self._pause_reading_for(_TURN_SPENT)
        clock.callLater(0, self._resume_reading_for, _TURN_SPENT)

    def _pause_reading_for(self, why: str) -> None:
        if not self._paused_by and self.transport is not None:
            cast(IPushProducer, self.transport).pauseProducing()
        self._paused_by.add(why)

    def _resume_reading_for(self, why: str) -> None:
        if why not in self._paused_by:
            return
        self._paused_by.discard(why)
        # A connection lost meanwhile has nothing more to read or answer.
        transport = self.transport
        if self._paused_by or not getattr(transport, "connected", False):
            return
        if not getattr(transport, "disconnecting", True):
            cast(IPushProducer, transport).resumeProducing()
        try:
            self._handle_lines()
        except Exception:
            # Not called from the transport, which would log it and close the
            # connection: a peer must not wait for ever on lines never answered.
            _log.failure("Handling the lines of {peer}", peer=self.peer())
            cast(ITCPTransport, transport).abortConnection()

    @property
    def held_bytes(self) -> int:
        """How many bytes read from the peer wait here: the unfinished line's and the lines'."""
        return len(self._partial) + len(self._waiting) - self._next

    @property
    def paused(self) -> bool:
        """Whether the connection is not being read, for whatever reason."""
        return bool(self._paused_by)

    def pauseProducing(self) -> None:
        """The connection's output waits for the peer: stop reading it meanwhile."""
        self._pause_reading_for(_OUTPUT_WAITS)

    def resumeProducing(self) -> None:
        """The peer has read: read it again, and handle the lines that waited."""
        self._resume_reading_for(_OUTPUT_WAITS)

    def stopProducing(self) -> None:
        """The connection is closing: read nothing more."""
        self._paused_by.add(_STOPPED)
        if self.transport is not None:
            cast(IPushProducer, self.transport).stopProducing()

    def readConnectionLost(self) -> None:
        # An unfinished last line is dropped, like one cut by a lost connection.
        self.hang_up()

    def writeConnectionLost(self) -> None:
        # Nothing more can reach the peer, so there is no point in reading on.
        self.hang_up()

    def lineReceived(self, line: bytes) -> None:
        """Handle one line without its LF: refuse it for its length, or pass it on as text."""
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.max_line:
            self.send_text(line_too_long(self.max_line))
            return
        self.textReceived(decode_text(line))


class LineServerFactory(Factory):
    """The factory of a TCP line service: it gives each connection's protocol the line limit.

    Subclasses name their protocol, a LineProtocol, in the protocol attribute.
    """

    # Twisted's "Starting factory <... object at 0x...>" tells a reader
    # nothing that the service's own "listening on" line does not.
    noisy = False
    protocol: Any
    # The clock of the protocols' turns; None for the global reactor.
    clock: IReactorTime | None = None

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.max_line = max_line

    def buildProtocol(self, addr: Any) -> LineProtocol:
        protocol: LineProtocol = self.protocol(self.max_line)
        protocol.factory = self
        protocol.clock = self.clock
        return protocol
