"""labchat over TCP: each connection a line protocol carrying one ChatSession.

The factory holds what every connection shares: the room (the registry of
users), the per-user limits and the clock.
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Any, cast

from twisted.internet import abstract, tcp
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from labproto.chat import wire
from labproto.chat.limits import UserLimits
from labproto.chat.room import ChatRoom
from labproto.chat.session import ChatSession, IChatConnection
from labproto.lines import LineProtocol, LineServerFactory
from labproto.writenow import write_now

# What a Twisted connection holds unsent before it pauses its producer: the
# bufferSize of twisted.internet.abstract.FileDescriptor.
UNSENT_WHEN_PAUSED = abstract.FileDescriptor.bufferSize
# How long a closing connection gets to deliver its last lines to a peer
# that does not read them, before it is cut: a closed connection must not
# hold a file and the kernel's buffers for ever.
CLOSING_GRACE = 10.0


@implementer(IChatConnection)
class ChatProtocol(LineProtocol):
    """One TCP user: lines in to its session, the room's bytes out, and its send queue watched.

    While the connection keeps up, each line goes straight to it. Once its
    buffer is full (more than UNSENT_WHEN_PAUSED bytes), the connection
    pauses this protocol, and the lines for this user wait in a backlog of
    its own, counted to the byte; when the connection has drained and
    resumes it, the backlog feeds it again until it is full. A backlog that
    passes --sendq (less what the connection holds) cuts the connection at
    once: the server never holds more than --sendq bytes for one user, and
    nobody else waits for that user.
    """

    factory: ChatFactory
    session: ChatSession
    _output_paused = False
    # Created at the first pause: most users never need one.
    _backlog: deque[bytes] | None = None
    _backlog_bytes = 0
    _cut_off = False
    _lost_reason = wire.CONNECTION_LOST
    _closing_deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        # A chat line should leave at once, not wait for the acknowledgement
        # of the one before (Nagle's algorithm against delayed ACKs: 40 ms).
        with contextlib.suppress(AttributeError, OSError):  # UNIX sockets have no Nagle
            cast(ITCPTransport, self.transport).setTcpNoDelay(True)
        factory = self.factory
        self.session = ChatSession(
            factory.room, self, self.peer(), factory.limits, factory.clock
        )
        self.session.start()

    def dataReceived(self, data: bytes) -> None:
        # The lines of this turn, from every connection, go out together.
        self.factory.room.hold()
        super().dataReceived(data)

    def textReceived(self, text: str) -> None:
        self.session.line_received(text)

    def readConnectionLost(self) -> None:
        # The user can send nothing more, so is no longer in the room; what
        # the server still has for them goes out before the connection closes.
        self.session.input_ended()
        self.close()

    def writeConnectionLost(self) -> None:
        self.session.input_ended()
        self.close()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # A crowd leaving at once (a network cut, say) is one broadcast a turn too.
        self.factory.room.hold()
        if self._closing_deadline is not None and self._closing_deadline.active():
            self._closing_deadline.cancel()
        self._backlog = None
        # Nothing can be sent any more: what the room still hands this
        # member as it leaves (its catch-up) is dropped, not queued.
        self._output_paused = self._cut_off = True
        self.session.connection_lost(self._lost_reason)

    def send(self, line: bytes) -> None:
        if not self._output_paused:
            # Straight to the socket when nothing waits (see labproto.writenow).
            if self._can_write_now:
                write_now(cast(tcp.Connection, self.transport), line)
            else:
                assert self.transport is not None
                self.transport.write(line)
            return
        if self._cut_off:
            return
        assert self._backlog is not None
        self._backlog.append(line)
        self._backlog_bytes += len(line)
        if self._backlog_bytes + UNSENT_WHEN_PAUSED > self.factory.limits.sendq:
            self._cut_off_slow_reader()

    def close(self) -> None:
        if self._closing_deadline is not None:
            return
        # The backlog would never be sent once this protocol is no longer
        # the connection's producer: the connection's buffer takes it now.
        assert self.transport is not None
        while self._backlog and not self._cut_off:
            self.transport.write(self._backlog.popleft())
        self._backlog_bytes = 0
        # Once cut off, nothing more is written, closing or not.
        self._output_paused = self._cut_off
        self._closing_deadline = self.factory.clock.callLater(CLOSING_GRACE, self.abort)
        self.hang_up()

    def abort(self) -> None:
        cast(ITCPTransport, self.transport).abortConnection()

    def pauseProducing(self) -> None:
        if not self._output_paused:
            self._output_paused = True
            if self._backlog is None:
                self._backlog = deque()
        super().pauseProducing()

    def resumeProducing(self) -> None:
        if self._cut_off:
            return
        self._output_paused = False
        backlog = self._backlog
        assert self.transport is not None
        # Each write may fill the connection again, which pauses this
        # protocol; the rest of the backlog waits for the next resume.
        while backlog and not self._output_paused:
            line = backlog.popleft()
            self._backlog_bytes -= len(line)
            self.transport.write(line)
        if not self._output_paused:
            super().resumeProducing()

    def _cut_off_slow_reader(self) -> None:
        self._cut_off = True
        self._lost_reason = wire.SEND_QUEUE_EXCEEDED
        self._backlog = None
        self._backlog_bytes = 0
        # The session leaves the room when the connection is lost, a moment
        # later: never in the middle of the broadcast that got here.
        self.abort()


class ChatFactory(LineServerFactory):
    """Makes a ChatProtocol per connection; holds the room they all share."""

    protocol: Any = ChatProtocol

    def __init__(self, room: ChatRoom, limits: UserLimits, clock: IReactorTime) -> None:
        super().__init__(limits.max_line)
        self.room = room
        self.limits = limits
        self.clock = clock
