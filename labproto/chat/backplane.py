"""What a labchat node needs of the Redis that its room shares with other nodes.

sharedroom.SharedRoom holds the room's logic, and speaks to Redis only
through IBackplane: redislink.RedisBackplane is the real one, and the
tests of the room's logic use a fake (tests/support/backplane.py). This
module imports no Redis client, so that reading labchat's options does not
load one.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Sequence

from twisted.internet.defer import Deferred
from zope.interface import Interface

from labproto.chat.room import encode_line

# One argument of a script: Redis takes strings, and lines go as bytes.
Argument = str | bytes | int
Operation = tuple[Argument, ...]


class BackplaneError(Exception):
    """Redis could not be reached, or failed an answer."""


def new_node_name() -> str:
    """A name for this run of a node, unique among every node ever: host, pid, and chance."""
    host = socket.gethostname().split(".")[0] or "node"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class IBackplane(Interface):
    """What a room spread over several nodes needs of the Redis they share."""

    def connect(
        received: Callable[[bytes], None],  # noqa: N805 (zope interfaces have no self)
        lost: Callable[[str], None],
    ) -> Deferred[None]:
        """Connect and subscribe to the room's channel.

        received is then called with each message of the channel, lost once
        (with why) when the link breaks after the Deferred has fired.
        """

    def flush(operations: Sequence[Operation]) -> Deferred[list[int]]:  # noqa: N805
        """Run redisscripts.FLUSH on operations; fire with its answers."""

    def heartbeat(ttl: float, left: tuple[bytes, bytes]) -> Deferred[int]:  # noqa: N805
        """Run redisscripts.HEARTBEAT; fire with 1, or 0 if this node was given up for lost."""

    def rejoin(
        ttl: float,  # noqa: N805
        joined: tuple[bytes, bytes],
        left: tuple[bytes, bytes],
        users: Sequence[tuple[str, str]],
        departed: Sequence[tuple[str, bytes]],
        pending: Sequence[str] = (),
    ) -> Deferred[list[int]]:
        """Run redisscripts.REJOIN for users (key, name), departed (key, line) and pending keys."""

    def goodbye(left: tuple[bytes, bytes]) -> Deferred[int]:  # noqa: N805
        """Run redisscripts.GOODBYE: the node leaves the room."""

    def disconnect() -> None:
        """Close both connections, without reporting them lost."""


def template(line: Callable[[str], str]) -> tuple[bytes, bytes]:
    """What goes before and after the name in the line that line(name) writes, encoded.

    That is how a script writes a name it found into a line of wire.py.
    """
    before, after = encode_line(line("\0")).split(b"\0")
    return before, after
