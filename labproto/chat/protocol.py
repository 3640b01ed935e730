"""labchat over TCP: each connection a line protocol carrying one ChatSession.

The factory holds what every connection shares: the room (the registry of
users), the per-user limits and the clock.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

from twisted.internet import tcp
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from labproto.chat import figures
from labproto.chat.limits import UserLimits
from labproto.chat.room import ChatRoom
from labproto.chat.sendqueue import SendQueue
from labproto.chat.session import ChatSession, IChatConnection
from labproto.lines import LineProtocol, LineServerFactory, peer_host
from labproto.writenow import write_now

# How long a closing connection gets to deliver its last lines to a peer
# that does not read them, before it is cut: a closed connection must not
# hold a file and the kernel's buffers for ever.
CLOSING_GRACE = 10.0


@implementer(IChatConnection)
class ChatProtocol(SendQueue, LineProtocol):
    """One TCP user: lines in to its session, the room's bytes out, and its send queue watched
    (labproto.chat.sendqueue)."""

    factory: ChatFactory
    session: ChatSession
    kind = figures.TCP
    _closing_deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        # A chat line should leave at once, not wait for the acknowledgement
        # of the one before (Nagle's algorithm against delayed ACKs: 40 ms).
        with contextlib.suppress(AttributeError, OSError):  # UNIX sockets have no Nagle
            cast(ITCPTransport, self.transport).setTcpNoDelay(True)
        factory = self.factory
        assert self.transport is not None
        host = peer_host(self.transport.getPeer())
        self.session = ChatSession(
            factory.room, self, self.peer(), factory.limits, factory.clock, host
        )
        self.session.start()

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
        if self._closing_deadline is not None and self._closing_deadline.active():
            self._closing_deadline.cancel()
        self._stop_output()
        self.session.connection_lost(self._lost_reason)

    @property
    def sendq(self) -> int:
        return self.factory.limits.sendq

    def send(self, line: bytes) -> None:
        if not self._output_paused:
            # Straight to the socket when nothing waits (see labproto.writenow).
            if self._can_write_now:
                write_now(cast(tcp.Connection, self.transport), line)
            else:
                assert self.transport is not None
                self.transport.write(line)
            return
        self._hold(line)

    def close(self) -> None:
        if self._closing_deadline is not None:
            return
        self._flush_backlog()
        self._closing_deadline = self.factory.clock.callLater(CLOSING_GRACE, self.abort)
        self.hang_up()

    def abort(self) -> None:
        cast(ITCPTransport, self.transport).abortConnection()

    def _pause_reading(self) -> None:
        LineProtocol.pauseProducing(self)

    def _resume_reading(self) -> None:
        LineProtocol.resumeProducing(self)


class ChatFactory(LineServerFactory):
    """Makes a ChatProtocol per connection; holds the room they all share."""

    protocol: Any = ChatProtocol
    clock: IReactorTime

    def __init__(self, room: ChatRoom, limits: UserLimits, clock: IReactorTime) -> None:
        super().__init__(limits.max_line)
        self.room = room
        self.limits = limits
        self.clock = clock
