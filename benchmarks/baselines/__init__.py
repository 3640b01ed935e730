"""The servers labproto is measured against; each module runs one with ``python -m``.

The Twisted baselines share run(), which does what any small Twisted
server's main does, so that they differ only in the protocol they serve.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet.error import CannotListenError

# labchat's listening backlog, so that logins compare alike (see labproto.tcpserver).
TCP_BACKLOG = 1024


def run(
    module: str,
    description: str,
    transport: str,
    listen: Callable[[Any, int, str], Any],
    argv: list[str] | None = None,
) -> None:
    """Parse --port and --host, listen(reactor, port, host), say where, and run the reactor.

    A port it cannot take is one line on stderr and exit status 1.
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m benchmarks.baselines.{module}", description=description
    )
    parser.add_argument(
        "--port", type=int, required=True, help=f"{transport} port (0: any free port)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="local address (default 127.0.0.1)")
    arguments = parser.parse_args(argv)

    from twisted.internet import reactor as installed

    # Typed as any reactor: one that listens, runs and stops.
    reactor: Any = installed
    try:
        port = listen(reactor, arguments.port, arguments.host)
    except CannotListenError as e:
        print(
            f"cannot listen on {transport} {arguments.host}:{arguments.port}: {e.socketError}",
            file=sys.stderr,
        )
        sys.exit(1)
    print(f"listening on {port.getHost().port}", flush=True)
    # The reactor stops cleanly on SIGTERM, and on Ctrl-C unless SIGINT was
    # ignored when this process started (a shell's background job): hear it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reactor.run()

