"""RedisBackplane and redisscripts' Lua against a real redis-server, on the real reactor.

Each test links nodes to an empty redis-server straight through
RedisBackplane, as SharedRoom would, and checks what each script answers,
what it publishes on the room's channel (the records of redisscripts'
docstring), and which keys it leaves in Redis.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
import pytest_twisted
from support.backplane import FakeBackplane, FakeRedis
from support.deferreds import result_of
from support.processes import DEADLINE, poll_until
from support.redis import RedisServer
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import Clock

from labproto.chat import wire
from labproto.chat.backplane import BackplaneError, Operation, template
from labproto.chat.redislink import RedisBackplane, RoomKeys
from labproto.chat.redisurl import parse_redis_url
from labproto.chat.room import encode_line

KEYS = RoomKeys("lobby")
JOINED = template(wire.joined)
LEFT = template(lambda name: wire.left(name, wire.CONNECTION_LOST))
NODE_LOST = template(lambda name: wire.left(name, wire.NODE_LOST))
SHUTTING_DOWN = template(lambda name: wire.left(name, wire.SERVER_SHUTTING_DOWN))


def lines(*texts: str) -> bytes:
    return b"".join(encode_line(text) for text in texts)


def said(name: str, text: str) -> Operation:
    return ("L", encode_line(wire.said(name, text)))


def whisper(sender: str, recipient: str, text: str) -> Operation:
    before, after = template(lambda name: wire.whisper_sent(name, text))
    return (
        "W",
        recipient.lower(),
        encode_line(wire.whispered(sender, text)),
        before,
        after,
        sender,
    )


def _parse(reply: bytes) -> tuple[Any, bytes]:
    head, rest = reply.split(b"\r\n", 1)
    kind, body = head[:1], head[1:]
    if kind == b"$":
        size = int(body)
        return (None, rest) if size < 0 else (rest[:size], rest[size + 2 :])
    if kind == b"*":
        items = []
        for _ in range(max(int(body), 0)):
            item, rest = _parse(rest)
            items.append(item)
        return items, rest
    if kind == b":":
        return int(body), rest
    if kind == b"-":
        raise AssertionError(f"redis-server refused: {body.decode()}")
    return body, rest


def value(server: RedisServer, *words: str | bytes) -> Any:
    """The reply of one command, as Python: bytes, int, list, or None."""
    parsed, _ = _parse(server.command(*words))
    return parsed


def redis_ms(server: RedisServer) -> int:
    seconds, micros = value(server, "TIME")
    return int(seconds) * 1000 + int(micros) // 1000


class Link:
    """One node's RedisBackplane, and what came to it on the room's channel."""

    def __init__(self, backplane: RedisBackplane) -> None:
        self.backplane = backplane
        self.messages: list[bytes] = []
        self.read = 0
        self.why: list[str] = []
        self._changed: list[Deferred[None]] = []

    def received(self, message: bytes) -> None:
        self.messages.append(message)
        self._wake()

    def lost(self, why: str) -> None:
        self.why.append(why)
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, []
        for each in changed:
            if not each.called:
                each.callback(None)

    async def until(self, check: Callable[[], bool], what: str) -> None:
        """Wait, up to DEADLINE, until check() holds; it is tried each time something comes."""
        while not check():
            changed: Deferred[None] = Deferred()
            self._changed.append(changed)
            changed.addTimeout(DEADLINE, reactor)
            try:
                await changed
            except Exception:
                raise AssertionError(f"still waiting after {DEADLINE} s for {what}") from None

    async def message(self) -> bytes:
        """The next message of the channel."""
        index = self.read
        await self.until(lambda: len(self.messages) > index, f"message {index + 1}")
        self.read += 1
        return self.messages[index]

    async def flush(self, *operations: Operation) -> list[int]:
        return await self.backplane.flush(operations)

    async def marker(self, text: str) -> None:
        """Publish a line, and read up to it: nothing came between what was read and it."""
        await self.flush(("L", encode_line(text)))
        assert await self.message() == encode_line(text)


Connect = Callable[..., Awaitable[Link]]


@pytest_twisted.async_yield_fixture
async def connect(redis_server: RedisServer) -> AsyncIterator[Connect]:
    """Connect RedisBackplane links to redis_server (node, room, url); all closed after."""
    opened: list[Link] = []

    async def open_link(
        node: str, room: str = "lobby", url: str | None = None, registered: bool = True
    ) -> Link:
        address = parse_redis_url(url or redis_server.url)
        link = Link(RedisBackplane(reactor, address, room, node))
        opened.append(link)
        await link.backplane.connect(link.received, link.lost)
        if registered:
            # As a node does before it takes logins: FLUSH takes no names before.
            assert await link.backplane.rejoin(60.0, JOINED, LEFT, [], []) == []
        return link

    yield open_link
    for link in opened:
        link.backplane.disconnect()


async def two_links(connect: Connect) -> tuple[Link, Link]:
    a, b = await connect("a"), await connect("b")
    return a, b


async def holding(link: Link, *names: str, seen_by: Sequence[Link] = ()) -> None:
    """Have link's node claim names; link and those seen_by read the message it published."""
    answers = await link.flush(*(("C", "0", name.lower(), name) for name in names))
    assert answers == [1] * len(names)
    for reader in (link, *seen_by):
        assert (await reader.message()).startswith(b"\x01J" + link.backplane.node.encode())


# FLUSH


@pytest_twisted.ensureDeferred
async def test_lines_go_to_every_node_as_one_message(connect: Connect) -> None:
    a, b = await two_links(connect)
    assert await a.flush(said("alice", "hi"), said("alice", "yo")) == []
    expected = lines("<alice> hi", "<alice> yo")
    assert await a.message() == await b.message() == expected


@pytest_twisted.ensureDeferred
async def test_a_login_claims_the_name_and_publishes_a_j_record(
    connect: Connect, redis_server: RedisServer
) -> None:
    a, b = await two_links(connect)
    assert await b.flush(("C", "3", "bob", "bob")) == [1]
    assert await b.message() == await a.message() == b"\x01Jb\t3\tbob\t1\tbob\r\n"
    assert await a.flush(("C", "7", "alice", "Alice")) == [1]
    record = await b.message()
    assert await a.message() == record
    assert record.startswith(b"\x01Ja\t7\tAlice\t2\t") and record.endswith(b"\r\n")
    assert sorted(record[:-2].split(b"\t")[4].split(b",")) == [b"Alice", b"bob"]
    assert value(redis_server, "TYPE", KEYS.names) == b"hash"
    assert value(redis_server, "HGETALL", KEYS.names) in (
        [b"bob", b"b\tbob", b"alice", b"a\tAlice"],
        [b"alice", b"a\tAlice", b"bob", b"b\tbob"],
    )
    assert value(redis_server, "SMEMBERS", KEYS.node("a")) == [b"alice"]
    assert value(redis_server, "SMEMBERS", KEYS.node("b")) == [b"bob"]


@pytest_twisted.ensureDeferred
async def test_a_name_taken_is_refused_without_a_message(
    connect: Connect, redis_server: RedisServer
) -> None:
    a, b = await two_links(connect)
    await holding(a, "alice", seen_by=[b])
    assert await b.flush(("C", "1", "alice", "ALICE")) == [0]
    await b.marker("after")
    assert value(redis_server, "HGET", KEYS.names, "alice") == b"a\talice"
    assert value(redis_server, "EXISTS", KEYS.node("b")) == 0


@pytest_twisted.ensureDeferred
async def test_two_claims_of_one_name_in_one_flush_go_to_the_first(connect: Connect) -> None:
    a = await connect("a")
    answers = await a.flush(("C", "1", "carol", "carol"), ("C", "2", "carol", "Carol"))
    assert answers == [1, 0]
    assert await a.message() == b"\x01Ja\t1\tcarol\t1\tcarol\r\n"


@pytest_twisted.ensureDeferred
async def test_two_nodes_claiming_one_name_at_once_one_wins(
    connect: Connect, redis_server: RedisServer
) -> None:
    a, b = await two_links(connect)
    for round_ in range(20):
        name = f"name{round_}"
        results = await DeferredList(
            [
                a.backplane.flush([("C", "1", name, name)]),
                b.backplane.flush([("C", "1", name, name.upper())]),
            ],
            fireOnOneErrback=True,
        )
        answers = [answer for _, answer in results]
        assert sorted(answers) == [[0], [1]]
        winner = "a" if answers[0] == [1] else "b"
        spelling = name if winner == "a" else name.upper()
        record = f"\x01J{winner}\t1\t{spelling}\t{round_ + 1}\t".encode()
        for link in (a, b):
            message = await link.message()
            assert message.startswith(record)
        held = value(redis_server, "HGET", KEYS.names, name)
        assert held == f"{winner}\t{spelling}".encode()


@pytest_twisted.ensureDeferred
async def test_a_j_record_lists_20_names_and_counts_more(connect: Connect) -> None:
    a = await connect("a")
    names = [f"user{number:02d}" for number in range(1, 22)]
    await a.flush(*(("C", str(number), name, name) for number, name in enumerate(names)))
    records = (await a.message()).split(b"\r\n")[:-1]
    assert len(records) == 21
    twentieth = records[19].split(b"\t")
    assert twentieth[3] == b"20"
    assert sorted(twentieth[4].split(b",")) == [name.encode() for name in names[:20]]
    assert records[20] == b"\x01Ja\t20\tuser21\t21\t"


@pytest_twisted.ensureDeferred
async def test_a_leave_frees_the_name_of_its_own_node_only(
    connect: Connect, redis_server: RedisServer
) -> None:
    a, b = await two_links(connect)
    await holding(a, "alice", "amy", seen_by=[b])
    left = lines("* alice left (quit)")
    assert await b.flush(("X", "alice", left)) == []
    await b.marker("b's leave of a's name did nothing")
    assert await a.flush(("X", "alice", left), ("X", "nobody", lines("* nobody left"))) == []
    assert await b.message() == left
    assert value(redis_server, "HGET", KEYS.names, "alice") is None
    assert value(redis_server, "SMEMBERS", KEYS.node("a")) == [b"amy"]


@pytest_twisted.ensureDeferred
async def test_a_rename_moves_the_name_and_publishes_an_r_record_then_the_line(
    connect: Connect, redis_server: RedisServer
) -> None:
    a, b = await two_links(connect)
    await holding(a, "alice", seen_by=[b])
    line = lines("* alice is now known as carol")
    assert await a.flush(("R", "4", "alice", "carol", "carol", line)) == [1]
    assert await b.message() == b"\x01Ra\t4\tcarol\r\n" + line
    assert value(redis_server, "HGET", KEYS.names, "alice") is None
    assert value(redis_server, "HGET", KEYS.names, "carol") == b"a\tcarol"
    assert value(redis_server, "SMEMBERS", KEYS.node("a")) == [b"carol"]


@pytest_twisted.ensureDeferred
async def test_a_rename_to_a_name_taken_is_refused_without_a_message(
    connect: Connect, redis_server: RedisServer
) -> None:
    a, b = await two_links(connect)
    await holding(a, "alice", seen_by=[b])
    await holding(b, "bob", seen_by=[a])
    line = lines("* alice is now known as BOB")
    assert await a.flush(("R", "5", "alice", "bob", "BOB", line)) == [0]
    await b.marker("after")
    assert value(redis_server, "HGET", KEYS.names, "alice") == b"a\talice"
    assert value(redis_server, "HGET", KEYS.names, "bob") == b"b\tbob"


@pytest_twisted.ensureDeferred
async def test_a_rename_to_another_case_of_ones_own_name_keeps_it(
    connect: Connect, redis_server: RedisServer
) -> None:
    a = await connect("a")
    await holding(a, "alice")
    line = lines("* alice is now known as ALICE")
    assert await a.flush(("R", "6", "alice", "alice", "ALICE", line)) == [1]
    assert await a.message() == b"\x01Ra\t6\tALICE\r\n" + line
    assert value(redis_server, "HGET", KEYS.names, "alice") == b"a\tALICE"
    assert value(redis_server, "SMEMBERS", KEYS.node("a")) == [b"alice"]


@pytest_twisted.ensureDeferred
async def test_a_rename_takes_no_name_of_another_node(
    connect: Connect, redis_server: RedisServer
) -> None:
    # As after node a was given up for lost and its user's name taken by node b.
    a, b = await two_links(connect)
    await holding(b, "bob", seen_by=[a])
    renamed = lines("* bob is now known as bobby")
    assert await a.flush(("R", "1", "bob", "bobby", "bobby", renamed)) == [1]
    await a.message()
    assert value(redis_server, "HGET", KEYS.names, "bob") == b"b\tbob"
    assert value(redis_server, "HGET", KEYS.names, "bobby") == b"a\tbobby"
    recased = lines("* bob is now known as BOB")
    assert await a.flush(("R", "2", "bob", "bob", "BOB", recased)) == [0]
    await a.marker("after")
    assert value(redis_server, "HGET", KEYS.names, "bob") == b"b\tbob"


@pytest_twisted.ensureDeferred
async def test_a_private_message_publishes_a_t_record_for_each_end(connect: Connect) -> None:
    a, b = await two_links(connect)
    await holding(a, "alice", seen_by=[b])
    await holding(b, "Bob", seen_by=[a])
    assert await a.flush(whisper("alice", "BOB", "psst\tthere")) == [1]
    expected = b"\x01Tb\tbob\t*alice* psst\tthere\r\n\x01Ta\talice\t-> *Bob* psst\tthere\r\n"
    assert await a.message() == await b.message() == expected


@pytest_twisted.ensureDeferred
async def test_a_private_message_to_nobody_is_refused_without_a_message(connect: Connect) -> None:
    a = await connect("a")
    await holding(a, "alice")
    assert await a.flush(whisper("alice", "zed", "hi"), said("alice", "after")) == [0]
    assert await a.message() == lines("<alice> after")


@pytest_twisted.ensureDeferred
async def test_who_publishes_an_n_record_with_every_name(connect: Connect) -> None:
    a, b = await two_links(connect)
    await holding(a, "alice", seen_by=[b])
    await holding(b, "Bob", seen_by=[a])
    assert await b.flush(("N", "9")) == [1]
    record = await b.message()
    assert record.startswith(b"\x01Nb\t9\t") and record.endswith(b"\r\n")
    assert sorted(record[6:-2].split(b",")) == [b"Bob", b"alice"]


@pytest_twisted.ensureDeferred
async def test_a_mark_comes_back_after_the_lines_before_it(connect: Connect) -> None:
    a = await connect("a")
    assert await a.flush(("L", b"<alice> bye now\r\n"), ("F", "7")) == [1]
    assert await a.message() == b"<alice> bye now\r\n\x01Fa\t7\r\n"


@pytest_twisted.ensureDeferred
async def test_answers_come_in_the_order_of_their_operations(connect: Connect) -> None:
    a = await connect("a")
    answers = await a.flush(
        ("C", "1", "alice", "alice"),
        said("alice", "hi"),
        ("C", "2", "alice", "alice"),
        ("N", "3"),
        whisper("alice", "nobody", "x"),
        ("R", "4", "alice", "amy", "amy", lines("* alice is now known as amy")),
    )
    assert answers == [1, 0, 1, 0, 1]


@pytest_twisted.ensureDeferred
async def test_an_unknown_operation_fails_the_flush(connect: Connect) -> None:
    a = await connect("a")
    with pytest.raises(BackplaneError, match="unknown operation Q"):
        await a.flush(("Q", "x"))


@pytest_twisted.ensureDeferred
async def test_rooms_are_apart(connect: Connect, redis_server: RedisServer) -> None:
    a = await connect("a")
    other = await connect("a", room="other")
    await holding(other, "alice")
    assert await a.flush(("C", "1", "alice", "alice")) == [1]
    assert (await a.message()).startswith(b"\x01Ja\t1\talice\t1\t")
    await other.marker("only here")
    assert value(redis_server, "HGET", "labchat:other:names", "alice") == b"a\talice"


# HEARTBEAT, REJOIN, GOODBYE


@pytest_twisted.ensureDeferred
async def test_rejoin_registers_the_node_for_its_time_to_live(
    connect: Connect, redis_server: RedisServer
) -> None:
    a = await connect("a")
    before = redis_ms(redis_server)
    assert await a.backplane.rejoin(15.0, JOINED, LEFT, [], []) == []
    after = redis_ms(redis_server)
    assert value(redis_server, "TYPE", KEYS.nodes) == b"zset"
    score = int(value(redis_server, "ZSCORE", KEYS.nodes, "a"))
    assert before + 15_000 <= score <= after + 15_000
    await a.marker("nothing published before this")


@pytest_twisted.ensureDeferred
async def test_heartbeat_extends_the_nodes_time_and_answers_1(
    connect: Connect, redis_server: RedisServer
) -> None:
    a = await connect("a")
    await a.backplane.rejoin(1.0, JOINED, LEFT, [], [])
    first = int(value(redis_server, "ZSCORE", KEYS.nodes, "a"))
    assert await a.backplane.heartbeat(30.0, NODE_LOST) == 1
    assert int(value(redis_server, "ZSCORE", KEYS.nodes, "a")) >= first + 29_000
    await a.marker("nothing published before this")


@pytest_twisted.ensureDeferred
async def test_heartbeat_of_a_node_never_registered_answers_0(
    connect: Connect, redis_server: RedisServer
) -> None:
    a = await connect("a", registered=False)
    assert await a.backplane.heartbeat(10.0, NODE_LOST) == 0
    assert value(redis_server, "ZSCORE", KEYS.nodes, "a") is None


def wait_out(server: RedisServer, node: str) -> None:
    """Wait until Redis's clock has passed node's deadline."""
    deadline = int(value(server, "ZSCORE", KEYS.nodes, node))
    poll_until(lambda: True if redis_ms(server) > deadline else None)


@pytest_twisted.ensureDeferred
async def test_heartbeat_gives_up_a_node_past_its_time_and_frees_its_names(
    connect: Connect, redis_server: RedisServer
) -> None:
    a, b = await two_links(connect)
    await a.backplane.rejoin(0.05, JOINED, LEFT, [], [])
    await holding(a, "alice", "amy", seen_by=[b])
    await b.backplane.rejoin(10.0, JOINED, LEFT, [], [])
    await holding(b, "bob", seen_by=[a])
    wait_out(redis_server, "a")
    assert await b.backplane.heartbeat(10.0, NODE_LOST) == 1
    message = await b.message()
    # Not for a's own users: if a was merely stalled, they are still there.
    assert sorted(message.splitlines(keepends=True)) == [
        b"\x01Oa\t* alice left (node lost)\r\n",
        b"\x01Oa\t* amy left (node lost)\r\n",
    ]
    assert value(redis_server, "HKEYS", KEYS.names) == [b"bob"]
    assert value(redis_server, "EXISTS", KEYS.node("a")) == 0
    assert value(redis_server, "ZSCORE", KEYS.nodes, "a") is None
    assert value(redis_server, "ZRANGE", KEYS.nodes, "0", "-1") == [b"b"]
    # The node given up learns it at its next beat, which does not register it again.
    assert await a.backplane.heartbeat(10.0, NODE_LOST) == 0
    assert value(redis_server, "ZSCORE", KEYS.nodes, "a") is None


@pytest_twisted.ensureDeferred
async def test_a_node_given_up_for_lost_takes_no_name_until_it_registers_again(
    connect: Connect, redis_server: RedisServer
) -> None:
    a = await connect("a", registered=False)
    renamed = ("R", "2", "alice", "carol", "carol", lines("* alice is now known as carol"))
    assert await a.flush(("C", "1", "alice", "alice"), renamed) == [2, 2]
    assert value(redis_server, "HKEYS", KEYS.names) == []


@pytest_twisted.ensureDeferred
async def test_heartbeat_spares_a_node_within_its_time_and_a_late_node_that_beats(
    connect: Connect, redis_server: RedisServer
) -> None:
    a, b = await two_links(connect)
    await a.backplane.rejoin(60.0, JOINED, LEFT, [], [])
    await holding(a, "alice", seen_by=[b])
    await b.backplane.rejoin(60.0, JOINED, LEFT, [], [])
    assert await b.backplane.heartbeat(60.0, NODE_LOST) == 1
    # Late, a beats again before anyone found it out: its own beat spares it.
    assert await a.backplane.rejoin(0.05, JOINED, LEFT, [("alice", "alice")], []) == [1]
    wait_out(redis_server, "a")
    assert await a.backplane.heartbeat(60.0, NODE_LOST) == 1
    assert await b.backplane.heartbeat(60.0, NODE_LOST) == 1
    await b.marker("nobody was given up")
    assert value(redis_server, "HGET", KEYS.names, "alice") == b"a\talice"
    assert sorted(value(redis_server, "ZRANGE", KEYS.nodes, "0", "-1")) == [b"a", b"b"]


@pytest_twisted.ensureDeferred
async def test_rejoin_answers_1_kept_2_registered_again_0_taken(
    connect: Connect, redis_server: RedisServer
) -> None:
    a, b = await two_links(connect)
    await holding(a, "alice", "dave", "erin", seen_by=[b])
    await holding(b, "bob", seen_by=[a])
    users = [("alice", "alice"), ("carol", "Carol"), ("bob", "bob")]
    departed = [("erin", lines("* erin left (quit)")), ("alice", lines("* alice left (quit)"))]
    assert await a.backplane.rejoin(10.0, JOINED, LEFT, users, departed) == [1, 2, 0]
    # Carol joined (for the other nodes: node a's users never saw her go);
    # erin left as the node said; dave, held but not listed, left.
    assert await b.message() == b"\x01Oa\t" + lines(
        "* Carol joined", "* erin left (quit)", "* dave left (connection lost)"
    )
    assert sorted(value(redis_server, "HGETALL", KEYS.names)) == sorted(
        [b"alice", b"a\talice", b"carol", b"a\tCarol", b"bob", b"b\tbob"]
    )
    assert sorted(value(redis_server, "SMEMBERS", KEYS.node("a"))) == [b"alice", b"carol"]
    assert value(redis_server, "ZSCORE", KEYS.nodes, "a") is not None


@pytest_twisted.ensureDeferred
async def test_rejoin_of_a_node_with_nothing_to_change_publishes_nothing(
    connect: Connect, redis_server: RedisServer
) -> None:
    a = await connect("a")
    await holding(a, "alice")
    assert await a.backplane.rejoin(10.0, JOINED, LEFT, [("alice", "alice")], []) == [1]
    await a.marker("nothing before this")


@pytest_twisted.ensureDeferred
async def test_rejoin_keeps_a_pending_name_the_node_holds_and_takes_none_it_does_not(
    connect: Connect, redis_server: RedisServer
) -> None:
    # carol's login was given, its J record still on its way: not forgotten.
    a = await connect("a")
    await holding(a, "alice", "carol")
    users = [("alice", "alice")]
    assert await a.backplane.rejoin(10.0, JOINED, LEFT, users, [], ["carol", "dan"]) == [1]
    await a.marker("nothing before this")
    assert sorted(value(redis_server, "HKEYS", KEYS.names)) == [b"alice", b"carol"]


@pytest_twisted.ensureDeferred
async def test_goodbye_frees_every_name_of_the_node_and_leaves_the_room(
    connect: Connect, redis_server: RedisServer
) -> None:
    a, b = await two_links(connect)
    await a.backplane.rejoin(10.0, JOINED, LEFT, [], [])
    await b.backplane.rejoin(10.0, JOINED, LEFT, [], [])
    await holding(a, "alice", "amy", seen_by=[b])
    await holding(b, "bob", seen_by=[a])
    await a.backplane.goodbye(SHUTTING_DOWN)
    message = await b.message()
    assert sorted(message.splitlines(keepends=True)) == [
        b"* alice left (server shutting down)\r\n",
        b"* amy left (server shutting down)\r\n",
    ]
    assert value(redis_server, "HKEYS", KEYS.names) == [b"bob"]
    assert value(redis_server, "EXISTS", KEYS.node("a")) == 0
    assert value(redis_server, "ZRANGE", KEYS.nodes, "0", "-1") == [b"b"]


# The link itself


@pytest_twisted.ensureDeferred
async def test_lost_is_called_once_when_redis_stops_and_the_link_connects_again_after(
    connect: Connect, redis_server: RedisServer
) -> None:
    a = await connect("a")
    await a.marker("up")
    redis_server.stop()
    await a.until(lambda: bool(a.why), "lost() to be called")
    assert a.why[0]
    with pytest.raises(BackplaneError, match="not connected"):
        await a.flush(said("alice", "hi"))
    redis_server.start()
    await a.backplane.connect(a.received, a.lost)
    await a.marker("back")
    # Both connections went, and only one of them reported it.
    assert len(a.why) == 1


@pytest_twisted.ensureDeferred
async def test_connect_fails_with_backplane_error_when_nothing_listens(
    closed_tcp_port: int,
) -> None:
    link = Link(
        RedisBackplane(reactor, parse_redis_url(f"redis://127.0.0.1:{closed_tcp_port}/0"), "r", "a")
    )
    with pytest.raises(BackplaneError):
        await link.backplane.connect(link.received, link.lost)
    assert link.why == []
    with pytest.raises(BackplaneError, match="not connected"):
        await link.flush(said("alice", "hi"))


@pytest_twisted.ensureDeferred
async def test_connect_gives_up_on_a_server_that_never_answers() -> None:
    # The kernel completes the handshake; nobody ever reads or answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        link = RedisBackplane(reactor, parse_redis_url(url), "lobby", "a")
        link.connect_timeout = 0.3
        lost: list[str] = []
        with pytest.raises(BackplaneError, match=r"^no answer within 0\.3 s$"):
            await link.connect(lambda message: None, lost.append)
        assert lost == []


@pytest_twisted.ensureDeferred
async def test_a_user_and_password_in_the_url_log_in_as_that_acl_user(
    connect: Connect, redis_server: RedisServer
) -> None:
    user = ("ACL", "SETUSER", "lab", "on", ">s3cret", "~*", "&*", "+@all")
    assert value(redis_server, *user) == b"OK"
    a = await connect("a", url=redis_server.url.replace("redis://", "redis://lab:s3cret@"))
    await a.marker("logged in as lab")
    with pytest.raises(BackplaneError, match="WRONGPASS"):
        await connect("b", url=redis_server.url.replace("redis://", "redis://lab:wrong@"))


@pytest_twisted.ensureDeferred
async def test_a_database_number_in_the_url_selects_it(
    connect: Connect, redis_server: RedisServer
) -> None:
    url = f"redis://{redis_server.host}:{redis_server.port}/3"
    a = await connect("a", url=url)
    await holding(a, "alice")
    assert value(redis_server, "HGET", KEYS.names, "alice") is None
    in_db_3 = "redis.call('SELECT', 3) return redis.call('HGET', KEYS[1], ARGV[1])"
    assert value(redis_server, "EVAL", in_db_3, "1", KEYS.names, "alice") == b"a\talice"


# The fake of the unit tests (support.backplane) against the real scripts

FIDELITY: list[tuple[str, str, tuple[Any, ...]]] = [
    ("a", "rejoin", (10.0, JOINED, LEFT, [], [])),
    ("b", "rejoin", (10.0, JOINED, LEFT, [], [])),
    ("a", "flush", ([("C", "1", "alice", "alice"), ("C", "2", "amy", "Amy"), said("x", "y")],)),
    ("a", "flush", ([("C", "3", "alice", "ALICE"), ("N", "4")],)),
    ("b", "flush", ([("C", "1", "bob", "bob"), ("C", "2", "alice", "alice")],)),
    ("b", "flush", ([whisper("bob", "ALICE", "psst"), whisper("bob", "zed", "x"), ("N", "3")],)),
    (
        "a",
        "flush",
        (
            [
                ("R", "5", "amy", "amelia", "Amelia", lines("* Amy is now known as Amelia")),
                ("R", "6", "alice", "alice", "Alice", lines("* alice is now known as Alice")),
                ("R", "7", "alice", "bob", "bob", lines("* Alice is now known as bob")),
                ("X", "amelia", lines("* Amelia left (quit)")),
                ("X", "bob", lines("* bob left (quit)")),
            ],
        ),
    ),
    ("b", "flush", ([("R", "4", "bob", "alice", "alice", lines("* bob is now known as alice"))],)),
    ("b", "heartbeat", (10.0, NODE_LOST)),
    ("a", "flush", ([("C", "8", "dave", "dave"), ("C", "9", "erin", "erin")],)),
    (
        "a",
        "rejoin",
        (
            10.0,
            JOINED,
            LEFT,
            [("alice", "Alice"), ("carol", "carol"), ("bob", "bob")],
            [("dave", lines("* dave left (quit)"))],
        ),
    ),
    ("b", "goodbye", (SHUTTING_DOWN,)),
    ("a", "heartbeat", (10.0, NODE_LOST)),
    ("b", "heartbeat", (10.0, NODE_LOST)),
    ("a", "goodbye", (SHUTTING_DOWN,)),
]


def _normal(message: bytes, method: str) -> list[bytes]:
    """The records of a message, with what comes in Redis's hash or set order sorted."""
    records = []
    for record in message.split(b"\r\n")[:-1]:
        if record[:2] in (b"\x01J", b"\x01N"):
            *fields, listed = record.split(b"\t")
            record = b"\t".join([*fields, b",".join(sorted(listed.split(b",")))])
        records.append(record)
    # What GOODBYE and HEARTBEAT free, they find in a set.
    return sorted(records) if method in ("goodbye", "heartbeat") else records


def _answer(answer: Any, method: str) -> Any:
    # GOODBYE answers 1 in Redis and None in the fake: SharedRoom reads neither.
    return None if method == "goodbye" else answer


def run_on_the_fake() -> list[tuple[Any, list[list[bytes]]]]:
    clock = Clock()
    redis = FakeRedis(clock)
    links = {node: FakeBackplane(redis, node) for node in ("a", "b")}
    heard: list[bytes] = []
    links["a"].connect(heard.append, lambda why: None)
    links["b"].connect(lambda message: None, lambda why: None)
    steps = []
    for node, method, arguments in FIDELITY:
        answered = getattr(links[node], method)(*arguments)
        clock.advance(0)
        messages = [_normal(message, method) for message in heard]
        steps.append((_answer(result_of(answered), method), messages))
        heard.clear()
    return steps


@pytest_twisted.ensureDeferred
async def test_the_fake_answers_and_publishes_as_the_scripts_do(connect: Connect) -> None:
    links = {"a": await connect("a"), "b": await connect("b")}
    real = []
    for number, (node, method, arguments) in enumerate(FIDELITY):
        answer = await getattr(links[node].backplane, method)(*arguments)
        marker = f"after step {number}"
        await links["b"].flush(("L", encode_line(marker)))
        messages = []
        while (message := await links["a"].message()) != encode_line(marker):
            messages.append(_normal(message, method))
        real.append((_answer(answer, method), messages))
    assert run_on_the_fake() == real
