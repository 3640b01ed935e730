"""A labchat room spread over nodes (SharedRoom) on a fake Redis and a task.Clock: what users read.

The fake (support.backplane) runs redisscripts' Lua in plain Python, and
lets each test choose when a script's answer and a channel's message
arrive; see test_chat_redislink.py for the real scripts in a real Redis.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Iterator, Sequence

import pytest
from support.backplane import (
    FakeBackplane,
    FakeRedis,
    SharedLab,
    SharedUser,
    unmarked,
    without_mark,
)
from support.deferreds import result_of
from twisted.logger import LogEvent, capturedLogs, formatEvent
from zope.interface.verify import verifyObject

from labproto.chat.backplane import IBackplane
from labproto.chat.session import Stage

PROMPT = b"Welcome to labchat! Please enter your name:\r\n"
UNAVAILABLE = b"* backplane unavailable, reconnecting\r\n"
RESTORED = b"* backplane restored\r\n"
ROOM_UNAVAILABLE = b"ERROR room unavailable, try again\r\n"
SHUTTING_DOWN = b"* server shutting down\r\n"


def lines(*texts: str) -> bytes:
    """Texts as the server sends them: UTF-8 lines ending with CRLF."""
    return b"".join(text.encode() + b"\r\n" for text in texts)


@pytest.fixture(autouse=True)
def no_failures_logged() -> Iterator[Sequence[LogEvent]]:
    """Fail a test whose code logged a traceback: the session logs, not raises, its errors."""
    with capturedLogs() as events:
        yield events
        # A Deferred that failed unhandled says so when collected.
        gc.collect()
    failures = [formatEvent(event) for event in events if "log_failure" in event]
    tracebacks = [event["log_failure"].getTraceback() for event in events if "log_failure" in event]
    assert not failures, "\n".join(failures + tracebacks)


def two_nodes() -> tuple[SharedLab, SharedUser, SharedUser]:
    """alice on node a and bob on node b, both logged in, nothing heard yet."""
    lab = SharedLab()
    (alice,) = lab.node("a").users("alice")
    (bob,) = lab.node("b").users("bob")
    alice.heard()
    return lab, alice, bob


# The fake


def test_the_fake_provides_ibackplane() -> None:
    assert verifyObject(IBackplane, FakeBackplane(FakeRedis(SharedLab().clock), "a"))


def test_a_node_joins_the_room_at_start() -> None:
    lab = SharedLab()
    a = lab.node("a")
    assert a.room.up
    assert lab.redis.nodes == {"a": 10_000}
    assert [script for script, _ in a.link.runs] == ["REJOIN"]


# Across nodes


def test_the_welcome_line_counts_and_lists_the_users_of_every_node() -> None:
    lab = SharedLab()
    a, b = lab.node("a"), lab.node("b")
    alice = a.user("alice")
    assert alice.heard() == PROMPT + lines("Welcome alice! 1 user online: alice")
    bob = b.user("bob")
    assert bob.heard() == PROMPT + lines("Welcome bob! 2 users online: alice, bob")
    carol = a.user("Carol")
    assert carol.heard() == PROMPT + lines("Welcome Carol! 3 users online: alice, bob, Carol")
    assert alice.heard() == lines("* bob joined", "* Carol joined")
    assert bob.heard() == lines("* Carol joined")
    assert lab.redis.names == {
        "alice": ("a", "alice"),
        "bob": ("b", "bob"),
        "carol": ("a", "Carol"),
    }
    assert lab.redis.owned == {"a": {"alice", "carol"}, "b": {"bob"}}


def test_the_welcome_line_of_a_room_of_more_than_20_across_nodes_gives_the_count_alone() -> None:
    lab = SharedLab()
    a, b = lab.node("a"), lab.node("b")
    a.users(*(f"user{i:02d}" for i in range(1, 11)))
    b.users(*(f"user{i:02d}" for i in range(11, 21)))
    assert a.user("zed").heard() == PROMPT + lines("Welcome zed! 21 users online (/who lists them)")


def test_a_message_and_an_action_reach_every_node() -> None:
    lab, alice, bob = two_nodes()
    alice.types("hello", "/me waves")
    bob.types("hi")
    expected = lines("<alice> hello", "* alice waves", "<bob> hi")
    assert alice.heard() == bob.heard() == expected


def test_a_message_goes_to_redis_not_straight_to_the_users() -> None:
    lab, alice, bob = two_nodes()
    lab.redis.manual = True
    alice.types("hello")
    assert alice.heard() == bob.heard() == b""
    lab.redis.deliver()
    assert alice.heard() == bob.heard() == lines("<alice> hello")


def test_what_a_node_sends_in_one_turn_goes_in_one_script_run() -> None:
    lab = SharedLab()
    a = lab.node("a")
    alice, amy = a.users("alice", "amy")
    runs = len(a.link.runs)
    alice.types("one", "two")
    amy.types("three")
    assert alice.heard() == lines("<alice> one", "<alice> two", "<amy> three")
    ((script, operations),) = a.link.runs[runs:]
    assert script == "FLUSH"
    assert without_mark(operations) == [
        ("L", b"<alice> one\r\n"), ("L", b"<alice> two\r\n"), ("L", b"<amy> three\r\n")
    ]  # fmt: skip
    assert unmarked(lab.redis.published[-1]) == b"<alice> one\r\n<alice> two\r\n<amy> three\r\n"


@pytest.mark.parametrize(
    ("line", "reason"),
    [("/quit", "quit"), ("/quit gone fishing", "gone fishing"), (None, "connection lost")],
)
def test_a_leave_is_told_on_every_node_and_frees_the_name(line: str | None, reason: str) -> None:
    lab, alice, bob = two_nodes()
    carol = lab.node("c").user("carol")
    for user in (alice, bob, carol):
        user.heard()
    if line is None:
        alice.hangs_up()
    else:
        alice.types(line)
        assert alice.heard() == lines("Bye alice!")
        assert alice.connection.closed
    assert bob.heard() == carol.heard() == lines(f"* alice left ({reason})")
    assert "alice" not in lab.redis.names
    assert lab.redis.owned["a"] == set()


def test_what_a_node_gathers_while_a_flush_is_on_its_way_goes_as_one_message() -> None:
    lab, alice, bob = two_nodes()
    bob.heard()
    lab.redis.manual = True
    published = len(lab.redis.published)
    alice.types("one")
    lab.settle()
    alice.types("two")
    lab.settle()
    alice.types("three")
    lab.settle()
    # "one" is on its way, unanswered: the others wait for its answer.
    assert list(map(unmarked, lab.redis.published[published:])) == [lines("<alice> one")]
    while any(link.inbox for link in lab.redis.subscribers):
        lab.redis.deliver()
        lab.settle()
    assert list(map(unmarked, lab.redis.published[published:])) == [
        lines("<alice> one"),
        lines("<alice> two", "<alice> three"),
    ]
    assert bob.heard() == lines("<alice> one", "<alice> two", "<alice> three")


def test_a_user_who_quits_reads_their_own_last_lines_first() -> None:
    # As printf 'alice\nhello\n/quit\n' | nc does: the lines come back
    # from Redis after the /quit has been read.
    lab, alice, bob = two_nodes()
    alice.types("hello", "/me waves", "/quit")
    assert alice.heard() == lines("<alice> hello", "* alice waves", "Bye alice!")
    assert bob.heard() == lines("<alice> hello", "* alice waves", "* alice left (quit)")


def test_a_name_freed_on_one_node_can_be_taken_on_another() -> None:
    lab, alice, bob = two_nodes()
    c = lab.node("c")
    alice.types("/quit")
    assert alice.heard() == lines("Bye alice!")
    again = c.user("ALICE")
    assert again.heard() == PROMPT + lines("Welcome ALICE! 2 users online: ALICE, bob")
    assert bob.heard() == lines("* alice left (quit)", "* ALICE joined")


def test_nick_is_announced_on_every_node_and_frees_the_old_name() -> None:
    lab, alice, bob = two_nodes()
    alice.types("/nick carol", "hi")
    assert alice.heard() == bob.heard() == lines("* alice is now known as carol", "<carol> hi")
    assert lab.redis.names == {"carol": ("a", "carol"), "bob": ("b", "bob")}
    assert lab.redis.owned["a"] == {"carol"}
    taker = lab.node("c").user("alice")
    assert taker.heard() == PROMPT + lines("Welcome alice! 3 users online: alice, bob, carol")


def test_nick_to_a_name_held_on_another_node_is_refused_quoted_as_typed() -> None:
    lab, alice, bob = two_nodes()
    alice.types("/nick BOB", "hi")
    assert alice.heard() == lines("ERROR name taken: BOB", "<alice> hi")
    assert bob.heard() == lines("<alice> hi")
    assert lab.redis.names["alice"] == ("a", "alice")


def test_nick_may_change_the_case_of_ones_own_name() -> None:
    lab, alice, bob = two_nodes()
    alice.types("/nick ALICE")
    assert bob.heard() == lines("* alice is now known as ALICE")
    assert lab.redis.names["alice"] == ("a", "ALICE")
    assert alice.session.name == "ALICE"


def test_msg_reaches_a_user_of_another_node_alone() -> None:
    lab, alice, bob = two_nodes()
    carol = lab.node("c").user("carol")
    alice.heard()
    bob.heard()
    alice.types("/msg BOB psst  there", "after")
    assert bob.heard() == lines("*alice* psst  there", "<alice> after")
    assert alice.heard() == lines("-> *bob* psst  there", "<alice> after")
    assert carol.heard() == PROMPT + lines(
        "Welcome carol! 3 users online: alice, bob, carol", "<alice> after"
    )


def test_msg_to_a_user_of_the_same_node_goes_through_redis_too() -> None:
    lab = SharedLab()
    alice, amy = lab.node("a").users("alice", "amy")
    lab.redis.manual = True
    alice.types("/msg amy psst")
    assert amy.heard() == b""
    lab.redis.deliver()
    assert amy.heard() == lines("*alice* psst")
    assert alice.heard() == lines("-> *amy* psst")


def test_msg_to_nobody_is_refused_quoting_the_name_as_typed() -> None:
    lab, alice, bob = two_nodes()
    alice.types("/msg Zed hi", "after")
    assert alice.heard() == lines("ERROR no such user: Zed", "<alice> after")
    assert bob.heard() == lines("<alice> after")


def test_who_lists_the_users_of_every_node() -> None:
    lab, alice, bob = two_nodes()
    lab.node("c").user("Carol")
    alice.heard()
    bob.heard()
    alice.types("/who")
    assert alice.heard() == lines("3 users online: alice, bob, Carol")
    assert bob.heard() == b""


def test_who_in_a_room_of_more_than_20_across_nodes_lists_20_names_a_line() -> None:
    lab = SharedLab()
    a, b = lab.node("a"), lab.node("b")
    names = [f"user{i:02d}" for i in range(1, 23)]
    (first, *_) = a.users(*names[:11])
    b.users(*names[11:])
    first.heard()
    first.types("/who")
    assert first.heard() == lines("22 users online:", ", ".join(names[:20]), ", ".join(names[20:]))


# A request answered later: the session waits, and the lines after it wait too


def test_lines_typed_with_the_name_wait_for_the_login_and_are_handled_in_order() -> None:
    lab = SharedLab()
    a, b = lab.node("a"), lab.node("b")
    (bob,) = b.users("bob")
    lab.redis.manual = True
    alice = a.connect()
    alice.heard()
    alice.types("alice", "hello", "/me waves", "/who", "bye")
    lab.settle()
    # Only the login has gone to Redis: the rest waits for its answer.
    script, operations = a.link.runs[-1]
    assert (script, without_mark(operations)) == ("FLUSH", [("C", "1", "alice", "alice")])
    assert alice.heard() == b""
    for _ in range(3):
        lab.redis.deliver()
        lab.settle()
    assert alice.heard() == lines(
        "Welcome alice! 2 users online: alice, bob",
        "<alice> hello",
        "* alice waves",
        "2 users online: alice, bob",
        "<alice> bye",
    )
    assert bob.heard() == lines("* alice joined", "<alice> hello", "* alice waves", "<alice> bye")


def test_lines_after_a_refused_login_are_names_again() -> None:
    lab, alice, bob = two_nodes()
    user = lab.node("c").connect()
    user.heard()
    user.types("alice", "bob", "carol", "hello")
    assert user.heard() == lines(
        "ERROR name taken: alice",
        "ERROR name taken: bob",
        "Welcome carol! 3 users online: alice, bob, carol",
        "<carol> hello",
    )


def test_a_name_held_on_another_node_is_refused_quoted_as_typed() -> None:
    lab, alice, bob = two_nodes()
    user = lab.nodes["a"].connect()
    user.heard()
    user.types("BOB")
    assert user.heard() == lines("ERROR name taken: BOB")
    assert user.session.stage is Stage.LOGIN
    assert bob.heard() == alice.heard() == b""


def test_the_same_name_claimed_on_two_nodes_in_one_turn_goes_to_one() -> None:
    lab = SharedLab()
    a, b = lab.node("a"), lab.node("b")
    (watcher,) = lab.node("c").users("watcher")
    first, second = a.connect(), b.connect()
    first.types("alice")
    second.types("Alice")
    assert first.heard() == PROMPT + lines("Welcome alice! 2 users online: alice, watcher")
    assert second.heard() == PROMPT + lines("ERROR name taken: Alice")
    assert watcher.heard() == lines("* alice joined")
    assert lab.redis.names["alice"] == ("a", "alice")


def test_the_same_name_claimed_twice_on_one_node_in_one_turn_goes_to_one() -> None:
    lab = SharedLab()
    a = lab.node("a")
    first, second = a.connect(), a.connect()
    first.types("alice")
    second.types("ALICE")
    assert first.heard() == PROMPT + lines("Welcome alice! 1 user online: alice")
    assert second.heard() == PROMPT + lines("ERROR name taken: ALICE")


def release_in_order(lab: SharedLab, first: str) -> None:
    """Run the turns out, each link handing over its answers and messages, first's kind first."""
    second = "message" if first == "answer" else "answer"
    while True:
        lab.settle()
        links = [link for link in lab.redis.subscribers if link.inbox]
        if not links:
            return
        for link in links:
            for kind in (first, second):
                while link.waiting(kind):
                    link.answer() if kind == "answer" else link.hear()


@pytest.mark.parametrize("first", ["answer", "message"])
def test_the_channel_record_may_come_before_or_after_the_scripts_answer(first: str) -> None:
    lab, alice, bob = two_nodes()
    lab.redis.manual = True
    carol = lab.node("c", start=False)
    carol.room.start()
    release_in_order(lab, first)
    user = carol.connect()
    user.heard()
    user.types("carol", "/nick Dave", "/msg alice psst", "hi", "/who", "/nick bob", "/quit")
    release_in_order(lab, first)
    assert user.heard() == lines(
        "Welcome carol! 3 users online: alice, bob, carol",
        "* carol is now known as Dave",
        "-> *alice* psst",
        "<Dave> hi",
        "3 users online: alice, bob, Dave",
        "ERROR name taken: bob",
        "Bye Dave!",
    )
    assert alice.heard() == lines(
        "* carol joined",
        "* carol is now known as Dave",
        "*Dave* psst",
        "<Dave> hi",
        "* Dave left (quit)",
    )
    assert sorted(lab.redis.names) == ["alice", "bob"]


@pytest.mark.parametrize("first", ["answer", "message"])
def test_a_refused_login_never_comes_on_the_channel(first: str) -> None:
    lab, alice, bob = two_nodes()
    lab.redis.manual = True
    c = lab.node("c", start=False)
    c.room.start()
    release_in_order(lab, first)
    visitor = c.connect()
    visitor.heard()
    visitor.types("alice", "zed")
    release_in_order(lab, first)
    assert visitor.heard() == lines(
        "ERROR name taken: alice", "Welcome zed! 3 users online: alice, bob, zed"
    )


# Leaving while a request is on its way


@pytest.mark.parametrize("same_turn", [True, False])
def test_a_user_gone_while_the_login_is_on_its_way_frees_the_name_and_the_room_is_told(
    same_turn: bool,
) -> None:
    lab, alice, bob = two_nodes()
    lab.redis.manual = True
    user = lab.node("c", start=False)
    user.room.start()
    lab.redis.deliver()
    visitor = user.connect()
    visitor.types("carol")
    if not same_turn:
        lab.settle()
    visitor.hangs_up()
    for _ in range(3):
        lab.settle()
        lab.redis.deliver()
    assert alice.heard() == bob.heard() == lines("* carol joined", "* carol left (connection lost)")
    assert "carol" not in lab.redis.names
    assert lab.redis.owned["c"] == set()
    assert len(user.room) == 0
    lab.redis.manual = False
    assert lab.node("d").user("carol").heard() == PROMPT + lines(
        "Welcome carol! 3 users online: alice, bob, carol"
    )


@pytest.mark.parametrize("same_turn", [True, False])
@pytest.mark.parametrize("taken", [True, False])
def test_nick_then_leave_before_the_rename_comes_back_leaves_no_name_behind(
    same_turn: bool, taken: bool
) -> None:
    lab, alice, bob = two_nodes()
    if taken:
        carol = lab.node("c").user("carol")
        carol.heard()
        alice.heard()
        bob.heard()
    lab.redis.manual = True
    alice.types("/nick carol")
    if not same_turn:
        lab.settle()
    alice.hangs_up()
    for _ in range(3):
        lab.settle()
        lab.redis.deliver()
    if taken:
        assert bob.heard() == lines("* alice left (connection lost)")
        assert sorted(lab.redis.names) == ["bob", "carol"]
        assert lab.redis.names["carol"][0] == "c"
    else:
        assert bob.heard() == lines(
            "* alice is now known as carol", "* carol left (connection lost)"
        )
        assert sorted(lab.redis.names) == ["bob"]
    assert lab.redis.owned["a"] == set()


# Nodes lost, and found again


@pytest.mark.parametrize("start_b", [0.0, 1.7, 4.9])
@pytest.mark.parametrize("dies_after", [0.1, 2.5, 4.99, 12.0])
def test_the_users_of_a_node_that_stops_beating_leave_within_lost_after(
    start_b: float, dies_after: float
) -> None:
    lab = SharedLab()
    a = lab.node("a")
    (alice,) = a.users("alice")
    lab.wait(start_b)
    b = lab.node("b")
    b.users("bob", "Bea")
    alice.heard()
    lab.wait(dies_after)
    b.dies()
    died = lab.clock.seconds()
    while not alice.heard():
        lab.step()
    # Not before b's time to live (2/3 of lost_after) has run out since its last beat
    # (every 1/3 of lost_after), but within lost_after of its death.
    last_beat = start_b + 5 * (dies_after // 5)
    assert last_beat + 10 <= lab.clock.seconds() <= died + lab.lost_after
    assert lab.redis.names == {"alice": ("a", "alice")}
    assert "b" not in lab.redis.nodes and "b" not in lab.redis.owned
    # The leaves came with the beat that found the node lost, in one message.
    # For the other nodes' users alone: b's own would still be there, were it merely stalled.
    left = [lines(f"* {name} left (node lost)") for name in ("Bea", "bob")]
    assert lab.redis.published[-1] == b"".join(b"\x01Ob\t" + line for line in left)
    assert a.user("bob").heard() == PROMPT + lines("Welcome bob! 2 users online: alice, bob")


def test_the_leave_after_a_shorter_lost_after_comes_sooner() -> None:
    lab = SharedLab(lost_after=1.5)
    (alice,) = lab.node("a").users("alice")
    b = lab.node("b")
    b.users("bob")
    alice.heard()
    b.dies()
    lab.wait(1.5)
    assert alice.heard() == lines("* bob left (node lost)")


def test_a_node_lost_is_told_once_when_several_nodes_beat() -> None:
    lab = SharedLab(lost_after=3.0)
    a, b, c = lab.node("a"), lab.node("b"), lab.node("c")
    (alice,) = a.users("alice")
    (carol,) = c.users("carol")
    b.users("bob")
    alice.heard()
    carol.heard()
    b.dies()
    lab.wait(6.0)
    assert alice.heard() == carol.heard() == lines("* bob left (node lost)")


def test_a_node_that_keeps_beating_is_never_given_up() -> None:
    lab, alice, bob = two_nodes()
    lab.wait(120)
    assert alice.heard() == bob.heard() == b""
    assert sorted(lab.redis.names) == ["alice", "bob"]
    assert set(lab.redis.nodes) == {"a", "b"}


def test_a_node_given_up_for_lost_registers_its_users_again() -> None:
    lab, alice, bob = two_nodes()
    b = lab.nodes["b"]
    b.link.stalled = True
    lab.wait(15)
    assert alice.heard() == lines("* bob left (node lost)")
    assert "b" not in lab.redis.nodes
    b.link.stalled = False
    lab.wait(5)
    # Its next beat is answered 0: it registers bob again, and the room hears of it.
    assert [script for script, _ in b.link.runs][-2:] == ["HEARTBEAT", "REJOIN"]
    assert alice.heard() == lines("* bob joined")
    assert lab.redis.names["bob"] == ("b", "bob")
    assert "b" in lab.redis.nodes
    bob.heard()
    bob.types("still here")
    assert alice.heard() == bob.heard() == lines("<bob> still here")


def test_a_node_given_up_for_lost_whose_name_was_taken_asks_its_user_for_another() -> None:
    lab, alice, bob = two_nodes()
    b = lab.nodes["b"]
    b.link.stalled = True
    lab.wait(15)
    alice.heard()
    thief = lab.node("c").user("BOB")
    assert thief.heard() == PROMPT + lines("Welcome BOB! 2 users online: alice, BOB")
    bob.heard()
    b.link.stalled = False
    lab.wait(5)
    notice = lines("* your name bob was taken on another node while the backplane was down")
    assert bob.heard() == notice + PROMPT
    assert bob.session.stage is Stage.LOGIN
    assert lab.redis.names["bob"] == ("c", "BOB")
    bob.types("robert")
    assert bob.heard() == lines("Welcome robert! 3 users online: alice, BOB, robert")
    assert alice.heard() == lines("* BOB joined", "* robert joined")


def test_a_node_given_up_for_lost_takes_no_name_until_it_has_registered_again() -> None:
    lab, alice, bob = two_nodes()
    b = lab.nodes["b"]
    b.link.stalled = True
    lab.wait(15)
    lab.node("c").user("BOB")
    # Back before its next beat finds out, the node still thinks bob is its user's.
    b.link.stalled = False
    bob.heard()
    bob.types("/nick bobby")
    visitor = b.connect()
    visitor.types("carol")
    # Names it took now would be in no set a heartbeat reads, were it to die.
    assert bob.heard() == ROOM_UNAVAILABLE
    assert visitor.heard() == PROMPT + ROOM_UNAVAILABLE
    assert lab.redis.names["bob"] == ("c", "BOB")
    assert "bobby" not in lab.redis.names and "carol" not in lab.redis.names
    lab.wait(5)
    visitor.types("carol")
    assert visitor.heard() == lines("Welcome carol! 3 users online: alice, BOB, carol")


def test_a_change_of_case_on_a_node_given_up_for_lost_takes_no_name_from_another() -> None:
    lab, alice, bob = two_nodes()
    b = lab.nodes["b"]
    b.link.stalled = True
    lab.wait(15)
    lab.node("c").user("BOB")
    b.link.stalled = False
    bob.heard()
    bob.types("/nick Bob")
    assert bob.heard() == ROOM_UNAVAILABLE
    assert lab.redis.names["bob"] == ("c", "BOB")
    lab.wait(5)
    notice = lines("* your name bob was taken on another node while the backplane was down")
    assert bob.heard() == notice + PROMPT


# Redis lost


# Redis lost


def outage() -> tuple[SharedLab, SharedUser, SharedUser, SharedUser]:
    """Node a with alice and amy, node b with bob; then node a alone loses Redis."""
    lab = SharedLab()
    alice, amy = lab.node("a").users("alice", "amy")
    (bob,) = lab.node("b").users("bob")
    alice.heard()
    amy.heard()
    lab.nodes["a"].link.go_down()
    return lab, alice, amy, bob


def test_losing_redis_is_told_to_the_users_once_across_retries() -> None:
    lab = SharedLab()
    alice, amy = lab.node("a").users("alice", "amy")
    lab.redis.go_down()
    assert alice.heard() == amy.heard() == UNAVAILABLE
    lab.wait(60)
    assert len(lab.nodes["a"].link.attempts) > 5
    assert alice.heard() == amy.heard() == b""
    assert alice.session.stage is amy.session.stage is Stage.CHAT


def test_retries_back_off_from_half_a_second_to_ten() -> None:
    lab = SharedLab()
    a = lab.node("a")
    lab.wait(2)
    lab.redis.go_down()
    lab.wait(60)
    times = [2.0, *a.link.attempts[1:]]
    delays = [round(later - earlier, 6) for earlier, later in zip(times, times[1:], strict=False)]
    assert delays[:8] == [0.5, 1, 2, 4, 8, 10, 10, 10]
    assert not a.room.up


def test_the_backoff_starts_again_from_half_a_second_after_a_return() -> None:
    lab = SharedLab()
    a = lab.node("a")
    lab.redis.go_down()
    lab.wait(4)
    lab.redis.come_back()
    lab.wait(4)
    assert a.room.up
    lab.redis.go_down()
    lost = lab.clock.seconds()
    lab.wait(2)
    assert [round(when - lost, 6) for when in a.link.attempts[-2:]] == [0.5, 1.5]


def test_a_first_connection_that_fails_backs_off_too_and_logins_are_refused_meanwhile() -> None:
    lab = SharedLab()
    lab.redis.down = True
    a = lab.node("a")
    user = a.connect()
    user.types("alice")
    assert user.heard() == PROMPT + ROOM_UNAVAILABLE
    lab.wait(3.5)
    attempts = a.link.attempts
    delays = [
        round(later - earlier, 6) for earlier, later in zip(attempts, attempts[1:], strict=False)
    ]
    assert delays == [0.5, 1, 2]
    lab.redis.come_back()
    lab.wait(4)
    assert a.room.up
    user.types("alice")
    assert user.heard() == lines("Welcome alice! 1 user online: alice")


def test_without_redis_logins_are_refused_and_may_be_tried_again() -> None:
    lab = SharedLab()
    a = lab.node("a")
    (alice,) = a.users("alice")
    lab.redis.go_down()
    visitor = a.connect()
    visitor.heard()
    visitor.types("carol", "carol")
    assert visitor.heard() == ROOM_UNAVAILABLE * 2
    assert visitor.session.stage is Stage.LOGIN
    assert alice.heard() == UNAVAILABLE
    lab.redis.come_back()
    lab.wait(1)
    visitor.types("carol")
    assert visitor.heard() == lines("Welcome carol! 2 users online: alice, carol")


def test_without_redis_nick_is_refused() -> None:
    lab, alice, amy, bob = outage()
    alice.heard()
    alice.types("/nick alicia", "after")
    assert alice.heard() == ROOM_UNAVAILABLE + lines("<alice> after")
    assert alice.session.name == "alice"
    assert lab.redis.names["alice"] == ("a", "alice")
    assert bob.heard() == b""


def test_without_redis_messages_actions_and_msg_reach_the_users_of_the_node() -> None:
    lab, alice, amy, bob = outage()
    alice.heard()
    amy.heard()
    alice.types("hello", "/me waves", "/msg AMY psst", "/msg bob psst")
    assert amy.heard() == lines("<alice> hello", "* alice waves", "*alice* psst")
    assert alice.heard() == lines(
        "<alice> hello", "* alice waves", "-> *amy* psst", "ERROR no such user: bob"
    )
    assert bob.heard() == b""


def test_without_redis_who_lists_the_users_of_the_node() -> None:
    lab, alice, amy, bob = outage()
    alice.heard()
    alice.types("/who")
    assert alice.heard() == lines("2 users online: alice, amy")


def test_lines_sent_in_the_turn_redis_is_lost_are_delivered_here_not_lost() -> None:
    lab = SharedLab()
    a = lab.node("a")
    alice, amy = a.users("alice", "amy")
    (bob,) = lab.node("b").users("bob")
    alice.heard()
    amy.heard()
    alice.types("hello", "/me waves")
    amy.types("/quit")
    a.link.go_down()
    said = lines("<alice> hello", "* alice waves")
    assert alice.heard() == said + UNAVAILABLE + lines("* amy left (quit)")
    # amy's /quit waited for the lines before it, and read them; then the
    # notice, which goes before anything that waited on Redis.
    assert amy.heard() == said + UNAVAILABLE + lines("Bye amy!")
    assert bob.heard() == b""


def test_lines_sent_but_not_back_when_redis_is_lost_are_delivered_here() -> None:
    lab, alice, bob = two_nodes()
    bob.heard()
    amy = lab.nodes["a"].user("amy")
    amy.heard()
    alice.heard()
    bob.heard()
    lab.redis.manual = True
    alice.types("hi")
    lab.settle()
    # Redis published it (bob will read it), but it never came back to node a.
    lab.nodes["a"].link.break_off()
    assert alice.heard() == amy.heard() == lines("<alice> hi") + UNAVAILABLE
    lab.redis.deliver()
    assert bob.heard() == lines("<alice> hi")


def test_lines_that_came_back_before_redis_was_lost_are_not_delivered_twice() -> None:
    lab, alice, bob = two_nodes()
    lab.redis.manual = True
    alice.types("hi")
    lab.settle()
    link = lab.nodes["a"].link
    link.hear()
    lab.settle()
    link.break_off()
    assert alice.heard() == lines("<alice> hi") + UNAVAILABLE


def test_a_script_refused_while_connected_counts_as_redis_lost(
    no_failures_logged: Sequence[LogEvent],
) -> None:
    # Redis out of memory, or read-only after a failover, answers every script
    # with an error and keeps the connection: nothing may be lost silently.
    lab, alice, bob = two_nodes()
    bob.heard()
    link = lab.nodes["a"].link
    link.refusing = "OOM command not allowed when used memory > 'maxmemory'."
    alice.types("hello")
    assert alice.heard() == lines("<alice> hello") + UNAVAILABLE
    assert bob.heard() == b""
    logged = [formatEvent(event) for event in no_failures_logged]
    lost = [line for line in logged if "Lost Redis" in line]
    assert len(lost) == 1 and "a script failed: OOM command not allowed" in lost[0], lost
    link.refusing = None
    lab.wait(1)
    assert alice.heard() == RESTORED + lines("2 users online: alice, bob")
    alice.types("again")
    assert bob.heard() == lines("<alice> again")


def test_requests_on_their_way_when_redis_is_lost_are_answered_here() -> None:
    lab = SharedLab()
    a = lab.node("a")
    alice, amy = a.users("alice", "amy")
    lab.redis.manual = True
    visitor = a.connect()
    visitor.heard()
    visitor.types("carol", "dave")
    alice.types("/who", "after")
    amy.types("/nick amelia", "after")
    lab.settle()
    a.link.go_down()
    # /who gets the names known here; the logins and the rename are refused.
    assert visitor.heard() == ROOM_UNAVAILABLE * 2
    # Each user is told first; then what waited goes on here alone, in order.
    assert alice.heard() == UNAVAILABLE + lines(
        "<amy> after", "2 users online: alice, amy", "<alice> after"
    )
    assert amy.heard() == UNAVAILABLE + ROOM_UNAVAILABLE + lines("<amy> after", "<alice> after")


def test_a_leave_during_the_outage_is_told_to_the_other_nodes_on_return() -> None:
    lab, alice, amy, bob = outage()
    alice.heard()
    amy.types("/quit brb")
    assert alice.heard() == lines("* amy left (brb)")
    assert bob.heard() == b""
    lab.nodes["a"].link.come_back()
    lab.wait(1)
    assert bob.heard() == lines("* amy left (brb)")
    # Back, the node says who is in the room now.
    assert alice.heard() == RESTORED + lines("2 users online: alice, bob")
    assert sorted(lab.redis.names) == ["alice", "bob"]


def test_a_leave_during_the_outage_is_told_once_even_if_the_first_rejoin_is_lost() -> None:
    lab, alice, amy, bob = outage()
    alice.heard()
    amy.types("/quit brb")
    assert alice.heard() == lines("* amy left (brb)")
    link = lab.nodes["a"].link
    # Back, but the link breaks again before REJOIN reaches Redis.
    link.stalled = True
    link.come_back()
    lab.wait(0.5)
    assert link.connected and link.unanswered
    link.stalled = False
    link.break_off()
    lab.wait(1)
    assert lab.nodes["a"].room.up
    assert bob.heard() == lines("* amy left (brb)")
    # Back, the node says who is in the room now.
    assert alice.heard() == RESTORED + lines("2 users online: alice, bob")
    assert sorted(lab.redis.names) == ["alice", "bob"]


def test_on_return_the_users_hear_restored_once_and_keep_their_names() -> None:
    lab, alice, amy, bob = outage()
    lab.wait(3)
    lab.nodes["a"].link.come_back()
    lab.wait(30)
    who = lines("3 users online: alice, amy, bob")
    assert alice.heard() == amy.heard() == UNAVAILABLE + RESTORED + who
    assert bob.heard() == b""
    assert lab.redis.names_of("a") == ["alice", "amy"]
    alice.types("back")
    assert bob.heard() == amy.heard() == lines("<alice> back")


def test_after_a_restart_of_redis_every_node_registers_its_users_again() -> None:
    lab = SharedLab()
    a, b = lab.node("a"), lab.node("b")
    (alice,) = a.users("alice")
    (bob,) = b.users("bob")
    alice.heard()
    lab.redis.go_down()
    lab.wait(2)
    lab.redis.come_back(empty=True)
    lab.wait(2)
    assert lab.redis.names == {"alice": ("a", "alice"), "bob": ("b", "bob")}
    assert set(lab.redis.nodes) == {"a", "b"}
    # a came back first; b registered bob before a's list was made, and
    # a's users heard of it first; each node lists the room as it is.
    assert alice.heard() == UNAVAILABLE + RESTORED + lines(
        "* bob joined", "2 users online: alice, bob"
    )
    assert bob.heard() == UNAVAILABLE + RESTORED + lines("2 users online: alice, bob")
    alice.types("hi")
    assert alice.heard() == bob.heard() == lines("<alice> hi")


def test_a_node_out_longer_than_lost_after_has_its_users_join_again_as_the_others_hear() -> None:
    lab, alice, amy, bob = outage()
    lab.wait(15)
    assert bob.heard() == lines("* alice left (node lost)", "* amy left (node lost)")
    lab.nodes["a"].link.come_back()
    lab.wait(10)
    assert bob.heard() == lines("* alice joined", "* amy joined")
    assert lab.redis.names_of("a") == ["alice", "amy"]
    assert alice.heard().startswith(UNAVAILABLE + RESTORED)


def test_a_name_taken_while_redis_was_lost_sends_its_user_back_to_the_login() -> None:
    lab, alice, amy, bob = outage()
    lab.wait(15)
    thief = lab.node("c").user("Alice")
    assert thief.heard() == PROMPT + lines("Welcome Alice! 2 users online: Alice, bob")
    bob.heard()
    lab.nodes["a"].link.come_back()
    lab.wait(10)
    notice = lines("* your name alice was taken on another node while the backplane was down")
    assert alice.heard() == UNAVAILABLE + notice + PROMPT
    assert alice.session.stage is Stage.LOGIN
    assert alice.session.name is None
    assert amy.heard().startswith(UNAVAILABLE + RESTORED)
    assert bob.heard() == lines("* amy joined")
    assert lab.redis.names["alice"] == ("c", "Alice")
    alice.types("alice", "alicia", "hello")
    assert alice.heard() == lines(
        "ERROR name taken: alice",
        "Welcome alicia! 4 users online: Alice, alicia, amy, bob",
        "<alicia> hello",
    )
    assert bob.heard() == lines("* alicia joined", "<alicia> hello")


# Stopping


def test_a_stopping_node_tells_the_others_each_of_its_users_left_and_says_goodbye() -> None:
    lab = SharedLab()
    a, b = lab.node("a"), lab.node("b")
    alice, amy = a.users("alice", "amy")
    (bob,) = b.users("bob")
    alice.heard()
    amy.heard()
    stopped = a.stops()
    assert alice.heard() == amy.heard() == SHUTTING_DOWN
    assert result_of(stopped) is None
    left = bob.heard().splitlines(keepends=True)
    assert sorted(left) == [
        b"* alice left (server shutting down)\r\n",
        b"* amy left (server shutting down)\r\n",
    ]
    assert [script for script, _ in a.link.runs][-2:] == ["FLUSH", "GOODBYE"]
    assert lab.redis.names == {"bob": ("b", "bob")}
    assert "a" not in lab.redis.nodes and "a" not in lab.redis.owned
    assert not a.link.connected
    lab.wait(60)
    assert bob.heard() == b""


def test_goodbye_frees_the_names_the_node_still_holds() -> None:
    lab = SharedLab()
    a, b = lab.node("a"), lab.node("b")
    (bob,) = b.users("bob")
    # A name held in Redis for node a that its room no longer knows of.
    lab.redis.names["ghost"] = ("a", "ghost")
    lab.redis.owned["a"].add("ghost")
    result_of(a.stops())
    assert bob.heard() == lines("* ghost left (server shutting down)")
    assert lab.redis.names == {"bob": ("b", "bob")}


def test_a_node_stopping_without_redis_just_lets_go() -> None:
    lab, alice, amy, bob = outage()
    stopped = lab.nodes["a"].stops()
    assert result_of(stopped) is None
    assert bob.heard() == b""
    lab.wait(15)
    assert bob.heard() == lines("* alice left (node lost)", "* amy left (node lost)")


def test_a_goodbye_that_redis_never_answers_is_given_up_after_the_grace(
    no_failures_logged: Sequence[LogEvent],
) -> None:
    lab, alice, bob = two_nodes()
    a = lab.nodes["a"]
    a.dies()
    stopped = a.stops()
    done: list[object] = []
    stopped.addBoth(done.append)
    lab.wait(2.9)
    assert done == []
    lab.wait(0.1)
    assert done == [None]
    assert any(
        "Redis did not hear this node leave" in formatEvent(event) for event in no_failures_logged
    )
    lab.wait(15)
    assert bob.heard() == lines("* alice left (node lost)")


# One order for the whole room


def test_every_user_of_every_node_reads_the_room_in_one_order() -> None:
    lab = SharedLab(rate=0)
    users = [
        lab.node(node).user(f"{node}{number}") for node in ("a", "b", "c") for number in (1, 2)
    ]
    for user in users:
        user.heard()
    lab.redis.manual = True
    published = len(lab.redis.published)
    chance = random.Random(1)
    for turn in range(40):
        for user in chance.sample(users, 3):
            user.types(f"turn {turn}" if turn % 5 else f"/me acts in turn {turn}")
        lab.settle()
        # Each link hands over some of what waits for it, answers and messages in any order.
        for link in lab.redis.subscribers:
            for _ in range(chance.randrange(3)):
                kinds = [kind for kind in ("answer", "message") if link.waiting(kind)]
                if kinds:
                    link.answer() if chance.choice(kinds) == "answer" else link.hear()
    # A node sends its next flush once the last is answered: hand everything
    # over until nothing is left.
    while any(link.inbox for link in lab.redis.subscribers):
        lab.redis.deliver()
        lab.settle()
    heard = [user.heard() for user in users]
    assert heard[0].count(b"\r\n") == 120
    assert all(each == heard[0] for each in heard)
    # The order is the one Redis published the lines in.
    assert heard[0] == b"".join(map(unmarked, lab.redis.published[published:]))
