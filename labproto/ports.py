"""The default port of every labproto service, all distinct so that all can run at once."""

from __future__ import annotations

import re

from twisted.python import usage

UDPECHO = 43387
UDPTIME = 43388
LABCHAT = 43389
KNOCKKNOCK = 43390
LABCALC = 43391


def parse_port_number(text: str, transport: str) -> int:
    """Parse a server's port number, 0 (any free port) to 65535, or raise UsageError."""
    # Plain digits only: int() would also take "+5" and "4_3387".
    number = int(text) if re.fullmatch(r"[0-9]{1,5}", text) else -1
    if not 0 <= number <= 65535:
        raise usage.UsageError(
            f"--port must be a {transport} port number from 0 to 65535, not {text!r}"
        )
    return number
