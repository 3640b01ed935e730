"""labchat over WebSocket: each connection one ChatSession, one text frame per line.

The browser page (and websocat, or any script) is just another client of
the line protocol: a text frame from the peer is one line typed, and each
line the room sends is one text frame, without its CRLF. The session, the
room and their limits are the ones a TCP user has; this module only adapts
frames to lines, as labproto.chat.protocol adapts a byte stream.

Autobahn does the handshake and parses every frame but the common one,
checking that text is UTF-8 (failing the connection with close code 1007
when it is not). A whole, masked, one-frame text message, what a chatting
browser sends, is read here instead (see dataReceived). The outgoing frames
are built here too, once per broadcast, because the room hands every member
the same bytes and autobahn's sendMessage would frame them again for each.
"""

from __future__ import annotations

import contextlib
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.server import Request
from txaio._common import _BatchedTimer
from zope.interface import implementer

from labproto.chat import figures
from labproto.chat.limits import UserLimits
from labproto.chat.origins import OriginPolicy
from labproto.chat.room import ChatRoom
from labproto.chat.sendqueue import SendQueue
from labproto.chat.session import ChatSession, IChatConnection
from labproto.chat.webdoor import head_answer
from labproto.lines import SERVER_LINE_END, describe_peer, line_too_long, peer_host
from labproto.text import decode_text, printable
from labproto.writenow import can_write_now, write_now

log = Logger()

# RFC 6455 close codes.
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_MESSAGE_TOO_BIG = 1009
# A message longer than --max-line is read to its end and thrown away, and
# the WebSocket goes on, as a TCP connection goes on past a long line. One
# whose frames announce more than this (or than --max-line, if that is
# more) is not waited for: its sender would hold the connection for as long
# as it takes to send, and a header may announce 2**63 bytes.
LONGEST_SKIPPED = 1024 * 1024
# How long a closing WebSocket gets to deliver its last lines and finish the
# closing handshake before it is cut, as a closing TCP connection does.
CLOSING_GRACE = 10.0
# A browser on a phone can vanish without a word: a ping that gets no pong
# in time ends its connection, and its user leaves the room.
PING_INTERVAL = 30.0
PING_TIMEOUT = 30.0

# The first byte of a text frame that is a whole message (FIN and opcode 1),
# then the payload length in 7 bits, or 126 and 16 bits, or 127 and 64 bits.
_TEXT_FRAME = 0x81
_SHORT_HEADERS = [bytes((_TEXT_FRAME, length)) for length in range(126)]
_HEADER_16 = bytes((_TEXT_FRAME, 126))
_HEADER_64 = bytes((_TEXT_FRAME, 127))


def text_frames(lines: bytes) -> bytes:
    """Frame each CRLF-ended line of lines as one unmasked WebSocket text frame, without its CRLF.

    The lines come from the room, which encodes text as UTF-8 and never
    lets a CR or LF into a line, so each frame is valid text.
    """
    frames: list[bytes] = []
    append = frames.append
    for line in lines.split(SERVER_LINE_END)[:-1]:
        length = len(line)
        if length < 126:
            append(_SHORT_HEADERS[length])
        elif length < 65536:
            append(_HEADER_16 + length.to_bytes(2, "big"))
        else:
            append(_HEADER_64 + length.to_bytes(8, "big"))
        append(line)
    return b"".join(frames)


def unmask(payload: bytes, key: bytes) -> bytes:
    """payload XOR the 4-byte masking key, repeated (RFC 6455, 5.3): one XOR of two big numbers."""
    size = len(payload)
    repeated = (key * (size // 4 + 1))[:size]
    unmasked = int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")
    return unmasked.to_bytes(size, "little")


@implementer(IChatConnection)
class ChatWebSocketProtocol(SendQueue, WebSocketServerProtocol):  # type: ignore[misc]
    """One WebSocket user: text frames in to its session as lines, the room's lines out as frames.

    Its send queue is a TCP user's (labproto.chat.sendqueue): this protocol
    is its transport's push producer, so a tab that stops reading is cut
    off past --sendq, and reading from it pauses meanwhile.
    """

    factory: ChatWebSocketFactory
    kind = figures.WEBSOCKET
    session: ChatSession | None = None
    _closing = False
    _ended = False
    _can_write_now = False
    # The message being received: its parts as far as a line may go, and its size.
    _binary = False
    _parts: list[bytes]
    _size = 0
    # What the headers of the message's frames so far announced, together.
    _announced = 0

    def onConnect(self, request: ConnectionRequest) -> None:
        origin = request.origin or None
        # request.host has lost its port: the Host header has it.
        if not self.factory.origins.admits(origin, request.headers.get("host", "")):
            log.warn(
                "Refused a WebSocket from {peer}: Origin {origin} is not {allowed}",
                peer=describe_peer(self.transport.getPeer()),
                origin=printable(origin or ""),
                allowed=self.factory.origins.describe(),
            )
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, "Origin not allowed")

    def onOpen(self) -> None:
        transport = self.transport
        # Under Twisted Web, the HTTP channel that handed over this
        # connection is still its transport's producer.
        with contextlib.suppress(RuntimeError):
            transport.unregisterProducer()
        transport.registerProducer(self, True)
        self._can_write_now = can_write_now(transport)
        factory = self.factory
        self._parts = []
        # The log tells a browser's user from a TCP one by this.
        address = transport.getPeer()
        peer = describe_peer(address) + " over WebSocket"
        self.session = ChatSession(
            factory.room, self, peer, factory.limits, factory.clock, peer_host(address)
        )
        self.session.start()

    def _reading(self) -> bool:
        """Whether a frame being read now may still reach the session.

        Autobahn, failing a connection with a close frame (failByDrop is
        off, so that the peer is told 1002 or 1007), goes on to parse the
        very frame it has just rejected, so as to find the peer's closing
        handshake after it, and calls the message callbacks for it. Its own
        callbacks ignore such a frame through failedByMe; these must too.
        Autobahn leaves the open state before it hands on a frame it
        rejects, and so does this protocol when it closes (a binary frame,
        /quit): nothing read after that is a line.
        """
        return self.state == self.STATE_OPEN

    def onMessageBegin(self, isBinary: bool) -> None:  # noqa: N803 (autobahn's name)
        self._binary = isBinary
        self._parts = []
        self._size = 0
        self._announced = 0
        if isBinary and self._reading():
            log.info(
                "Closing the WebSocket of {peer}: it sent a binary frame",
                peer=describe_peer(self.transport.getPeer()),
            )
            # sendClose() takes only the codes an application may choose;
            # 1003 is the protocol's own, for data of a type not accepted.
            self.sendCloseFrame(CLOSE_UNSUPPORTED_DATA, b"labchat takes text frames, one line each")

    def onMessageFrameBegin(self, length: int) -> None:
        # Autobahn would collect the frame whole; a line past --max-line is
        # refused, so only that much of it is kept (see onMessageFrameData).
        # The header says how long the frame is: a message that will never
        # be a line is refused now, not waited for.
        self._announced += length
        max_line = self.factory.limits.max_line
        if self._announced > max(LONGEST_SKIPPED, max_line + 2) and self._reading():
            self._refuse_message_too_big(max_line)

    def _refuse_message_too_big(self, max_line: int) -> None:
        """Tell the peer its line is too long, close with 1009, and end the connection now."""
        log.info(
            "Closing the WebSocket of {peer}: it announced a message of {size} bytes",
            peer=describe_peer(self.transport.getPeer()),
            size=self._announced,
        )
        if self.session is not None:
            self.session.send_text(line_too_long(max_line))
        self.sendCloseFrame(CLOSE_MESSAGE_TOO_BIG, b"labchat takes lines, not this")
        # The peer's answering close could only come after the bytes it
        # announced, so no closing handshake can end: the connection ends
        # as soon as what was written has gone out.
        self.dropConnection(abort=False)

    def onMessageFrameData(self, payload: bytes) -> None:
        # Room for the line and an LF or CRLF that a script may end it with.
        if self._size <= self.factory.limits.max_line + 2 and self._reading():
            self._parts.append(payload)
        self._size += len(payload)

    def onMessageFrameEnd(self) -> None:
        pass

    def onMessageEnd(self) -> None:
        if self._binary or self.session is None or not self._reading():
            self._parts = []
            return
        message = b"".join(self._parts)
        self._parts = []
        self._message_received(message, self._size)

    def _message_received(self, message: bytes, size: int) -> None:
        """Hand the session one line: message, size bytes long before any was left out."""
        assert self.session is not None
        max_line = self.factory.limits.max_line
        if message.endswith(b"\n"):
            message = message[:-2] if message.endswith(b"\r\n") else message[:-1]
        if size > max_line + 2 or len(message) > max_line:
            self.session.send_text(line_too_long(max_line))
        else:
            self.session.line_received(decode_text(message))

    def dataReceived(self, data: bytes) -> None:
        # A chatting browser sends whole text frames, each a short line: read
        # here, they skip autobahn's frame machinery (a header object, a
        # masker and five callbacks for each), which costs a WebSocket line
        # twice what reading a TCP line costs. Anything else, and whatever
        # follows it, goes to autobahn, which then holds no part of a frame.
        if (
            self.state == self.STATE_OPEN
            and self.session is not None
            and self.current_frame is None
            and not self.inside_message
            and not self.data
        ):
            data = self._read_text_frames(data)
            if not data:
                return
        super().dataReceived(data)

    def _read_text_frames(self, data: bytes) -> bytes:
        """Take each whole, masked, one-frame text message at the start of data; return the rest."""
        offset = 0
        end = len(data)
        while self.state == self.STATE_OPEN and offset + 6 <= end and data[offset] == _TEXT_FRAME:
            # Set, the mask bit leaves the length; unset, it leaves 128 and more.
            length = data[offset + 1] ^ 0x80
            start = offset + 6
            if length == 126:
                length = int.from_bytes(data[offset + 2 : offset + 4], "big")
                start = offset + 8
                if length < 126:
                    break  # not the shortest length: autobahn refuses it
            elif length > 126:
                break  # not masked, or a 64-bit length
            stop = start + length
            if stop > end:
                break
            message = unmask(data[start:stop], data[start - 4 : start])
            try:
                message.decode("utf-8")
            except UnicodeDecodeError:
                break  # autobahn closes with 1007
            offset = stop
            if self.autoPingTimeoutCall and self.autoPingRestartOnAnyTraffic:
                # As autobahn does for any frame: the peer is alive.
                self._cancelAutoPingTimeoutCall()
            self._message_received(message, length)
        return data[offset:]

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:  # noqa: N803
        session = self.session
        if session is None or self._ended:
            return
        self._ended = True
        self._stop_output()
        session.connection_lost(self._lost_reason)

    @property
    def sendq(self) -> int:
        return self.factory.limits.sendq

    def send(self, line: bytes) -> None:
        if self.state != self.STATE_OPEN:
            # The closing handshake has begun: no frame of data may follow a close frame.
            return
        frames = self.factory.frames(line)
        if not self._output_paused:
            # Straight to the socket when nothing waits, as for a TCP user
            # (see labproto.writenow): most of a broadcast's cost otherwise.
            if self._can_write_now:
                write_now(self.transport, frames)
            else:
                self.transport.write(frames)
            return
        self._hold(frames)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._flush_backlog()
        # Autobahn waits CLOSING_GRACE for the peer's close, then cuts the connection.
        self.sendClose(self.CLOSE_STATUS_CODE_NORMAL)

    def abort(self) -> None:
        self.dropConnection(abort=True)

    def stopProducing(self) -> None:
        # The connection is going: onClose follows, and the user leaves then.
        pass

    def _pause_reading(self) -> None:
        self.transport.pauseProducing()

    def _resume_reading(self) -> None:
        self.transport.resumeProducing()


class ChatWebSocketFactory(WebSocketServerFactory):
    """Makes a ChatWebSocketProtocol per WebSocket; shares the room of the TCP users."""

    protocol = ChatWebSocketProtocol  # type: ignore[assignment]

    def __init__(
        self,
        room: ChatRoom,
        limits: UserLimits,
        clock: IReactorTime,
        origins: OriginPolicy,
    ) -> None:
        super().__init__(server="labchat")
        self.room = room
        self.limits = limits
        self.clock = clock
        self.origins = origins
        # Autobahn's timeouts (the handshakes', the pings') run on the
        # reactor txaio knows; these run them on clock, which tests drive.
        self._batched_timer = _BatchedTimer(
            200.0, 1000, seconds_provider=clock.seconds, delayed_call_creator=clock.callLater
        )
        self.setProtocolOptions(
            # A protocol error (invalid UTF-8: 1007) is told to the peer in a
            # close frame, rather than by dropping the connection.
            failByDrop=False,
            # Autobahn checks the Origin itself before onConnect, and by
            # default refuses null (a page opened from a file: Firefox sends
            # null, Chrome file://, which autobahn reads as null) with HTTP
            # 400, whatever --web-origin says. Admitting null as it admits
            # every other origin leaves the decision to onConnect, which
            # answers a refusal with 403 and logs it.
            allowNullOrigin=True,
            closeHandshakeTimeout=CLOSING_GRACE,
            autoPingInterval=PING_INTERVAL,
            autoPingTimeout=PING_TIMEOUT,
        )
        # The frames of the last bytes the room handed out: the room hands
        # every member the same bytes object for a broadcast.
        self._last_lines = b""
        self._last_frames = b""

    def frames(self, lines: bytes) -> bytes:
        """The text frames of lines (see text_frames), built once for all the members it reaches."""
        if lines is not self._last_lines:
            self._last_frames = text_frames(lines)
            self._last_lines = lines
        return self._last_frames


# What /ws answers a request that is not a WebSocket handshake.
UPGRADE_REQUIRED = (
    b"This is the WebSocket endpoint of labchat: one text frame per line of the"
    b" chat protocol. Open / in a browser, or use a WebSocket client.\n"
)


class ChatWebSocketResource(WebSocketResource):
    """/ws: a WebSocket handshake becomes a labchat user; plain HTTP is told what /ws is."""

    def render(self, request: Request) -> Any:
        upgrade = request.getHeader("upgrade") or ""
        if upgrade.lower() != "websocket":
            request.setResponseCode(426, b"Upgrade Required")
            request.setHeader("Upgrade", "websocket")
            request.setHeader("Content-Type", "text/plain; charset=utf-8")
            if request.method == b"HEAD":
                return head_answer(request, UPGRADE_REQUIRED)
            return UPGRADE_REQUIRED
        # The HTTP channel hands its connection over for good: its idle
        # timeout must not end a quiet chat later.
        request.channel.setTimeout(None)
        return super().render(request)
