"""labchat nodes sharing one room through a real redis-server (--redis), as real twistd processes.

Each test starts its own empty Redis (the redis_server fixture) and its
nodes together, and speaks to them over loopback sockets as users would.
Where a test needs one node to find Redis again before another, that other
reaches Redis through a RedisGate that the test keeps closed meanwhile.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator

import pytest
from support.chat import PROMPT, ChatUser, Connect, wait_until
from support.nodes import IN_ROOM, Node, RedisGate, log_in_all, start_nodes
from support.processes import DEADLINE, ServerProcess
from support.redis import RedisServer

Start = Callable[..., ServerProcess]

UNAVAILABLE = "* backplane unavailable, reconnecting"
RESTORED = "* backplane restored"
ROOM_UNAVAILABLE = "ERROR room unavailable, try again"
# What a node logs when it loses Redis; group 1 is how many users it told.
LOST_REDIS = r"Lost Redis at redis://127\.0\.0\.1:\d+/0 room lobby \(.*\): (\d+) users told"
# The longest wait between two tries to reach Redis again (sharedroom.LAST_RETRY).
LAST_RETRY = 10.0


@pytest.fixture
def gate(redis_server: RedisServer) -> Iterator[RedisGate]:
    """A RedisGate to the test's Redis, open; stopped after the test."""
    relay = RedisGate(redis_server.host, redis_server.port)
    yield relay
    relay.stop()


def everyone_hears(users: list[ChatUser], *lines: str) -> None:
    """Assert that the next lines each of users receives are exactly lines."""
    wait_until(users, lambda user: len(user.lines) >= user.seen + len(lines))
    for user in users:
        user.expect(*lines)


def alice_on_a_and_bob_on_b(a: Node, b: Node, connect: Connect) -> tuple[ChatUser, ChatUser]:
    """alice logged in on node a and bob on node b, each told of the other."""
    alice, bob = connect(a.port), connect(b.port)
    alice.log_in("alice")
    bob.log_in("bob")
    alice.expect("* bob joined")
    return alice, bob


def alice_and_carol_on_a_and_bob_on_b(
    a: Node, b: Node, connect: Connect
) -> tuple[ChatUser, ChatUser, ChatUser]:
    """alice and carol logged in on node a, then bob on node b; nothing left unheard."""
    alice, carol, bob = connect(a.port), connect(a.port), connect(b.port)
    alice.log_in("alice")
    carol.log_in("carol")
    alice.expect("* carol joined")
    bob.log_in("bob")
    everyone_hears([alice, carol], "* bob joined")
    return alice, carol, bob


def restart_redis_behind(redis_server: RedisServer, gate: RedisGate, users: list[ChatUser]) -> None:
    """Stop Redis (users are told), close the gate, and start Redis again, empty."""
    redis_server.stop()
    everyone_hears(users, UNAVAILABLE)
    gate.close()
    redis_server.start()


# The fixtures are asked for in this order so that the nodes stop, and say
# goodbye to Redis, before Redis does.


def test_nodes_sharing_a_redis_are_one_room(
    redis_server: RedisServer, servers: Start, connect: Connect
) -> None:
    a, b = start_nodes(servers, [redis_server.url] * 2)
    alice, bob = connect(a.port), connect(b.port)
    assert alice.log_in("alice") == "Welcome alice! 1 user online: alice"
    assert bob.log_in("bob") == "Welcome bob! 2 users online: alice, bob"
    alice.expect("* bob joined")
    # Unique whatever the case, across nodes; the one refused stays at the prompt.
    carol = connect(a.port)
    carol.expect(PROMPT)
    carol.send("BOB")
    carol.expect("ERROR name taken: BOB")
    carol.send("Carol")
    carol.expect("Welcome Carol! 3 users online: alice, bob, Carol")
    carol.name = "Carol"
    everyone_hears([alice, bob], "* Carol joined")
    room = [alice, bob, carol]

    alice.send("hello from A")
    everyone_hears(room, "<alice> hello from A")
    bob.send("/me waves from B")
    everyone_hears(room, "* bob waves from B")
    bob.send("/who")
    bob.expect("3 users online: alice, bob, Carol")

    bob.send("/msg ALICE psst")
    alice.expect("*bob* psst")
    bob.expect("-> *alice* psst")
    alice.send("/msg nobody hi")
    alice.expect("ERROR no such user: nobody")
    carol.send("/msg bob back at you")
    bob.expect("*Carol* back at you")
    carol.expect("-> *bob* back at you")

    bob.send("/nick robert")
    everyone_hears(room, "* bob is now known as robert")
    carol.send("/nick ALICE")
    carol.expect("ERROR name taken: ALICE")
    alice.send("/msg bob still there?")
    alice.expect("ERROR no such user: bob")
    alice.send("/msg robert still there?")
    bob.expect("*alice* still there?")
    alice.expect("-> *robert* still there?")

    alice.send("/quit")
    assert alice.rest() == ["Bye alice!"]
    everyone_hears([bob, carol], "* alice left (quit)")
    # The name is free again, on any node.
    dave = connect(b.port)
    assert dave.log_in("Alice") == "Welcome Alice! 3 users online: Alice, Carol, robert"
    everyone_hears([bob, carol], "* Alice joined")
    carol.send("/who")
    carol.expect("3 users online: Alice, Carol, robert")
    # Nobody heard a private message that was not for them.
    assert [line for line in carol.lines if "psst" in line or "still there" in line] == []
    a.server.wait_for(r"\] alice left \(quit\)$")
    b.server.wait_for(r"\] bob is now known as robert$")


def test_a_node_takes_logins_only_once_it_is_in_the_room(
    redis_server: RedisServer, servers: Start, connect: Connect
) -> None:
    redis_server.stop()
    [node] = start_nodes(servers, [redis_server.url], in_room=False)
    node.server.wait_for(r"Redis unreachable at redis://127\.0\.0\.1:\d+/0 room lobby ")
    alice = connect(node.port)
    alice.expect(PROMPT)
    alice.send("alice")
    alice.expect(ROOM_UNAVAILABLE)
    redis_server.start()
    node.server.wait_for(IN_ROOM)
    # Still at the prompt: the next line is a name again.
    alice.send("alice")
    alice.expect("Welcome alice! 1 user online: alice")


def test_the_users_of_a_node_killed_leave_as_node_lost_within_lost_after(
    redis_server: RedisServer, servers: Start, connect: Connect
) -> None:
    a, b, c = start_nodes(servers, [redis_server.url] * 3, "--lost-after", "3")
    alice, bob, carol = connect(a.port), connect(b.port), connect(c.port)
    alice.log_in("alice")
    bob.log_in("bob")
    alice.expect("* bob joined")
    carol.log_in("carol")
    everyone_hears([alice, bob], "* carol joined")
    b.server.process.kill()
    killed = time.monotonic()
    everyone_hears([alice, carol], "* bob left (node lost)")
    took = time.monotonic() - killed
    # 3 s, and a margin for a loaded machine: well short of the default 15 s.
    assert took < 3 * 3, f"told after {took:.1f} s"
    again = connect(c.port)
    assert again.log_in("BOB") == "Welcome BOB! 3 users online: alice, BOB, carol"
    everyone_hears([alice, carol], "* BOB joined")


def test_a_node_stopped_tells_the_others_its_users_left(
    redis_server: RedisServer, servers: Start, connect: Connect
) -> None:
    a, b = start_nodes(servers, [redis_server.url] * 2)
    alice, bob, carol = connect(a.port), connect(b.port), connect(b.port)
    alice.log_in("alice")
    bob.log_in("bob")
    alice.expect("* bob joined")
    carol.log_in("carol")
    everyone_hears([alice, bob], "* carol joined")
    b.server.process.send_signal(signal.SIGTERM)
    assert b.server.process.wait(DEADLINE) in (0, -signal.SIGTERM)
    for user in (bob, carol):
        assert user.rest() == ["* server shutting down"]
    assert sorted(alice.next_lines(2)) == [
        "* bob left (server shutting down)",
        "* carol left (server shutting down)",
    ]
    alice.send("/who")
    alice.expect("1 user online: alice")
    b.server.wait_for(r"Node \S+ left redis://127\.0\.0\.1:\d+/0 room lobby$")
    assert "Traceback" not in b.server.output()


def test_redis_lost_and_restarted_mid_chat(
    redis_server: RedisServer, gate: RedisGate, servers: Start, connect: Connect
) -> None:
    # B reaches Redis through the gate, so that the test can have A back first.
    a, b = start_nodes(servers, [redis_server.url, gate.url])
    alice, carol, bob = alice_and_carol_on_a_and_bob_on_b(a, b, connect)
    node_a, node_b = [alice, carol], [bob]

    redis_server.stop()
    everyone_hears([*node_a, *node_b], UNAVAILABLE)
    gate.close()
    assert a.server.wait_for(LOST_REDIS).group(1) == "2"
    assert b.server.wait_for(LOST_REDIS).group(1) == "1"
    dave = connect(a.port)
    dave.expect(PROMPT)
    dave.send("dave")
    dave.expect(ROOM_UNAVAILABLE)
    # Each node's users still talk among themselves.
    alice.send("only node A hears this")
    everyone_hears(node_a, "<alice> only node A hears this")
    bob.send("/me is on his own")
    bob.expect("* bob is on his own")

    redis_server.start()
    restarted = time.monotonic()
    # Back, A lists the room as it is now: B is not back yet.
    listed_by_a = "2 users online: alice, carol"
    wait_until(node_a, lambda user: listed_by_a in user.lines[user.seen :])
    assert time.monotonic() - restarted < LAST_RETRY
    gate.open()
    wait_until(node_b, lambda user: RESTORED in user.lines[user.seen :])
    # The restarted Redis was empty: B registered bob again, and A's users heard.
    bob.send("back together")
    for user in node_a:
        heard = user.lines_through("<bob> back together")
        assert heard == [RESTORED, listed_by_a, "* bob joined", "<bob> back together"], user
    assert bob.lines_through("<bob> back together") == [
        RESTORED,
        "3 users online: alice, bob, carol",
        "<bob> back together",
    ]
    dave.send("dave")
    dave.expect("Welcome dave! 4 users online: alice, bob, carol, dave")
    everyone_hears([*node_a, *node_b], "* dave joined")
    bob.send("/msg alice psst")
    alice.expect("*bob* psst")
    bob.expect("-> *alice* psst")
    for user in (alice, carol, bob):
        assert user.lines.count(UNAVAILABLE) == 1, user
        assert user.lines.count(RESTORED) == 1, user
    assert "only node A hears this" not in "\n".join(bob.lines)
    assert "bob is on his own" not in "\n".join(alice.lines + carol.lines)


def test_after_a_redis_restart_nobody_is_told_that_users_of_their_own_node_joined(
    redis_server: RedisServer, gate: RedisGate, servers: Start, connect: Connect
) -> None:
    a, b = start_nodes(servers, [redis_server.url, gate.url])
    alice, bob = alice_on_a_and_bob_on_b(a, b, connect)
    restart_redis_behind(redis_server, gate, [alice, bob])
    alice.wait(lambda user: "1 user online: alice" in user.lines[user.seen :])
    gate.open()
    bob.wait(lambda user: RESTORED in user.lines[user.seen :])
    bob.send("back")
    # alice never left: she is not told that she joined; bob, whom A lost, is.
    assert alice.lines_through("<bob> back") == [
        RESTORED,
        "1 user online: alice",
        "* bob joined",
        "<bob> back",
    ]
    assert bob.lines_through("<bob> back") == [RESTORED, "2 users online: alice, bob", "<bob> back"]


def test_a_node_cut_off_from_redis_for_a_moment_tells_the_room_who_left_meanwhile(
    redis_server: RedisServer, gate: RedisGate, servers: Start, connect: Connect
) -> None:
    # Redis stays up and keeps A's names; only A's link to it is cut.
    a, b = start_nodes(servers, [gate.url, redis_server.url])
    alice, carol, bob = alice_and_carol_on_a_and_bob_on_b(a, b, connect)
    gate.close()
    everyone_hears([alice, carol], UNAVAILABLE)
    carol.send("/quit")
    assert carol.rest() == ["Bye carol!"]
    alice.expect("* carol left (quit)")
    gate.open()
    alice.wait(lambda user: RESTORED in user.lines[user.seen :])
    alice.send("back")
    # Told once, on each node: alice when carol left, bob once A was back.
    assert alice.lines_through("<alice> back") == [
        RESTORED,
        "2 users online: alice, bob",
        "<alice> back",
    ]
    assert bob.lines_through("<alice> back") == ["* carol left (quit)", "<alice> back"]
    bob.send("/who")
    bob.expect("2 users online: alice, bob")


def test_a_name_taken_on_another_node_while_redis_was_away_is_lost(
    redis_server: RedisServer, gate: RedisGate, servers: Start, connect: Connect
) -> None:
    # A reaches Redis through the gate, kept closed until B has given alice's name away.
    a, b = start_nodes(servers, [gate.url, redis_server.url])
    alice, bob = alice_on_a_and_bob_on_b(a, b, connect)
    restart_redis_behind(redis_server, gate, [alice, bob])
    bob.lines_through(RESTORED)
    thief = connect(b.port)
    assert thief.log_in("ALICE") == "Welcome ALICE! 2 users online: ALICE, bob"
    bob.lines_through("* ALICE joined")
    gate.open()
    alice.expect("* your name alice was taken on another node while the backplane was down", PROMPT)
    a.server.wait_for(r"\] alice left \(name taken meanwhile\)$")
    alice.send("alice")
    alice.expect("ERROR name taken: alice")
    alice.send("alice2")
    alice.expect("Welcome alice2! 3 users online: ALICE, alice2, bob")
    everyone_hears([bob, thief], "* alice2 joined")
    assert RESTORED not in alice.lines


SENDERS = 3
LINES_EACH = 50


def test_lines_sent_at_once_on_three_nodes_reach_everyone_in_one_order(
    redis_server: RedisServer, servers: Start, connect: Connect
) -> None:
    nodes = start_nodes(servers, [redis_server.url] * 3, "--rate", "0", "--quiet")
    # A sender and a listener on each node.
    users = [connect(node.port) for node in nodes for _ in range(2)]
    names = [f"{role}{number}" for number in range(SENDERS) for role in ("sender", "listener")]
    for user, name in zip(users, names, strict=True):
        user.log_in(name)
    users[-1].send("go")
    for user in users:
        user.lines_through(f"<{names[-1]}> go")
    senders = users[::2]
    for sender in senders:
        sender.send(*(f"line {number:02d}" for number in range(LINES_EACH)))
    wait_until(users, lambda user: len(user.lines) >= user.seen + SENDERS * LINES_EACH)
    heard = users[0].lines[users[0].seen :]
    for sender in senders:
        sent = [f"<{sender.name}> line {number:02d}" for number in range(LINES_EACH)]
        assert [line for line in heard if line.startswith(f"<{sender.name}> ")] == sent
    assert len(heard) == SENDERS * LINES_EACH
    for user in users:
        assert user.lines[user.seen :] == heard, f"{user.name} heard another order"


RACES = 20


def test_a_name_asked_for_on_two_nodes_at_once_goes_to_one(
    redis_server: RedisServer, servers: Start, connect: Connect
) -> None:
    a, b = start_nodes(servers, [redis_server.url] * 2)
    users: list[ChatUser] = []
    names: list[str] = []
    for race in range(RACES):
        pair = [(connect(a.port), f"racer{race:02d}"), (connect(b.port), f"RACER{race:02d}")]
        # Each node sends first in half the races.
        for user, name in pair if race % 2 else reversed(pair):
            users.append(user)
            names.append(name)
    answers = log_in_all(users, names)
    winners = []
    for first in range(0, len(users), 2):
        pair = list(zip(names[first : first + 2], answers[first : first + 2], strict=True))
        won = [name for name, answer in pair if answer.startswith(f"Welcome {name}! ")]
        lost = [name for name, answer in pair if answer == f"ERROR name taken: {name}"]
        assert len(won) == 1 and len(lost) == 1, pair
        winners += won
    winner = users[answers.index(next(answer for answer in answers if "Welcome" in answer))]
    winner.send("/who")
    listed = f"{RACES} users online: {', '.join(sorted(winners, key=str.lower))}"
    winner.lines_through(listed)
