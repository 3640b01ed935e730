"""The room's figures in the Prometheus text format, for /metrics.

prometheus_client writes the format; the figures themselves are the room's
plain counts (labproto.chat.figures), read at each scrape, so that keeping
them costs the chat nothing between scrapes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

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
        yield labelled(
            GaugeMetricFamily("labchat_users_online", "Users logged in, by what carries them.",
                              labels=["transport"]),
            figures.TRANSPORTS, Counter(member.kind for member in room.members()),
        )  # fmt: skip
        yield labelled(
            CounterMetricFamily("labchat_logins", "Logins since the server started.",
                                labels=["transport"]),
            figures.TRANSPORTS, counts.logins,
        )  # fmt: skip
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
        yield labelled(
            CounterMetricFamily("labchat_disconnects", "Connections ended, by why.",
                                labels=["reason"]),
            figures.DISCONNECT_REASONS, counts.disconnects,
        )  # fmt: skip
        yield CounterMetricFamily(
            "labchat_flood_dropped",
            "Lines dropped by flood control (ERROR slow down: message dropped).",
            value=counts.flood_dropped,
        )


def labelled(
    family: GaugeMetricFamily | CounterMetricFamily,
    label_values: Sequence[str],
    counts: Counter[str],
) -> Metric:
    """family with one sample for each of label_values, even those that count 0.

    A series that appears only once its count is above 0 would make a
    dashboard's first rate of it wrong, and hide what can happen.
    """
    for value in label_values:
        family.add_metric([value], counts[value])
    return family


def room_registry(room: ChatRoom) -> CollectorRegistry:
    """A registry of room's figures, and of this process's CPU time, memory and open files."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RoomCollector(room))
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in the Prometheus text format (served as CONTENT_TYPE)."""
    return generate_latest(registry)
