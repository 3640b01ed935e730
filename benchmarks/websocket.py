"""The least of a WebSocket client (RFC 6455) that the chat load generator needs.

The handshake: an HTTP/1.1 GET with ``Upgrade: websocket`` and a random
``Sec-WebSocket-Key``, answered by ``101`` and the ``Sec-WebSocket-Accept``
that the key gives (section 4). No ``Origin`` header (a script, not a page),
no subprotocol and no extension asked for, so none may come back.

The frames (section 5): a client masks each of its frames with a key of its
own; a server's frames are not masked. A length under 126 is the second byte
itself, 126 says a 16-bit length follows and 127 a 64-bit one, in network
order, and a sender must use the shortest (5.2). A frame may arrive in any
number of pieces, several in one read: parse_frame() takes the bytes read so
far and an offset, and says how far a whole frame goes, or that there is
none yet.

Nothing here touches a socket: chatload owns its sockets and its epoll loop.
"""

from __future__ import annotations

import base64
import hashlib
import os

# RFC 6455, 1.3: what the server appends to the key before it hashes it.
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# The first byte of a frame: FIN (0x80), three reserved bits, then the opcode.
FIN = 0x80
RESERVED = 0x70
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
# A whole text message in one frame: what labchat sends for each line.
TEXT_FRAME = FIN | TEXT
# The longest payload whose length fits in the second byte itself.
SHORT_PAYLOAD = 125
# An answer longer than this without its end is not a handshake's.
MAX_HANDSHAKE_BYTES = 64 * 1024


class ProtocolError(Exception):
    """The peer broke RFC 6455 (or refused the handshake); the message says how."""


def new_key() -> bytes:
    """A Sec-WebSocket-Key: 16 random bytes, in base64 (RFC 6455, 4.1)."""
    return base64.b64encode(os.urandom(16))


def accept_key(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept a server must answer key with (RFC 6455, 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def handshake_request(host: str, port: int, path: str, key: bytes) -> bytes:
    """The client's opening handshake: a GET of path that asks to upgrade to a WebSocket."""
    return (
        b"GET %s HTTP/1.1\r\n"
        b"Host: %s:%d\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"\r\n"
    ) % (path.encode("ascii"), host.encode("ascii"), port, key)


def handshake_response(data: bytes, key: bytes) -> int | None:
    """Check the server's answer to the handshake sent with key, as read so far.

    Returns where the frames start in data once the answer is whole, None
    while it is not; raises ProtocolError if it refuses the upgrade or does
    not keep RFC 6455's rules.
    """
    if not data.startswith(b"HTTP/"[: len(data)]):
        first_line = data.partition(b"\n")[0]
        raise ProtocolError(
            f"the handshake was answered with something other than HTTP: {first_line!r}"
        )
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_HANDSHAKE_BYTES:
            raise ProtocolError(f"no end to the handshake's answer in {len(data)} bytes")
        return None
    status, *lines = data[:end].decode("latin-1").split("\r\n")
    parts = status.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or parts[1] != "101":
        raise ProtocolError(f"the handshake was answered {status!r}, not 101")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise ProtocolError(f"a header line without a colon in the answer: {line!r}")
        name = name.strip().lower()
        # Headers of one name may come several times: their values make a list.
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if headers.get("upgrade", "").lower() != "websocket":
        raise ProtocolError(f"101 without Upgrade: websocket ({headers.get('upgrade')!r})")
    if "upgrade" not in [t.strip().lower() for t in headers.get("connection", "").split(",")]:
        raise ProtocolError(f"101 without Connection: Upgrade ({headers.get('connection')!r})")
    expected = accept_key(key).decode("ascii")
    if headers.get("sec-websocket-accept") != expected:
        raise ProtocolError(
            f"Sec-WebSocket-Accept is {headers.get('sec-websocket-accept')!r},"
            f" not {expected!r}"
        )
    for asked_for_none in ("sec-websocket-extensions", "sec-websocket-protocol"):
        if asked_for_none in headers:
            raise ProtocolError(
                f"the server chose {asked_for_none} {headers[asked_for_none]!r},"
                " which the client did not offer"
            )
    return end + 4


def mask(payload: bytes, key: bytes) -> bytes:
    """payload XOR the 4-byte key repeated (RFC 6455, 5.3), as one big-number XOR, not a loop."""
    size = len(payload)
    repeated = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        size, "little"
    )


def length_bytes(size: int, masked: int) -> bytes:
    """The second byte of a frame and the extended length after it, the shortest there is."""
    if size <= SHORT_PAYLOAD:
        return bytes((masked | size,))
    if size < 1 << 16:
        return bytes((masked | 126,)) + size.to_bytes(2, "big")
    return bytes((masked | 127,)) + size.to_bytes(8, "big")


def client_frame(
    payload: bytes, opcode: int = TEXT, key: bytes | None = None, fin: bool = True
) -> bytes:
    """One frame from a client: masked, with a new random key unless key is given.

    Without fin, the message goes on in the frames after it (opcode CONTINUATION).
    """
    if key is None:
        key = os.urandom(4)
    first = (FIN if fin else 0) | opcode
    return bytes((first,)) + length_bytes(len(payload), 0x80) + key + mask(payload, key)


def server_frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """One whole frame as a server sends it, unmasked (for tests and a fake server)."""
    return bytes((FIN | opcode,)) + length_bytes(len(payload), 0) + payload


def parse_frame(data: bytes, start: int = 0) -> tuple[int, bytes, int] | None:
    """The server's frame that starts at data[start], if it has all arrived.

    Returns the frame's first byte (FIN, reserved bits, opcode), its payload
    and the offset just past it; None if data ends before the frame does.
    Raises ProtocolError for a masked frame: a server must not mask (5.1).
    """
    have = len(data) - start
    if have < 2:
        return None
    second = data[start + 1]
    if second & 0x80:
        raise ProtocolError("the server sent a masked frame")
    size = second & 0x7F
    head = 2
    if size == 126:
        if have < 4:
            return None
        size = int.from_bytes(data[start + 2 : start + 4], "big")
        head = 4
    elif size == 127:
        if have < 10:
            return None
        size = int.from_bytes(data[start + 2 : start + 10], "big")
        head = 10
    end = start + head + size
    if len(data) < end:
        return None
    return data[start], data[start + head : end], end


def close_reason(payload: bytes) -> str:
    """A close frame's status code and reason, as words (RFC 6455, 5.5.1)."""
    if len(payload) < 2:
        return "no status code"
    code = int.from_bytes(payload[:2], "big")
    reason = payload[2:].decode("utf-8", "replace")
    return f"code {code}" + (f" ({reason})" if reason else "")
