"""A chat room spread over several labchat nodes that share one Redis (``--redis``).

Each node keeps the users connected to it in the ChatRoom it extends, and
delivers to them as a single node does. What the room must agree on goes
through Redis (see redisscripts): who has which name, and the order of
the room's lines. A node never delivers a line of the room straight to
its users: it sends it to Redis, and delivers it when it comes back on
the room's channel, in the order Redis gave it, which is the same on
every node. All that one node asks of Redis in one reactor turn goes in
one script run, and comes back as one message.

A node that dies without a goodbye stops beating: within LOST_AFTER another
node's heartbeat finds it, frees its names and tells the room its users
left (node lost). A node that loses Redis tells its users once, keeps
them, refuses logins and renames, relays their lines among themselves,
and tries again with exponential backoff; once back, it registers its
users' names again.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from labproto.chat import wire
from labproto.chat.backplane import IBackplane, Operation, template
from labproto.chat.names import name_key, sort_names
from labproto.chat.room import DEFAULT_MAX_USERS, Answer, ChatRoom, IChatMember, encode_line

# A node that stops beating has its users' leaves told within this many
# seconds (--lost-after): it beats every third of it, and counts as lost
# two thirds of it after its last beat, so that the next beat of another
# node finds it by then.
LOST_AFTER = 15.0
# Retries after Redis is lost wait FIRST_RETRY seconds, then twice as long
# each time, up to LAST_RETRY.
FIRST_RETRY = 0.5
LAST_RETRY = 10.0
# How long a stopping node waits for Redis to hear its users leave.
GOODBYE_GRACE = 3.0

# Answers of the scripts (redisscripts).
REFUSED, DONE = 0, 1
KEPT, REJOINED = 1, 2

_RECORD = b"\x01"
_MARK = b"\x01F"


def _unless_done(
    waiting: dict[str, Any], serial: str, otherwise: Callable[[int | None], object]
) -> Callable[[int | None], None]:
    """What answers request serial, whose record on the channel settles it when Redis did it.

    waiting[serial] is the Deferred, or a tuple ending with it. Refused,
    or not run at all (None), it is settled here with otherwise(answer),
    unless it was settled already.
    """

    def answered(answer: int | None) -> None:
        if answer != DONE:
            pending = waiting.pop(serial, None)
            if pending is not None:
                deferred = pending[-1] if isinstance(pending, tuple) else pending
                deferred.callback(otherwise(answer))

    return answered


def _refused(refusal: str) -> Callable[[int | None], str]:
    """The line for an answer: refusal if Redis refused, else the room is unavailable."""
    return lambda answer: refusal if answer == REFUSED else wire.ROOM_UNAVAILABLE


def _ignored(answer: int | None) -> None:
    """The answer to a batch's own mark: its coming back on the channel is what counts."""


class SharedRoom(ChatRoom):
    """The part of a room spread over nodes that lives in this node."""

    def __init__(
        self,
        clock: IReactorTime,
        backplane: IBackplane,
        node: str,
        where: str,
        max_users: int = DEFAULT_MAX_USERS,
        quiet: bool = False,
        lost_after: float = LOST_AFTER,
    ) -> None:
        super().__init__(clock, max_users=max_users, quiet=quiet)
        self.heartbeat = lost_after / 3
        self.node_ttl = 2 * lost_after / 3
        self.backplane = backplane
        self.node = node
        # The Redis and room, for the log.
        self.where = where
        self.up = False
        self._outage = False
        self._retry_delay = FIRST_RETRY
        self._retry_call: IDelayedCall | None = None
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = clock
        self._serials = itertools.count(1)
        # Logins and renames sent to Redis, by serial, until their record
        # comes back on the channel (or Redis refuses them).
        self._claims: dict[str, tuple[IChatMember, str, Deferred[str | None]]] = {}
        self._renames: dict[str, tuple[IChatMember, str, Deferred[str | None]]] = {}
        self._listings: dict[str, Deferred[list[str]]] = {}
        self._marks: dict[str, Deferred[None]] = {}
        # What this reactor turn has for Redis, and who waits for which answer.
        self._operations: list[Operation] = []
        self._answered: list[Callable[[int | None], None]] = []
        self._flush_call: IDelayedCall | None = None
        self._flushing = False
        # Each batch sent, by the serial of the mark that leads its message,
        # until that message comes back: lost with Redis, it is done here.
        self._unconfirmed: dict[str, list[Operation]] = {}
        # Users who left while Redis was away: (key, the record that tells
        # the other nodes so; this node's users were told at once).
        self._departed: list[tuple[str, bytes]] = []

    # Redis, found and lost.

    def start(self) -> None:
        self.log.info("Node {node} joining {where}", node=self.node, where=self.where)
        self._connect()

    def _connect(self) -> None:
        self._retry_call = None
        connecting = self.backplane.connect(self.lines_received, self._lost)
        connecting.addCallback(self._connected).addErrback(self._failed)

    def _connected(self, _: object) -> Deferred[None] | None:
        if self._closing:
            # Stopped while connecting: the node is not to join after all.
            self.backplane.disconnect()
            return None
        return self._rejoin()

    def _failed(self, failure: Failure) -> None:
        self.backplane.disconnect()
        if self._closing:
            return
        self.log.warn(
            "Redis unreachable at {where} ({why}): trying again in {delay:g} s",
            where=self.where,
            why=failure.getErrorMessage(),
            delay=self._retry_delay,
        )
        self._outage = True
        self._retry_later()

    def _retry_later(self) -> None:
        """Connect again after the current delay, and double it for the next time, up to a cap."""
        self._retry_call = self.clock.callLater(self._retry_delay, self._connect)
        self._retry_delay = min(2 * self._retry_delay, LAST_RETRY)

    def _lost(self, why: str) -> None:
        if not self.up:
            return
        self.up = False
        self._outage = True
        if self._heartbeat.running:
            self._heartbeat.stop()
        self.log.warn(
            "Lost Redis at {where} ({why}): {count} users told, reconnecting",
            where=self.where,
            why=why,
            count=len(self),
        )
        unanswered = self._take_back_unsent()
        if not self._closing:
            # Told before anything that waited on Redis goes on here alone.
            self.broadcast(wire.BACKPLANE_UNAVAILABLE)
        for answer in unanswered:
            answer(None)
        # Each table is emptied before its requests are settled, and in place:
        # the answers still to come look their requests up there.
        waiting = [claim[-1] for claim in self._claims.values()]
        waiting += [rename[-1] for rename in self._renames.values()]
        self._claims.clear()
        self._renames.clear()
        for refused in waiting:
            refused.callback(wire.ROOM_UNAVAILABLE)
        listings = list(self._listings.values())
        self._listings.clear()
        for listing in listings:
            listing.callback(self.sorted_names())
        marks = list(self._marks.values())
        self._marks.clear()
        for mark in marks:
            mark.callback(None)
        if not self._closing:
            self._retry_later()

    def _take_back_unsent(self) -> list[Callable[[int | None], None]]:
        """What did not come back from Redis is done here alone: lines relayed, leaves noted.

        A batch whose message never came back may have reached the other
        nodes, or not; this node's users read it either way. Returns those
        who wait for an answer to what was never sent.
        """
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        operations, answered = self._operations, self._answered
        self._operations, self._answered = [], []
        unconfirmed, self._unconfirmed = self._unconfirmed, {}
        operations = [each for batch in unconfirmed.values() for each in batch] + operations
        for operation in operations:
            if operation[0] == "L":
                self.broadcast_encoded(_as_bytes(operation[1]))
            elif operation[0] == "X":
                line = _as_bytes(operation[2])
                self._departed.append((str(operation[1]), self._told_here(line)))
                self.broadcast_encoded(line)
        return answered

    def _rejoin(self) -> Deferred[None]:
        users = list(self._members.items())
        departed, self._departed = self._departed, []
        rejoining = self.backplane.rejoin(
            self.node_ttl,
            template(wire.joined),
            template(lambda name: wire.left(name, wire.CONNECTION_LOST)),
            [(key, member.name) for key, member in users],
            departed,
            # Asked for, maybe given already: not to be freed as forgotten.
            [key for _, key, _ in self._claims.values()]
            + [name_key(name) for _, name, _ in self._renames.values()],
        )

        def failed(failure: Failure) -> Failure:
            # Redis may never have heard of these leaves: they go with the next try.
            self._departed[:0] = departed
            return failure

        return rejoining.addCallbacks(
            self._rejoined, failed, callbackArgs=([member for _, member in users],)
        )

    def _rejoined(self, answers: list[int], members: list[IChatMember]) -> None:
        if self._closing:
            return
        was_out, self._outage = self._outage, False
        self.up = True
        self._retry_delay = FIRST_RETRY
        if not self._heartbeat.running:
            self._heartbeat.start(self.heartbeat, now=False)
        taken = [
            member
            for member, answer in zip(members, answers, strict=False)
            if answer == REFUSED and self._is_member(member)
        ]
        self.log.info(
            "In room {where} as node {node}; users here: {count}, names lost: {taken}",
            where=self.where,
            node=self.node,
            count=len(self),
            taken=len(taken),
        )
        # Leaves noted since the rejoin was sent go now.
        for key, line in self._departed:
            self._send(("X", key, line))
        self._departed = []
        for member in taken:
            self.let_go(member, "name taken meanwhile")
            member.lose_name(encode_line(wire.name_lost(member.name)))
        if was_out:
            self.broadcast(wire.BACKPLANE_RESTORED)
            # Lines were missed while away, leaves among them: say who is here
            # now, as /who would. Nodes that come back later say so as they do.
            listing = self.list_names()
            if isinstance(listing, Deferred):
                listing.addCallback(self._tell_who)

    def _tell_who(self, names: list[str]) -> None:
        for line in wire.who(names):
            self.broadcast(line)

    def _beat(self) -> None:
        beating = self.backplane.heartbeat(
            self.node_ttl, template(lambda name: wire.left(name, wire.NODE_LOST))
        )
        beating.addCallbacks(self._beaten, self._refused_by_redis)

    def _beaten(self, alive: int) -> None:
        if alive == REFUSED and self.up:
            self.log.warn("The other nodes gave this node up for lost: registering its users again")
            self._rejoin().addErrback(self._refused_by_redis)

    def _refused_by_redis(self, failure: Failure) -> None:
        """A script failed while the connection stayed up (Redis out of memory, read-only...).

        Nothing it was to do can be trusted done: Redis counts as lost.
        """
        if self.up:
            self.backplane.disconnect()
            self._lost(f"a script failed: {failure.getErrorMessage()}")

    # The room's requests, sent to Redis once a reactor turn.

    def _send(
        self, operation: Operation, answered: Callable[[int | None], None] | None = None
    ) -> None:
        self._operations.append(operation)
        if answered is not None:
            self._answered.append(answered)
        if not self._flushing:
            self._flush_soon()

    def _flush_soon(self) -> None:
        """Flush at the end of this reactor turn, with all the turn gathers."""
        if self._flush_call is None:
            self._flush_call = self.clock.callLater(0, self._flush)

    def _flush(self, now: bool = False) -> None:
        """Send Redis what the room has for it, unless a flush is still on its way.

        What gathers meanwhile goes as one when that flush is answered: under
        load, a node sends as few messages, and each as large, as the round
        trip to Redis allows, and every node then delivers each message to
        each of its users in one piece.
        """
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        operations, answered = self._operations, self._answered
        if not operations or (self._flushing and not now):
            return
        self._operations, self._answered = [], []
        self._flushing = True
        serial = str(next(self._serials))
        self._unconfirmed[serial] = operations
        operations = [("F", serial), *operations]
        answered = [_ignored, *answered]

        def next_flush(result: object) -> object:
            self._flushing = False
            if self._operations:
                self._flush_soon()
            return result

        def answer(results: list[int]) -> None:
            for each, result in zip(answered, results, strict=False):
                each(result)

        def fail(failure: Failure) -> None:
            self._refused_by_redis(failure)
            # Whatever still waits for an answer has none.
            for each in answered:
                each(None)

        self.backplane.flush(operations).addCallbacks(answer, fail).addBoth(next_flush)

    # What the channel brings.

    def lines_received(self, message: bytes) -> None:
        """Deliver one message of the room's channel, in the order it came."""
        self.hold()
        if message.startswith(_MARK):
            # A batch's mark leads its message: the rest is most often lines alone.
            end = message.index(b"\r\n")
            self._marked(*message[2:end].decode().split("\t"))
            message = message[end + 2 :]
        if _RECORD not in message:
            self.broadcast_encoded(message, count=message.count(b"\n"))
            return
        for record in message.split(b"\r\n")[:-1]:
            if not record.startswith(_RECORD):
                self.broadcast_encoded(record + b"\r\n")
            elif record[1:2] == b"J":
                self._joined(*record[2:].decode().split("\t"))
            elif record[1:2] == b"R":
                self._renamed(*record[2:].decode().split("\t"))
            elif record[1:2] == b"F":
                self._marked(*record[2:].decode().split("\t"))
            elif record[1:2] == b"N":
                self._listed(*record[2:].decode().split("\t"))
            elif record[1:2] == b"O":
                node, line = record[2:].split(b"\t", 1)
                if node.decode() != self.node:
                    self.broadcast_encoded(line + b"\r\n")
            elif record[1:2] == b"T":
                node, key, line = record[2:].split(b"\t", 2)
                member = self._members.get(key.decode())
                if node.decode() == self.node and member is not None:
                    self.tell(member, line + b"\r\n")

    def _told_here(self, line: bytes) -> bytes:
        """A line this node's users have read already, as a record for the other nodes' alone."""
        return _RECORD + b"O" + self.node.encode() + b"\t" + line

    def _joined(self, node: str, serial: str, name: str, count: str, listed: str) -> None:
        claim = self._claims.pop(serial, None) if node == self.node else None
        if claim is None:
            self.broadcast(wire.joined(name))
            return
        member, _, waiting = claim
        names = sort_names(listed.split(",")) if listed else []
        self.admit(member, name, wire.welcome(name, int(count), names))
        self.broadcast(wire.joined(name), exclude=member)
        waiting.callback(None)

    def _renamed(self, node: str, serial: str, name: str) -> None:
        rename = self._renames.pop(serial, None) if node == self.node else None
        if rename is not None:
            member, _, waiting = rename
            if self._is_member(member):
                self.rekey(member, name)
            waiting.callback(None)

    def _marked(self, node: str, serial: str) -> None:
        if node != self.node:
            return
        self._unconfirmed.pop(serial, None)
        mark = self._marks.pop(serial, None)
        if mark is not None:
            mark.callback(None)

    def _listed(self, node: str, serial: str, listed: str) -> None:
        listing = self._listings.pop(serial, None) if node == self.node else None
        if listing is not None:
            listing.callback(sort_names(listed.split(",")) if listed else [])

    # The room's operations, as ChatRoom has them.

    def is_full(self) -> bool:
        return len(self._members) + len(self._claims) >= self.max_users

    def join(self, member: IChatMember, name: str) -> Answer[str | None]:
        if name_key(name) in self._members:
            return wire.name_taken(name)
        if self.is_full() or self._closing:
            return wire.ROOM_FULL
        if not self.up:
            return wire.ROOM_UNAVAILABLE
        serial = str(next(self._serials))
        waiting: Deferred[str | None] = Deferred()
        self._claims[serial] = (member, name_key(name), waiting)
        # Given, the name's record on the channel lets the member in, in the
        # room's order.
        answered = _unless_done(self._claims, serial, _refused(wire.name_taken(name)))
        self._send(("C", serial, name_key(name), name), answered)
        return waiting

    def leave(self, member: IChatMember, reason: str) -> None:
        name = member.name
        if not self.let_go(member, reason):
            return
        # With a /nick on its way, whichever of the two names Redis gives it
        # must be let go.
        leaving = [name] + [new for who, new, _ in self._renames.values() if who is member]
        for each in leaving:
            line = encode_line(wire.left(each, reason))
            if self.up:
                self._send(("X", name_key(each), line))
            else:
                self._departed.append((name_key(each), self._told_here(line)))
        if not self.up and not self._closing:
            self.broadcast(wire.left(name, reason))

    def rename(self, member: IChatMember, new_name: str) -> Answer[str | None]:
        holder = self._members.get(name_key(new_name))
        if holder is not None and holder is not member:
            return wire.name_taken(new_name)
        if not self.up:
            return wire.ROOM_UNAVAILABLE
        old_name = member.name
        serial = str(next(self._serials))
        waiting: Deferred[str | None] = Deferred()
        self._renames[serial] = (member, new_name, waiting)
        answered = _unless_done(self._renames, serial, _refused(wire.name_taken(new_name)))
        line = encode_line(wire.renamed(old_name, new_name))
        self._send(("R", serial, name_key(old_name), name_key(new_name), new_name, line), answered)
        return waiting

    def publish(self, line: str) -> None:
        if self.up:
            self._send(("L", encode_line(line)))
        else:
            self.broadcast(line)

    def whisper(self, sender: IChatMember, recipient_name: str, text: str) -> Answer[str | None]:
        if not self.up:
            return super().whisper(sender, recipient_name, text)
        waiting: Deferred[str | None] = Deferred()
        sent_before, sent_after = template(lambda name: wire.whisper_sent(name, text))

        def answered(sent: int | None) -> None:
            if sent == DONE:
                self.whispered(sender, recipient_name)
                waiting.callback(None)
            else:
                waiting.callback(
                    wire.no_such_user(recipient_name) if sent == REFUSED else wire.ROOM_UNAVAILABLE
                )

        operation = (
            "W",
            name_key(recipient_name),
            encode_line(wire.whispered(sender.name, text)),
            sent_before,
            sent_after,
            name_key(sender.name),
        )
        self._send(operation, answered)
        return waiting

    def settle(self) -> Answer[None]:
        if not self.up:
            return None
        serial = str(next(self._serials))
        mark = self._marks[serial] = Deferred()
        self._send(("F", serial), _unless_done(self._marks, serial, lambda answer: None))
        return mark

    def list_names(self) -> Answer[list[str]]:
        if not self.up:
            return self.sorted_names()
        serial = str(next(self._serials))
        listing = self._listings[serial] = Deferred()
        # Done, the names come on the channel; failed, only ours are known.
        self._send(("N", serial), _unless_done(self._listings, serial, self._local_names))
        return listing

    def _local_names(self, answer: int | None) -> list[str]:
        return self.sorted_names()

    # Stopping.

    def shut_down(self) -> Deferred[None]:
        emptied = super().shut_down()
        return emptied.addCallback(lambda _: self._say_goodbye())

    def _say_goodbye(self) -> Deferred[Any] | None:
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        if self._heartbeat.running:
            self._heartbeat.stop()
        if not self.up:
            self.backplane.disconnect()
            return None
        self.up = False
        # The leaves of this node's users go before the node does.
        self._flush(now=True)
        leaving = self.backplane.goodbye(
            template(lambda name: wire.left(name, wire.SERVER_SHUTTING_DOWN))
        )
        leaving.addTimeout(GOODBYE_GRACE, self.clock)

        def done(result: object) -> None:
            if isinstance(result, Failure):
                self.log.warn(
                    "Redis did not hear this node leave ({why}): the others will give it "
                    "up for lost within {bound:g} s",
                    why=result.getErrorMessage(),
                    bound=self.heartbeat + self.node_ttl,
                )
            else:
                self.log.info("Node {node} left {where}", node=self.node, where=self.where)
            self.backplane.disconnect()

        return leaving.addBoth(done)


def _as_bytes(argument: object) -> bytes:
    return argument if isinstance(argument, bytes) else str(argument).encode()
