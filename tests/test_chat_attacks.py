"""Attacks on a real labchat that once held up everyone in the room, kept as tests.

Each runs a real server, the attackers in a process of their own, and a
pair of well-behaved users who time the room while the attack goes on
(support.attacks). They need many sockets or a long flood, so they are
marked slow; CI runs them all the same.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.attacks import attackers, time_the_room
from support.chat import chat_server
from support.nodes import start_nodes
from support.processes import ServerProcess
from support.redis import RedisServer

pytestmark = pytest.mark.slow

# How long the pair times the room under a flood: long enough that a
# server falling behind by a second a second (as one did) shows it.
FLOOD_SECONDS = 8.0


def test_a_flood_of_empty_lines_does_not_hold_up_the_others(
    servers: Callable[..., ServerProcess],
) -> None:
    _, port = chat_server(servers, "--max-per-host", "0")
    with attackers("flood", port, 3):
        timings = time_the_room(port, FLOOD_SECONDS, ignore=("* flood",))
    assert timings.other_lines == []
    assert len(timings.delays) == timings.sent
    assert max(timings.delays) < 1.0


def test_a_flood_of_empty_lines_on_a_node_of_a_shared_room_does_not_hold_up_the_others(
    servers: Callable[..., ServerProcess], redis_server: RedisServer
) -> None:
    [node] = start_nodes(servers, [redis_server.url], "--max-per-host", "0")
    with attackers("flood", node.port, 3):
        timings = time_the_room(node.port, FLOOD_SECONDS, ignore=("* flood",))
    assert timings.other_lines == []
    assert len(timings.delays) == timings.sent
    assert max(timings.delays) < 1.0


def test_a_crowd_leaving_at_once_does_not_stall_the_others(
    servers: Callable[..., ServerProcess],
) -> None:
    _, port = chat_server(servers, "--max-users", "4000", "--max-per-host", "0")
    with attackers("crowd", port, 3000) as crowd:
        assert crowd.stdin is not None

        def leave() -> None:
            assert crowd.stdin is not None
            crowd.stdin.write("leave\n")
            crowd.stdin.flush()

        timings = time_the_room(port, 4.0, at_one_second=leave, ignore=("* crowd",))
    # Not one of the pair's lines dropped by flood control at 10 a second.
    assert timings.other_lines == []
    assert len(timings.delays) == timings.sent
    assert max(timings.delays) < 0.5
