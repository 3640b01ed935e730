"""The minimal Twisted UDP time server: the floor udptime's CPU per answer is compared with.

It stands for what any Twisted DatagramProtocol costs to answer a datagram:
the reactor's read, one strftime and the write. It answers ``SEND_TIME``
with ``%H:%M:%S`` and ``SEND_DATE`` with ``%d/%m/%y`` (the request stripped
and upper-cased), and anything else with ``ERROR``.

It leaves out everything udptime adds for its users: tokens, the
no-amplification rule (it answers ``ERROR`` to a one-byte datagram),
configurable formats and UTC, the log of each request, ``--trace`` and the
twistd plugin machinery. Run it with::

    python -m benchmarks.baselines.twisted_time --port P [--host 127.0.0.1]
"""

from __future__ import annotations

import time

from twisted.internet.protocol import DatagramProtocol

from benchmarks.baselines import run


class MinimalTimeProtocol(DatagramProtocol):
    """Answer SEND_TIME and SEND_DATE, and ERROR to anything else; log nothing."""

    noisy = False

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        request = datagram.strip().upper()
        if request == b"SEND_TIME":
            answer = time.strftime("%H:%M:%S").encode("ascii")
        elif request == b"SEND_DATE":
            answer = time.strftime("%d/%m/%y").encode("ascii")
        else:
            answer = b"ERROR"
        assert self.transport is not None
        self.transport.write(answer, addr)


def main(argv: list[str] | None = None) -> None:
    run(
        "twisted_time",
        "The minimal Twisted UDP time server, a baseline for udptime.",
        "UDP",
        lambda reactor, port, host: reactor.listenUDP(port, MinimalTimeProtocol(), interface=host),
        argv,
    )


if __name__ == "__main__":
    main()
