"""A WebSocket peer written from RFC 6455 alone, to check labchat's frames byte by byte.

It is deliberately not autobahn: the server under test uses autobahn, and a
test that read the server's frames with the same library could not catch a
frame that only autobahn gets wrong.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct

# The GUID of RFC 6455, section 1.3, that turns a handshake key into its accept value.
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9


def accept_value(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept a server must answer key with."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def handshake(
    path: str = "/ws", host: str = "127.0.0.1:8080", origin: str | None = None
) -> tuple[bytes, bytes]:
    """An opening handshake request, and the Sec-WebSocket-Accept its answer must carry."""
    key = base64.b64encode(os.urandom(16))
    headers = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        headers.append(f"Origin: {origin}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode(), accept_value(key)


def client_frame(payload: bytes, opcode: int = TEXT, fin: bool = True) -> bytes:
    """One masked frame, as a client must send it."""
    mask = os.urandom(4)
    length = len(payload)
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + masked


def server_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The whole frames at the start of data, as (opcode, payload), and what follows them.

    Server frames must not be masked: a masked one fails the parse.
    """
    frames: list[tuple[int, bytes]] = []
    while len(data) >= 2:
        first, second = data[0], data[1]
        assert not second & 0x80, "a server frame must not be masked"
        assert first & 0x80, "labchat sends each line as one whole frame"
        length, start = second & 0x7F, 2
        if length == 126:
            if len(data) < 4:
                break
            (length,), start = struct.unpack("!H", data[2:4]), 4
        elif length == 127:
            if len(data) < 10:
                break
            (length,), start = struct.unpack("!Q", data[2:10]), 10
        if len(data) < start + length:
            break
        frames.append((first & 0x0F, data[start : start + length]))
        data = data[start + length :]
    return frames, data


def close_code(payload: bytes) -> int:
    """The status code of a close frame's payload."""
    return int(struct.unpack("!H", payload[:2])[0])
