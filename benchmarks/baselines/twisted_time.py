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

import argparse
import signal
import sys
import time
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol


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
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.baselines.twisted_time",
        description="The minimal Twisted UDP time server, a baseline for udptime.",
    )
    parser.add_argument("--port", type=int, required=True, help="UDP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="local address (default 127.0.0.1)")
    arguments = parser.parse_args(argv)

    from twisted.internet import reactor as installed

    # Typed as any reactor: one that listens, runs and stops.
    reactor: Any = installed
    try:
        port = reactor.listenUDP(arguments.port, MinimalTimeProtocol(), interface=arguments.host)
    except CannotListenError as e:
        print(
            f"cannot listen on UDP {arguments.host}:{arguments.port}: {e.socketError}",
            file=sys.stderr,
        )
        sys.exit(1)
    print(f"listening on {port.getHost().port}", flush=True)
    # The reactor stops cleanly on SIGTERM, and on Ctrl-C unless SIGINT was
    # ignored when this process started (a shell's background job): hear it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reactor.run()


if __name__ == "__main__":
    main()
