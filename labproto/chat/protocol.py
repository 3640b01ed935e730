"""labchat over TCP: each connection a line protocol carrying one ChatSession.

The factory holds what every connection shares: the room (the registry of
users), the per-user limits and the clock.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

from twisted.internet.interfaces import IReactorTime, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from labproto.chat import wire
from labproto.chat.limits import UserLimits
from labproto.chat.room import ChatRoom
from labproto.chat.session import ChatSession, IChatConnection
from labproto.lines import LineProtocol, LineServerFactory

# What a Twisted connection holds unsent before it pauses its producer (the
# bufferSize of twisted.internet.abstract.FileDescriptor): a connection
# paused for its output has at least this much waiting.
UNSENT_WHEN_PAUSED = 64 * 1024


@implementer(IChatConnection)
class ChatProtocol(LineProtocol):
    """One TCP user: lines in to its session, the room's bytes out, and its send queue watched.

    A user who stops reading is noticed when the connection, its buffer
    full, pauses this protocol; from then on every byte sent it is counted
    until the connection drains and resumes it. Past --sendq the connection
    is cut at once, so the server never holds more than about --sendq bytes
    for one user, and nobody else waits for that user.
    """

    factory: ChatFactory
    session: ChatSession
    # None while the connection keeps up; else what is waiting in its buffer, at least.
    _unsent: int | None = None
    _lost_reason = wire.CONNECTION_LOST

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

    def textReceived(self, text: str) -> None:
        self.session.line_received(text)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.session.connection_lost(self._lost_reason)

    def send(self, line: bytes) -> None:
        if self._unsent is not None:
            self._unsent += len(line)
            if self._unsent > self.factory.limits.sendq:
                self._cut_off_slow_reader()
                return
        assert self.transport is not None
        self.transport.write(line)

    def close(self) -> None:
        self.hang_up()

    def abort(self) -> None:
        cast(ITCPTransport, self.transport).abortConnection()

    def pauseProducing(self) -> None:
        # Called again at each write while the buffer stays full: only the
        # first call starts the count.
        if self._unsent is None:
            self._unsent = UNSENT_WHEN_PAUSED
        super().pauseProducing()

    def resumeProducing(self) -> None:
        # The connection resumes its producer only once its buffer is empty.
        if self._lost_reason == wire.CONNECTION_LOST:
            self._unsent = None
        super().resumeProducing()

    def _cut_off_slow_reader(self) -> None:
        if self._lost_reason != wire.SEND_QUEUE_EXCEEDED:
            self._lost_reason = wire.SEND_QUEUE_EXCEEDED
            # The session leaves the room when the connection is lost, a
            # moment later: never in the middle of the broadcast that got here.
            self.abort()


class ChatFactory(LineServerFactory):
    """Makes a ChatProtocol per connection; holds the room they all share."""

    protocol: Any = ChatProtocol

    def __init__(self, room: ChatRoom, limits: UserLimits, clock: IReactorTime) -> None:
        super().__init__(limits.max_line)
        self.room = room
        self.limits = limits
        self.clock = clock
