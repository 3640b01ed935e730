"""A Redis in plain Python for the tests of SharedRoom, and a lab of nodes sharing it.

FakeRedis holds what a room's Redis holds (see redisscripts: the names
hash, each node's deadline, each node's set of names, the subscribers of
the channel) and reads the time from a task.Clock. FakeBackplane is one
node's IBackplane link to it: it runs each script as its Lua does, and
publishes the same records to every connected link.

A script runs when it is called, and what comes back to a link (its
answer, the channel's messages) waits in the link's inbox, in the order
Redis sent it. By default the link hands it over at the end of the
reactor's turn (the Clock's next advance(0): never from inside the call,
which a real Redis cannot do either), the answer before the message. With
redis.manual the test hands it over: link.answer() or link.hear() the next
answer or message (so either may come first), link.deliver() or
redis.deliver() everything.

Redis can go down (connect() fails; every connected link has its waiting
answers fail, then lost(why) called) and come back, empty as a restarted
Redis, or not. One link can do the same alone (link.go_down()), and a link
can stall (link.stalled): what it sends never arrives, nothing comes back,
and it notices nothing, as a node that hangs or dies looks to the others;
the answers it waits for fail once the link closes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from zope.interface import implementer

from labproto.chat.backplane import Argument, BackplaneError, IBackplane, Operation
from labproto.chat.limits import UserLimits
from labproto.chat.session import ChatSession
from labproto.chat.sharedroom import LOST_AFTER, SharedRoom
from support.rooms import FakeConnection, User

# As FLUSH writes it: a J record lists the names when at most this many.
LISTED_UP_TO = 20


def _text(argument: Argument) -> str:
    return argument.decode() if isinstance(argument, bytes) else str(argument)


def _bytes(argument: Argument) -> bytes:
    return argument if isinstance(argument, bytes) else str(argument).encode()


def _record(*fields: str) -> bytes:
    return b"\x01" + "\t".join(fields).encode() + b"\r\n"


class FakeRedis:
    """What one room's Redis holds, and who listens to its channel."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        # labchat:R:names, a name's key to (node, name as typed).
        self.names: dict[str, tuple[str, str]] = {}
        # labchat:R:nodes, each live node to its deadline in ms.
        self.nodes: dict[str, int] = {}
        # labchat:R:node:NODE, the keys each node holds.
        self.owned: dict[str, set[str]] = {}
        self.subscribers: list[FakeBackplane] = []
        # Every message published on the channel, in order.
        self.published: list[bytes] = []
        self.down = False
        self.manual = False

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def holder(self, key: str) -> str | None:
        held = self.names.get(key)
        return held[0] if held else None

    def publish(self, message: bytes) -> None:
        if message:
            self.published.append(message)
            for link in list(self.subscribers):
                link.queue(("message", message))

    def go_down(self, why: str = "Connection lost") -> None:
        """Stop: connections fail, and every connected link is lost."""
        self.down = True
        for link in list(self.subscribers):
            link.break_off(why)

    def come_back(self, empty: bool = True) -> None:
        """Run again: empty, as a restarted Redis that saved nothing, unless empty=False."""
        self.down = False
        if empty:
            self.names.clear()
            self.nodes.clear()
            self.owned.clear()

    def deliver(self) -> None:
        """Hand every link everything waiting in its inbox, until nothing is left."""
        while any(link.inbox for link in self.subscribers):
            for link in list(self.subscribers):
                link.deliver()

    def names_of(self, node: str) -> list[str]:
        """The names node holds, as typed, sorted."""
        return sorted(name for owner, name in self.names.values() if owner == node)


# What waits in a link's inbox: ("answer", Deferred, result) or ("message", bytes).
Event = tuple[Any, ...]


@implementer(IBackplane)
class FakeBackplane:
    """One node's link to a FakeRedis, running each script as redisscripts' Lua does."""

    def __init__(self, redis: FakeRedis, node: str) -> None:
        self.redis = redis
        self.node = node
        self.received: Callable[[bytes], None] | None = None
        self.lost: Callable[[str], None] | None = None
        self.connected = False
        self.unreachable = False
        self.stalled = False
        # An error Redis answers every script with while it stays connected
        # (out of memory, read-only...), or None.
        self.refusing: str | None = None
        self.inbox: list[Event] = []
        # The answers to what a stalled link sent: they fail when the link closes.
        self.unanswered: list[Deferred[Any]] = []
        # The clock's time of each connect(), for the backoff between them.
        self.attempts: list[float] = []
        # Each script run, as (SCRIPT, arguments), for tests that check what was asked.
        self.runs: list[tuple[str, Any]] = []
        self._delivery_due = False

    # The connection.

    def connect(
        self, received: Callable[[bytes], None], lost: Callable[[str], None]
    ) -> Deferred[None]:
        self.attempts.append(self.redis.clock.seconds())
        if self.redis.down or self.unreachable:
            return fail(BackplaneError("Connection refused"))
        self.received, self.lost = received, lost
        self.connected = True
        self.redis.subscribers.append(self)
        return succeed(None)

    def disconnect(self) -> None:
        self.lost = None
        self._close("disconnected")

    def break_off(self, why: str = "Connection lost") -> None:
        """The link breaks: pending answers fail, then lost(why) is called."""
        lost, self.lost = self.lost, None
        if self._close(why) and lost is not None:
            lost(why)

    def go_down(self, why: str = "Connection lost") -> None:
        """This link alone loses Redis, and cannot connect until come_back()."""
        self.unreachable = True
        self.break_off(why)

    def come_back(self) -> None:
        self.unreachable = False

    def _close(self, why: str) -> bool:
        was_connected, self.connected = self.connected, False
        if self in self.redis.subscribers:
            self.redis.subscribers.remove(self)
        inbox, self.inbox = self.inbox, []
        unanswered, self.unanswered = self.unanswered, []
        unanswered += [event[1] for event in inbox if event[0] == "answer"]
        for answer in unanswered:
            answer.errback(BackplaneError(why))
        return was_connected

    # What comes back.

    def queue(self, event: Event) -> None:
        if self.stalled:
            return
        self.inbox.append(event)
        if not self.redis.manual and not self._delivery_due:
            self._delivery_due = True
            self.redis.clock.callLater(0, self._deliver_due)

    def _deliver_due(self) -> None:
        self._delivery_due = False
        if not self.redis.manual:
            self.deliver()

    def deliver(self) -> None:
        """Hand over everything waiting, in order."""
        while self.inbox:
            self._hand_over(self.inbox.pop(0))

    def answer(self) -> None:
        """Hand over the next answer, ahead of any message waiting before it."""
        self._hand_over(self._take("answer"))

    def hear(self) -> None:
        """Hand over the next message, ahead of any answer waiting before it."""
        self._hand_over(self._take("message"))

    def waiting(self, kind: str) -> int:
        """How many answers ("answer") or messages ("message") wait in the inbox."""
        return sum(1 for event in self.inbox if event[0] == kind)

    def _take(self, kind: str) -> Event:
        for index, event in enumerate(self.inbox):
            if event[0] == kind:
                return self.inbox.pop(index)
        raise AssertionError(f"no {kind} waits for {self.node}")

    def _hand_over(self, event: Event) -> None:
        if event[0] == "answer" and isinstance(event[2], Exception):
            event[1].errback(event[2])
        elif event[0] == "answer":
            event[1].callback(event[2])
        elif self.received is not None:
            self.received(event[1])

    # The scripts.

    def _run(self, script: str, arguments: Any, run: Callable[[list[bytes]], Any]) -> Deferred[Any]:
        if not self.connected:
            return fail(BackplaneError("not connected"))
        answered: Deferred[Any] = Deferred()
        if self.stalled:
            self.unanswered.append(answered)
            return answered
        self.runs.append((script, arguments))
        if self.refusing is not None:
            self.queue(("answer", answered, BackplaneError(self.refusing)))
            return answered
        out: list[bytes] = []
        result = run(out)
        self.queue(("answer", answered, result))
        self.redis.publish(b"".join(out))
        return answered

    def _claim(self, key: str, name: str) -> bool:
        if key in self.redis.names:
            return False
        self.redis.names[key] = (self.node, name)
        self.redis.owned.setdefault(self.node, set()).add(key)
        return True

    def _release(self, key: str, line: bytes, out: list[bytes]) -> None:
        if self.redis.holder(key) == self.node:
            del self.redis.names[key]
            self.redis.owned.get(self.node, set()).discard(key)
            out.append(line)

    def _listed(self) -> str:
        return ",".join(name for _, name in self.redis.names.values())

    def flush(self, operations: Sequence[Operation]) -> Deferred[list[int]]:
        return self._run("FLUSH", list(operations), lambda out: self._flush(operations, out))

    def _flush(self, operations: Sequence[Operation], out: list[bytes]) -> list[int]:
        answers = []
        registered = self.node in self.redis.nodes
        for code, *arguments in operations:
            if code in ("C", "R") and not registered:
                answers.append(2)
                continue
            if code == "L":
                out.append(_bytes(arguments[0]))
            elif code == "C":
                serial, key, name = map(_text, arguments)
                claimed = self._claim(key, name)
                if claimed:
                    count = len(self.redis.names)
                    listed = self._listed() if count <= LISTED_UP_TO else ""
                    out.append(_record("J" + self.node, serial, name, str(count), listed))
                answers.append(int(claimed))
            elif code == "X":
                self._release(_text(arguments[0]), _bytes(arguments[1]), out)
            elif code == "R":
                serial, old, new, name = map(_text, arguments[:4])
                if old == new and self.redis.holder(new) == self.node:
                    self.redis.names[new] = (self.node, name)
                    renamed = True
                elif renamed := self._claim(new, name):
                    if old != new:
                        if self.redis.holder(old) == self.node:
                            del self.redis.names[old]
                        self.redis.owned.get(self.node, set()).discard(old)
                if renamed:
                    out += [_record("R" + self.node, serial, name), _bytes(arguments[4])]
                answers.append(int(renamed))
            elif code == "W":
                wanted, line, before, after, sender = arguments
                held = self.redis.names.get(_text(wanted))
                if held is not None:
                    owner, recipient = held
                    out.append(b"\x01T" + f"{owner}\t{_text(wanted)}\t".encode() + _bytes(line))
                    out.append(
                        b"\x01T"
                        + f"{self.node}\t{_text(sender)}\t".encode()
                        + _bytes(before)
                        + recipient.encode()
                        + _bytes(after)
                    )
                answers.append(int(held is not None))
            elif code == "N":
                out.append(_record("N" + self.node, _text(arguments[0]), self._listed()))
                answers.append(1)
            elif code == "F":
                out.append(_record("F" + self.node, _text(arguments[0])))
                answers.append(1)
            else:
                raise AssertionError(f"unknown operation {code!r}")
        return answers

    def heartbeat(self, ttl: float, left: tuple[bytes, bytes]) -> Deferred[int]:
        return self._run("HEARTBEAT", ttl, lambda out: self._heartbeat(ttl, left, out))

    def _heartbeat(self, ttl: float, left: tuple[bytes, bytes], out: list[bytes]) -> int:
        redis, now = self.redis, self.redis.now_ms()
        for lost, deadline in list(redis.nodes.items()):
            if deadline <= now and lost != self.node:
                for key in sorted(redis.owned.pop(lost, set())):
                    held = redis.names.get(key)
                    if held is not None and held[0] == lost:
                        del redis.names[key]
                        told = left[0] + held[1].encode() + left[1]
                        out.append(b"\x01O" + lost.encode() + b"\t" + told)
                del redis.nodes[lost]
        if self.node in redis.nodes:
            redis.nodes[self.node] = now + int(ttl * 1000)
            return 1
        return 0

    def rejoin(
        self,
        ttl: float,
        joined: tuple[bytes, bytes],
        left: tuple[bytes, bytes],
        users: Sequence[tuple[str, str]],
        departed: Sequence[tuple[str, bytes]],
        pending: Sequence[str] = (),
    ) -> Deferred[list[int]]:
        return self._run(
            "REJOIN",
            (list(users), list(departed)),
            lambda out: self._rejoin(ttl, joined, left, users, departed, pending, out),
        )

    def _rejoin(
        self,
        ttl: float,
        joined: tuple[bytes, bytes],
        left: tuple[bytes, bytes],
        users: Sequence[tuple[str, str]],
        departed: Sequence[tuple[str, bytes]],
        pending: Sequence[str],
        out: list[bytes],
    ) -> list[int]:
        redis = self.redis
        kept, answers = set(), []
        for key, name in users:
            owner = redis.holder(key)
            if owner == self.node:
                answers.append(1)
                kept.add(key)
            elif owner is None and self._claim(key, name):
                told = joined[0] + name.encode() + joined[1]
                out.append(b"\x01O" + self.node.encode() + b"\t" + told)
                answers.append(2)
                kept.add(key)
            else:
                answers.append(0)
        kept |= {key for key in pending if redis.holder(key) == self.node}
        for key, line in departed:
            if key not in kept:
                self._release(key, line, out)
        owned = redis.owned.setdefault(self.node, set())
        for key in sorted(owned - kept):
            held = redis.names.get(key)
            if held is not None and held[0] == self.node:
                del redis.names[key]
                out.append(left[0] + held[1].encode() + left[1])
            owned.discard(key)
        redis.nodes[self.node] = redis.now_ms() + int(ttl * 1000)
        return answers

    def goodbye(self, left: tuple[bytes, bytes]) -> Deferred[None]:
        return self._run("GOODBYE", None, lambda out: self._goodbye(left, out))

    def _goodbye(self, left: tuple[bytes, bytes], out: list[bytes]) -> None:
        redis = self.redis
        for key in sorted(redis.owned.pop(self.node, set())):
            held = redis.names.get(key)
            if held is not None and held[0] == self.node:
                del redis.names[key]
                out.append(left[0] + held[1].encode() + left[1])
        redis.nodes.pop(self.node, None)


# A lab of nodes.


class SharedUser(User):
    """A user of one node: what it heard is read once the reactor's turn has ended."""

    def __init__(self, session: ChatSession, connection: FakeConnection, lab: SharedLab) -> None:
        super().__init__(session, connection, lab.clock)
        self.lab = lab

    def heard(self) -> bytes:
        """Everything sent to this user since the last call, once the turn has ended."""
        self.lab.settle()
        return super().heard()


class Node:
    """One labchat node of the lab: its part of the room, its link to Redis, its users."""

    def __init__(self, lab: SharedLab, room: SharedRoom, link: FakeBackplane) -> None:
        self.lab = lab
        self.room = room
        self.link = link
        self.name = link.node
        self.connected: list[SharedUser] = []

    def connect(self, kind: str = "tcp") -> SharedUser:
        """A new connection to this node, given the login prompt (or turned away)."""
        connection = FakeConnection(kind)
        peer = f"('10.0.0.7', {next(self.lab.ports)})"
        session = ChatSession(self.room, connection, peer, self.lab.limits, self.lab.clock)
        session.start()
        user = SharedUser(session, connection, self.lab)
        self.connected.append(user)
        return user

    def user(self, name: str) -> SharedUser:
        """A new connection that has typed name, once the turn has ended; what it heard is kept."""
        user = self.connect()
        user.types(name)
        self.lab.settle()
        return user

    def users(self, *names: str) -> list[SharedUser]:
        """New users logged in under names, in that order, with nothing heard yet."""
        users = [self.user(name) for name in names]
        for user in users:
            user.heard()
        return users

    def dies(self) -> None:
        """The node hangs or dies: nothing it sends reaches Redis any more, nor anything back."""
        self.link.stalled = True

    def stops(self) -> Deferred[None]:
        """The node shuts down: its connections close as asked, and the room says goodbye."""
        stopped = self.room.shut_down()
        for user in self.connected:
            if user.connection.closed:
                user.hangs_up()
        self.lab.settle()
        return stopped


class SharedLab:
    """Nodes of one room on one FakeRedis and one task.Clock, and their users."""

    def __init__(
        self, lost_after: float = LOST_AFTER, max_users: int = 1000, **limits: Any
    ) -> None:
        self.clock = Clock()
        self.redis = FakeRedis(self.clock)
        self.limits = UserLimits(**limits)
        self.lost_after = lost_after
        self.max_users = max_users
        self.ports: Iterator[int] = itertools.count(5000)
        self.nodes: dict[str, Node] = {}

    def node(self, name: str, start: bool = True) -> Node:
        """A new node, joined to the room once the turn has ended unless start=False."""
        link = FakeBackplane(self.redis, name)
        room = SharedRoom(
            self.clock,
            link,
            name,
            where="fake Redis room lab",
            max_users=self.max_users,
            lost_after=self.lost_after,
        )
        node = self.nodes[name] = Node(self, room, link)
        if start:
            room.start()
            self.settle()
        return node

    def settle(self) -> None:
        """End the reactor's turn: run every call due now, and those they make due now."""
        self.clock.advance(0)

    def step(self) -> None:
        """End the turn, then go on to the next delayed call's time and run what is due then."""
        self.settle()
        due = min(call.getTime() for call in self.clock.getDelayedCalls())
        self.clock.advance(due - self.clock.seconds())
        self.settle()

    def wait(self, seconds: float) -> None:
        """Let seconds pass, running each delayed call at its time, in order."""
        until = self.clock.seconds() + seconds
        self.settle()
        while any(call.getTime() <= until for call in self.clock.getDelayedCalls()):
            self.step()
        self.clock.advance(until - self.clock.seconds())
        self.settle()


def unmarked(message: bytes) -> bytes:
    """message without the mark that leads each batch's message (see SharedRoom._flush)."""
    if message.startswith(b"\x01F"):
        return message[message.index(b"\r\n") + 2 :]
    return message


def without_mark(operations: Sequence[Operation]) -> list[Operation]:
    """A FLUSH's operations without the batch's own mark, which comes first."""
    assert operations and operations[0][0] == "F", operations
    return list(operations[1:])
