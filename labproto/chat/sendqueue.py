"""One user's send queue: what a connection that stopped keeping up has waiting, and its limit.

Every transport of labchat (the TCP line protocol, the WebSocket) sends a
user's lines the same way, so that a browser tab that stops reading is cut
off exactly as an ``nc`` that stops reading is. While the connection keeps
up, each line goes straight to it. Once its buffer is full (more than
UNSENT_WHEN_PAUSED bytes), Twisted pauses the connection's producer, and the
lines for this user wait in a backlog of its own, counted to the byte; when
the connection has drained and resumes its producer, the backlog feeds it
again until it is full. A backlog that passes --sendq (less what the
connection holds) cuts the connection at once: the server never holds more
than --sendq bytes for one user, and nobody else waits for that user.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet import abstract

from labproto.chat import wire

# What a Twisted connection holds unsent before it pauses its producer: the
# bufferSize of twisted.internet.abstract.FileDescriptor.
UNSENT_WHEN_PAUSED = abstract.FileDescriptor.bufferSize


class SendQueue:
    """The send-queue half of a labchat connection: mixed into its protocol, which is the
    push producer registered with its transport.

    The protocol provides send() (which writes at once while
    ``_output_paused`` is false, and otherwise calls _hold()), abort(),
    ``sendq`` (the user's --sendq) and the two hooks _pause_reading() and
    _resume_reading(): a paused user's own lines wait too, so that a peer
    that sends and never reads cannot make the server hold its answers.
    """

    transport: Any
    _output_paused = False
    # Created at the first pause: most users never need one.
    _backlog: deque[bytes] | None = None
    _backlog_bytes = 0
    _cut_off = False
    # Why the user leaves once the connection is lost.
    _lost_reason = wire.CONNECTION_LOST

    @property
    def sendq(self) -> int:
        raise NotImplementedError

    def abort(self) -> None:
        """Close the connection now, dropping whatever is still unsent."""
        raise NotImplementedError

    def _pause_reading(self) -> None:
        raise NotImplementedError

    def _resume_reading(self) -> None:
        raise NotImplementedError

    def _hold(self, data: bytes) -> None:
        """Keep data for when the connection has room again, or cut the user off past --sendq."""
        if self._cut_off:
            return
        assert self._backlog is not None
        self._backlog.append(data)
        self._backlog_bytes += len(data)
        if self._backlog_bytes + UNSENT_WHEN_PAUSED > self.sendq:
            self._cut_off_slow_reader()

    def pauseProducing(self) -> None:
        if not self._output_paused:
            self._output_paused = True
            if self._backlog is None:
                self._backlog = deque()
        self._pause_reading()

    def resumeProducing(self) -> None:
        if self._cut_off:
            return
        self._output_paused = False
        backlog = self._backlog
        # Each write may fill the connection again, which pauses this
        # protocol; the rest of the backlog waits for the next resume.
        while backlog and not self._output_paused:
            data = backlog.popleft()
            self._backlog_bytes -= len(data)
            self.transport.write(data)
        if not self._output_paused:
            self._resume_reading()

    def _flush_backlog(self) -> None:
        """Hand the connection's buffer the whole backlog, before the connection closes.

        The backlog would never be sent once this protocol is no longer the
        connection's producer. Once cut off, nothing more is written,
        closing or not.
        """
        while self._backlog and not self._cut_off:
            self.transport.write(self._backlog.popleft())
        self._backlog_bytes = 0
        self._output_paused = self._cut_off

    def _stop_output(self) -> None:
        """The connection is lost: what the room still hands this user is dropped, not queued."""
        self._backlog = None
        self._output_paused = self._cut_off = True

    def _cut_off_slow_reader(self) -> None:
        self._cut_off = True
        self._lost_reason = wire.SEND_QUEUE_EXCEEDED
        self._backlog = None
        self._backlog_bytes = 0
        # The user leaves the room when the connection is lost, a moment
        # later: never in the middle of the broadcast that got here.
        self.abort()
