"""The room's running figures: plain counts of what has happened, for /metrics.

They are kept as plain integers, not as prometheus_client metrics: a
broadcast to a thousand users adds to them once, on the hot path, where a
metric's lock would cost more than the delivery itself. labproto.chat.metrics
reads them when /metrics is scraped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from labproto.chat import wire

# What carries a user's lines, as /metrics labels it (IChatMember.kind).
TCP = "tcp"
WEBSOCKET = "websocket"
TRANSPORTS = (TCP, WEBSOCKET)

# Why a connection ended, as /metrics labels it.
QUIT = "quit"
CONNECTION_LOST = "connection_lost"
SEND_QUEUE_EXCEEDED = "send_queue_exceeded"
LOGIN_TIMEOUT = "login_timeout"
ROOM_FULL = "room_full"
TOO_MANY_FROM_HOST = "too_many_from_host"
SERVER_SHUTTING_DOWN = "server_shutting_down"
DISCONNECT_REASONS = (
    QUIT,
    CONNECTION_LOST,
    SEND_QUEUE_EXCEEDED,
    LOGIN_TIMEOUT,
    ROOM_FULL,
    TOO_MANY_FROM_HOST,
    SERVER_SHUTTING_DOWN,
)

# The leave reasons of the wire ("* alice left (...)") that are not a user's own words.
_LEAVE_REASONS = {
    wire.CONNECTION_LOST: CONNECTION_LOST,
    wire.SEND_QUEUE_EXCEEDED: SEND_QUEUE_EXCEEDED,
    wire.SERVER_SHUTTING_DOWN: SERVER_SHUTTING_DOWN,
}


def disconnect_reason(leave_reason: str) -> str:
    """The /metrics label of a leave reason of the wire; a /quit's own words count as quit."""
    return _LEAVE_REASONS.get(leave_reason, QUIT)


@dataclass
class RoomFigures:
    """What has happened in one room since the server started."""

    # Logins by what carries the user ("tcp", "websocket").
    logins: Counter[str] = field(default_factory=Counter)
    # Messages and /me actions relayed to the room, and /msg lines to one user.
    lines_relayed: int = 0
    # Lines handed to connections: a broadcast once per recipient, a line to one user once.
    deliveries: int = 0
    # Connections ended, by a reason of DISCONNECT_REASONS.
    disconnects: Counter[str] = field(default_factory=Counter)
    # Lines refused by flood control ("ERROR slow down: message dropped").
    flood_dropped: int = 0
