"""A WebSocket peer written from RFC 6455 alone, to check labchat's frames byte by byte.

It is deliberately not autobahn: the server under test uses autobahn, and a
test that read the server's frames with the same library could not catch a
frame that only autobahn gets wrong. The frames are the load generator's
(benchmarks.websocket); this adds what a test needs besides.
"""

from __future__ import annotations

import socket

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

__all__ = ["BINARY", "CLOSE", "CONTINUATION", "FIN", "PING", "TEXT", "client_frame"]

# How long a socket of these tests waits for the server: only a failing test waits it out.
DEADLINE = 20.0


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


def raw_frame(
    first: int, payload: bytes, masked: bool = True, length_field: int | None = None
) -> bytes:
    """A frame as a client might send it, right or wrong: first is its whole first byte
    (FIN, reserved bits, opcode), and length_field (2 or 8 bytes), if given, carries the
    payload's length even where a shorter field would do."""
    key = b"\x12\x34\x56\x78"
    mask_bit = 0x80 if masked else 0
    length = len(payload)
    if length_field == 8 or (length_field is None and length >= 1 << 16):
        header = bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")
    elif length_field == 2 or (length_field is None and length >= 126):
        header = bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | length))
    if not masked:
        return header + payload
    body = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    return header + key + body


def frame_header(length: int, opcode: int = TEXT, fin: bool = True) -> bytes:
    """The header of a client's frame announcing length bytes, the masking key included."""
    first = (FIN if fin else 0) | opcode
    return bytes((first, 0x80 | 127)) + length.to_bytes(8, "big") + b"\x12\x34\x56\x78"


# Frames a server must reject, each with the close code RFC 6455 gives it: the
# protocol's rules broken (1002), or text that is not UTF-8 (1007).
REJECTED_FRAMES = {
    "unmasked": (raw_frame(FIN | TEXT, b"unmasked", masked=False), 1002),
    "reserved bit set": (raw_frame(FIN | 0x40 | TEXT, b"reserved bit"), 1002),
    "reserved opcode": (raw_frame(FIN | 0x3, b"reserved opcode"), 1002),
    "continuation of nothing": (raw_frame(FIN | CONTINUATION, b"orphan"), 1002),
    "16-bit length for 5 bytes": (raw_frame(FIN | TEXT, b"short", length_field=2), 1002),
    "64-bit length for 5 bytes": (raw_frame(FIN | TEXT, b"short", length_field=8), 1002),
    "invalid UTF-8": (client_frame(b"caf\xc3 au lait"), 1007),
    "invalid UTF-8 in a fragment": (
        client_frame(b"ab\xff", TEXT, fin=False) + client_frame(b"cd", CONTINUATION),
        1007,
    ),
    "a character cut at the end of a message": (
        client_frame(b"x", TEXT, fin=False) + client_frame("é".encode()[:1], CONTINUATION),
        1007,
    ),
}


class RawWebSocket:
    """A WebSocket to a real server on a plain socket, for frames no proper client would send."""

    def __init__(self, port: int, origin: str | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        request, _ = handshake(host=f"127.0.0.1:{port}", origin=origin)
        self.sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            data += chunk
        # The status line and headers; frames may follow in the same read.
        self.response, _, self._unread = data.partition(b"\r\n\r\n")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next_frame(self) -> tuple[int, bytes]:
        """The next frame from the server (not a ping), as (opcode, payload)."""
        while True:
            frame = parse_frame(self._unread)
            if frame is None:
                chunk = self.sock.recv(65536)
                assert chunk, f"the server closed the connection; unread {self._unread!r}"
                self._unread += chunk
                continue
            first, payload, end = frame
            self._unread = self._unread[end:]
            if first & 0x0F != PING:
                return first & 0x0F, payload

    def next_text(self) -> str:
        opcode, payload = self.next_frame()
        assert opcode == TEXT, (opcode, payload)
        return payload.decode("utf-8")

    def close(self) -> None:
        self.sock.close()
