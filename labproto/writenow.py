"""Writing to a TCP connection at once, when Twisted has none of its bytes waiting.

Twisted's transports never write in write(): they keep the bytes and ask
the reactor to say when the socket can take them. For each connection and
each turn of the reactor that costs two epoll_ctl calls and a trip through
the reactor on top of the send itself (Twisted issue #5303, "Default
transport implementation doesn't write out bytes immediately"). A chat
server that hands a thousand connections a few lines each turn spends more
there than on anything else: a profile of labchat's fan-out showed 21% of
its time in epoll_ctl alone. write_now() sends at once, through the
transport's own writeSomeData(), and gives write() only what the socket did
not take, so the bytes keep their order and Twisted's flow control (pausing
the producer once its buffer fills) works as before.

It goes around write() only where that is known to be right: a plain TCP
(or UNIX) connection of Twisted's own, without TLS, open, not closing, with
nothing in its buffer. Anything else (TLS, the --trace wrapper, a test's
string transport) gets a plain write().
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp


def can_write_now(transport: Any) -> bool:
    """Whether write_now() may ever go around transport's write(): a plain TCP connection."""
    return isinstance(transport, tcp.Connection) and not transport.TLS


def write_now(transport: tcp.Connection, data: bytes) -> None:
    """Send data on transport now, as far as the socket takes it, and write() the rest.

    transport must be one that can_write_now() accepted.
    """
    if (
        transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnecting
        # abortConnection() leaves disconnecting alone: nothing may follow it.
        and not transport._aborting
        # Twisted's buffer is dataBuffer from offset on, then _tempDataBuffer:
        # bytes waiting there must go first.
        and not transport._tempDataBuffer
        and transport.offset == len(transport.dataBuffer)
    ):
        sent = transport.writeSomeData(data)
        if not isinstance(sent, int):
            # The connection has failed: write() buffers the bytes, and the
            # reactor's next write attempt meets the error and ends the
            # connection, as it would have without this.
            transport.write(data)
            return
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)
