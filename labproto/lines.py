"""Line framing shared by the TCP services: LF or CRLF in, CRLF out, and a bounded line length."""

from __future__ import annotations

import os
from typing import Any, cast

from twisted.internet import tcp
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IHalfCloseableProtocol,
    IPushProducer,
)
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

from labproto.text import decode_text, format_address
from labproto.writenow import can_write_now, write_now

DEFAULT_MAX_LINE = 1024
SERVER_LINE_END = b"\r\n"


def line_too_long(max_line: int) -> str:
    """The refusal of a line longer than max_line bytes."""
    return f"ERROR line too long (max {max_line} bytes)"


def describe_peer(address: IAddress) -> str:
    """Show a peer as the lab's Python servers print it, ``('127.0.0.1', 5000)``, if it can."""
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if isinstance(host, str) and isinstance(port, int):
        return format_address(host, port)
    # A UNIX socket's peer has no host and port, and usually no name either.
    name = getattr(address, "name", None)
    return repr(os.fsdecode(name) if name else "local peer")


@implementer(IHalfCloseableProtocol, IPushProducer)
class LineProtocol(LineReceiver):
    """A LineReceiver that keeps the framing rules every labproto TCP service shares.

    A line ends with LF, and one CR before it is dropped, so ``nc``,
    ``telnet`` and ``socat`` all work; the server's own lines end with CRLF.
    A line longer than max_line bytes (without its ending) is refused with
    one error line and thrown away up to its end, and the connection goes
    on: whatever a peer sends, no more than about max_line bytes of it are
    ever held. Subclasses receive each line as text in textReceived().

    A peer that shuts down its sending side (``printf 'q\\n' | nc -N``)
    still gets every answer: the connection closes once they are written.
    Without this, Twisted would close at once and drop the unsent answers.
    """

    delimiter = b"\n"
    # Dropped instead of buffered until its line ends.
    _discarding = False
    # What followed a refused line in the same chunk of data: the next lines.
    _after_long_line = b""
    _following_output = False
    # Whether a line may go straight to the socket (see sendLine).
    _can_write_now = False

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.max_line = max_line
        # One more than max_line, for the CR of a CRLF, which does not count.
        self.MAX_LENGTH = max_line + 1

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
        # LineReceiver keeps what follows the line it is handling in _buffer;
        # after a refused line, what followed it waits in _after_long_line.
        return self.delimiter in self._buffer or self.delimiter in self._after_long_line

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
        # An empty data, from resumeProducing(), goes on to LineReceiver,
        # which then handles the lines it held while paused.
        while True:
            if self._discarding:
                end = data.find(self.delimiter)
                if end < 0:
                    return
                self._discarding = False
                data = data[end + 1 :]
            super().dataReceived(data)
            data, self._after_long_line = self._after_long_line, b""
            if not data or getattr(self.transport, "disconnecting", True):
                return

    def readConnectionLost(self) -> None:
        # An unfinished last line is dropped, like one cut by a lost connection.
        self.hang_up()

    def writeConnectionLost(self) -> None:
        # Nothing more can reach the peer, so there is no point in reading on.
        self.hang_up()

    def lineLengthExceeded(self, line: bytes) -> None:
        # line is what LineReceiver held when it gave up: the start of the
        # long line, and possibly its end and the lines after it.
        end = line.find(self.delimiter)
        if end < 0:
            self._discarding = True
        else:
            self._after_long_line = line[end + 1 :]
        self.send_text(line_too_long(self.max_line))

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.max_line:
            # LineReceiver lets through a line of exactly MAX_LENGTH bytes
            # when it does not end in CR.
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

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.max_line = max_line

    def buildProtocol(self, addr: Any) -> LineProtocol:
        protocol: LineProtocol = self.protocol(self.max_line)
        protocol.factory = self
        return protocol
