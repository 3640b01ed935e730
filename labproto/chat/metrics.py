"""The room's figures in the Prometheus text format, for /metrics.

prometheus_client writes the format; the figures themselves are the room's
plain counts (labproto.chat.figures), read at each scrape, so that keeping
them costs the chat nothing between scrapes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from labproto.chat import figures
from labproto.chat.room import ChatRoom

# The media type of exposition()'s text.
CONTENT_TYPE = CONTENT_TYPE_LATEST


class RoomCollector(Collector):
    """Reads one room's figures whenever the registry it belongs to is scraped."""

    def __init__(self, room: ChatRoom) -> None:
        self.room = room

    def collect(self) -> Iterator[Metric]:
        room = self.room
        counts = room.figures
        online = GaugeMetricFamily(
            "labchat_users_online", "Users logged in, by what carries them.", labels=["transport"]
        )
        by_kind = Counter(member.kind for member in room.members())
        for kind in figures.TRANSPORTS:
            online.add_metric([kind], by_kind[kind])
        yield online
        logins = CounterMetricFamily(
            "labchat_logins", "Logins since the server started.", labels=["transport"]
        )
        for kind in figures.TRANSPORTS:
            logins.add_metric([kind], counts.logins[kind])
        yield logins
        yield CounterMetricFamily(
            "labchat_lines_relayed",
            "Messages and /me actions relayed to the room, and /msg lines to one user.",
            value=counts.lines_relayed,
        )
        yield CounterMetricFamily(
            "labchat_deliveries",
            "Lines handed to connections: a broadcast once per recipient.",
            value=counts.deliveries,
        )
        disconnects = CounterMetricFamily(
            "labchat_disconnects", "Connections ended, by why.", labels=["reason"]
        )
        for reason in figures.DISCONNECT_REASONS:
            disconnects.add_metric([reason], counts.disconnects[reason])
        yield disconnects
        yield CounterMetricFamily(
            "labchat_flood_dropped",
            "Lines dropped by flood control (ERROR slow down: message dropped).",
            value=counts.flood_dropped,
        )


def room_registry(room: ChatRoom) -> CollectorRegistry:
    """A registry of room's figures, and of this process's CPU time, memory and open files."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RoomCollector(room))
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in the Prometheus text format (served as CONTENT_TYPE)."""
    return generate_latest(registry)
