"""A WebSocket peer written from RFC 6455 alone, to check labchat's frames byte by byte.

It is deliberately not autobahn: the server under test uses autobahn, and a
test that read the server's frames with the same library could not catch a
frame that only autobahn gets wrong. The frames are the load generator's
(benchmarks.websocket); this adds what a test needs besides.
"""

from __future__ import annotations

from benchmarks.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    FIN,
    PING,
    TEXT,
    accept_key,
    client_frame,
    new_key,
    parse_frame,
)

__all__ = ["BINARY", "CLOSE", "CONTINUATION", "PING", "TEXT", "client_frame"]


def handshake(
    path: str = "/ws", host: str = "127.0.0.1:8080", origin: str | None = None
) -> tuple[bytes, bytes]:
    """An opening handshake request, and the Sec-WebSocket-Accept its answer must carry."""
    key = new_key()
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
    return ("\r\n".join(headers) + "\r\n\r\n").encode(), accept_key(key)


def server_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The whole frames at the start of data, as (opcode, payload), and what follows them.

    A masked server frame fails the parse, and so does one that is not a
    whole message: labchat sends each line as one frame.
    """
    frames: list[tuple[int, bytes]] = []
    offset = 0
    while (frame := parse_frame(data, offset)) is not None:
        first, payload, offset = frame
        assert first & FIN, "labchat sends each line as one whole frame"
        frames.append((first & 0x0F, payload))
    return frames, data[offset:]


def close_code(payload: bytes) -> int:
    """The status code of a close frame's payload."""
    return int.from_bytes(payload[:2], "big")
