"""The chat room: the registry of who is present, and every broadcast of the room.

The room speaks to the people in it only through IChatMember, so that it
never learns what carries their lines: a TCP connection today, a WebSocket
or another node of the room tomorrow. It formats and encodes each broadcast
once and hands every recipient the same bytes; see Twisted Words'
``Group`` for the model, which, unlike this room, formats per recipient.

A broadcast costs one call per member, and in a busy room most of a
server's time goes to those calls. So the first broadcast of a reactor's
turn holds the room: the broadcasts of that turn wait, and go out together
when the turn ends, one call per member for the lot, however many
connections they came from (lines, joins, a crowd leaving at once). Each
member still reads every line in the room's order, in order with the lines
sent to it alone: those first send the member what it has waiting (see
tell()).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from typing import TypeVar, Union

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface

from labproto.chat import wire
from labproto.chat.figures import RoomFigures
from labproto.chat.leavelog import LeaveLog
from labproto.chat.names import name_key, sort_names
from labproto.lines import SERVER_LINE_END
from labproto.text import printable

T = TypeVar("T")
# What a room's answer to a request may be: at once, or, when the room
# spans several nodes and must ask the others, later.
Answer = Union[T, Deferred[T]]  # noqa: UP007 (a generic alias of a TypeVar)

DEFAULT_MAX_USERS = 1000
# How long the people present get, at shutdown, to receive the notice
# before their connections are cut.
SHUTDOWN_GRACE = 3.0


class IChatMember(Interface):
    """Someone present in the room, as the room sees them.

    Present from the connection's start (a visitor, at the login prompt) to
    its end; a member of the room, with a name, from join() to leave().
    """

    name = Attribute("The name the member logged in with, or None before; the room sets it.")
    peer = Attribute("Where the member connects from, for the log: ``('10.0.0.7', 5000)``.")
    host = Attribute(
        "The address the member connects from, as --max-per-host counts it: '10.0.0.7'; "
        "None where there is none (a UNIX socket)."
    )
    kind = Attribute("What carries the member's lines, as /metrics counts it: 'tcp', 'websocket'.")

    def deliver(line: bytes) -> None:  # noqa: N805 (zope interfaces have no self)
        """Send one line, UTF-8 ending with CRLF, as it is.

        Called once per member for each broadcast, so it must be cheap, and
        it must not call back into the room: a member that has to go (a
        reader too slow for its send queue, say) cuts its connection and
        leaves later, from its connection's end.
        """

    def shut_down(notice: bytes) -> None:  # noqa: N805
        """The server is stopping: leave the room, send notice, then close the connection."""

    def cut_off() -> None:
        """Close the connection now, whatever is still waiting to be sent."""

    def lose_name(notice: bytes) -> None:  # noqa: N805
        """The member's name went to someone else: send notice, and ask for a name again.

        Only a room spread over several nodes does this, when the name was
        taken on another node while this one had lost touch with the others.
        The room has already let the member go.
        """


def encode_line(text: str) -> bytes:
    """Encode text as one line on the wire: UTF-8 ending with CRLF."""
    return text.encode("utf-8") + SERVER_LINE_END


class ChatRoom:
    """The one room of a labchat server: who is present, who is logged in, and what they hear.

    Every change of the room (join, leave, rename) and every message goes
    through here, so the registry stays consistent whatever way a user
    leaves: the name is free again as soon as leave() returns.
    """

    log = Logger()

    def __init__(
        self, clock: IReactorTime, max_users: int = DEFAULT_MAX_USERS, quiet: bool = False
    ) -> None:
        self.clock = clock
        self.max_users = max_users
        # Whether each message is logged; joins, leaves and renames always are.
        self.quiet = quiet
        self.figures = RoomFigures()
        self._members: dict[str, IChatMember] = {}
        self._present: set[IChatMember] = set()
        # How many of those present connect from each address.
        self._from_host: Counter[str] = Counter()
        self._closing = False
        self._emptied: Deferred[None] | None = None
        self._leave_log = LeaveLog(self.log, clock)
        # While the room is held: the broadcasts waiting for the turn's end,
        # and where in them each member who must not read all of them starts
        # (joined since, or sent the start already by tell()).
        self._release_call: IDelayedCall | None = None
        self._held_lines: list[bytes] = []
        self._starts: dict[IChatMember, int] = {}
        # The tails of the held lines made so far, by their start: (end, bytes).
        self._tails: dict[int, tuple[int, bytes]] = {}

    def __len__(self) -> int:
        """How many users are logged in."""
        return len(self._members)

    def is_full(self) -> bool:
        """Whether one more user would pass --max-users."""
        return len(self._members) >= self.max_users

    def admits_visitor(self) -> bool:
        """Whether a new connection may try to log in.

        Not when the room is full or closing, nor when as many connections
        again as --max-users are still logging in: each holds an open file.
        """
        return (
            not self.is_full()
            and len(self._present) < 2 * self.max_users
            and not self._closing
        )

    def start(self) -> None:
        """Open the room: nothing to do for a room held in this process alone."""

    def arrive(self, visitor: IChatMember) -> None:
        """Note a new connection, logged in or not, so that shutdown reaches it."""
        self._present.add(visitor)
        if visitor.host is not None:
            self._from_host[visitor.host] += 1

    def depart(self, visitor: IChatMember) -> None:
        """Note that a connection has ended; it must have left the room first."""
        if visitor not in self._present:
            return
        self._present.remove(visitor)
        host = visitor.host
        if host is not None:
            self._from_host[host] -= 1
            if not self._from_host[host]:
                del self._from_host[host]
        if not self._present:
            self._stop_waiting()

    def connections_from(self, host: str | None) -> int:
        """How many connections present, logged in or not, come from host (none for None)."""
        return self._from_host[host] if host is not None else 0

    def members(self) -> Collection[IChatMember]:
        """Everyone logged in, in no particular order."""
        return self._members.values()

    def find(self, name: str) -> IChatMember | None:
        """The member logged in as name, in any case, or None."""
        return self._members.get(name_key(name))

    def sorted_names(self) -> list[str]:
        """Every logged-in user's name, in the order every list of users shows them."""
        return sort_names([member.name for member in self._members.values()])

    def settle(self) -> Answer[None]:
        """Answer once every line the room was handed so far has been delivered: here, at once."""
        return None

    def list_names(self) -> Answer[list[str]]:
        """The names /who lists: here, sorted_names()."""
        return self.sorted_names()

    def join(self, member: IChatMember, name: str) -> Answer[str | None]:
        """Log member in as name, or return the error line that refuses it.

        The member is greeted, and everyone else told. The name must already
        follow the rules (names.parse_name).
        """
        if name_key(name) in self._members:
            return wire.name_taken(name)
        if self.is_full() or self._closing:
            return wire.ROOM_FULL
        count = len(self._members) + 1
        # A join costs no sorting once the welcome line no longer lists names.
        names = (
            sort_names([name, *(other.name for other in self._members.values())])
            if count <= wire.NAMES_PER_LINE
            else []
        )
        self.admit(member, name, wire.welcome(name, count, names))
        self.broadcast(wire.joined(name), exclude=member)
        return None

    def admit(self, member: IChatMember, name: str, welcome: str) -> None:
        """Register member under name and greet it with welcome; nobody else is told."""
        member.name = name
        self._members[name_key(name)] = member
        if self._held_lines:
            # Nothing said before the join is for the newcomer.
            self._starts[member] = len(self._held_lines)
        self.log.info("{name} joined from {peer}", name=name, peer=member.peer)
        self.figures.logins[member.kind] += 1
        self.figures.deliveries += 1
        member.deliver(encode_line(welcome))

    def leave(self, member: IChatMember, reason: str) -> None:
        """Take member out of the room, free its name, and tell everyone else why."""
        # At shutdown everyone leaves at once: telling each about all the
        # others would cost the square of the room's size, and say nothing.
        if self.let_go(member, reason) and not self._closing:
            self.broadcast(wire.left(member.name, reason))

    def let_go(self, member: IChatMember, reason: str) -> bool:
        """Take member out of the room and free its name, telling nobody; False if not in it."""
        name = member.name
        if not self._is_member(member):
            return False
        del self._members[name_key(name)]
        # What was said while the member was here is still theirs to read.
        self._catch_up(member)
        self._starts.pop(member, None)
        self._leave_log.left(name, reason)
        return True

    def rename(self, member: IChatMember, new_name: str) -> Answer[str | None]:
        """Give member a new name and tell everyone, or return the error line that refuses it."""
        old_name = member.name
        holder = self._members.get(name_key(new_name))
        if holder is not None and holder is not member:
            return wire.name_taken(new_name)
        self.rekey(member, new_name)
        self.broadcast(wire.renamed(old_name, new_name))
        return None

    def rekey(self, member: IChatMember, new_name: str) -> None:
        """Register member under new_name instead of its old name, telling nobody."""
        old_name = member.name
        del self._members[name_key(old_name)]
        self._members[name_key(new_name)] = member
        member.name = new_name
        self.log.info("{old} is now known as {new}", old=old_name, new=new_name)

    def say(self, member: IChatMember, text: str) -> None:
        """Relay member's message, already cleaned, to everyone, member included."""
        line = wire.said(member.name, text)
        self.figures.lines_relayed += 1
        if not self.quiet:
            self.log.info("{line}", line=printable(line))
        self.publish(line)

    def act(self, member: IChatMember, text: str) -> None:
        """Relay member's /me action, already cleaned, to everyone."""
        line = wire.action(member.name, text)
        self.figures.lines_relayed += 1
        if not self.quiet:
            self.log.info("{line}", line=printable(line))
        self.publish(line)

    def publish(self, line: str) -> None:
        """Send a message or action of a member to everyone."""
        self.broadcast(line)

    def whisper(self, sender: IChatMember, recipient_name: str, text: str) -> Answer[str | None]:
        """Send a /msg to one user, or return the error line that refuses it.

        Its text is not logged: only the two users are meant to read it.
        """
        recipient = self.find(recipient_name)
        if recipient is None:
            return wire.no_such_user(recipient_name)
        self.tell(recipient, encode_line(wire.whispered(sender.name, text)))
        self.tell(sender, encode_line(wire.whisper_sent(recipient.name, text)))
        self.whispered(sender, recipient.name)
        return None

    def whispered(self, sender: IChatMember, recipient_name: str) -> None:
        """Count, and log without its text, a /msg that reached its recipient."""
        self.figures.lines_relayed += 1
        if not self.quiet:
            self.log.info(
                "{sender} sent {recipient} a private message",
                sender=sender.name,
                recipient=recipient_name,
            )

    def tell(self, member: IChatMember, line: bytes) -> None:
        """Send one encoded line to member alone, after the broadcasts it has waiting."""
        if self._held_lines and self._is_member(member):
            self._catch_up(member)
        self.figures.deliveries += 1
        member.deliver(line)

    def _is_member(self, member: IChatMember) -> bool:
        # Not merely named: someone who has left keeps their name, and must
        # not be handed what was said after they went.
        name = member.name
        return name is not None and self._members.get(name_key(name)) is member

    def broadcast(self, text: str, exclude: IChatMember | None = None) -> None:
        """Send one line to every user but exclude, encoded once: the same bytes to all."""
        self.broadcast_encoded(encode_line(text), exclude)

    def broadcast_encoded(
        self, line: bytes, exclude: IChatMember | None = None, count: int = 1
    ) -> None:
        """Send count encoded lines, as one piece of bytes, to every user but exclude."""
        self.figures.deliveries += count * len(self._members) - count * (
            exclude is not None and self._is_member(exclude)
        )
        if self._closing:
            # Nothing is held once the room closes: the shutdown notice follows.
            for member in self._members.values():
                if member is not exclude:
                    member.deliver(line)
            return
        # The first broadcast of a reactor turn holds the room until the turn
        # ends, so that whatever else the turn brings (the lines of a busy
        # room, a crowd leaving at once) costs each member one deliver().
        self.hold()
        if exclude is not None:
            self._catch_up(exclude)
        self._held_lines.append(line)
        if exclude is not None:
            self._starts[exclude] = len(self._held_lines)

    def hold(self) -> None:
        """Hold broadcasts until the reactor's turn ends, then send them together.

        Every broadcast does this itself; a room spread over nodes also
        holds the room while it hands over what came back from Redis.
        """
        if self._release_call is None and not self._closing:
            self._release_call = self.clock.callLater(0, self.release)

    def release(self) -> None:
        """Send the broadcasts held so far, each member the part that is theirs."""
        if self._release_call is not None:
            if self._release_call.active():
                self._release_call.cancel()
            self._release_call = None
        lines, starts, tails = self._held_lines, self._starts, self._tails
        if not lines:
            return
        self._held_lines, self._starts, self._tails = [], {}, {}
        everything = _tail(lines, tails, 0)
        if not starts:
            for member in self._members.values():
                member.deliver(everything)
            return
        # Members who joined, or were told something alone, since the first
        # held line start later; most members share the same few starts.
        for member in self._members.values():
            start = starts.get(member, 0)
            if start < len(lines):
                member.deliver(_tail(lines, tails, start))

    def _catch_up(self, member: IChatMember) -> None:
        """Send member the held broadcasts it has not read yet, ahead of the others."""
        lines = self._held_lines
        start = self._starts.get(member, 0)
        if start < len(lines):
            member.deliver(_tail(lines, self._tails, start))
            self._starts[member] = len(lines)

    def shut_down(self) -> Deferred[None]:
        """Tell everyone present that the server is stopping, and close every connection.

        The Deferred fires once all have closed, or after SHUTDOWN_GRACE
        seconds, when those still open (readers too slow to take the notice)
        are cut off.
        """
        # What was said before the stop is delivered before the notice.
        self.release()
        self._closing = True
        if not self._present:
            return succeed(None)
        self.log.info(
            "Shutting down: telling {count} {connections}",
            count=len(self._present),
            connections="connection" if len(self._present) == 1 else "connections",
        )
        notice = encode_line(wire.SHUTTING_DOWN)
        emptied: Deferred[None] = Deferred()
        # Set before the notices go out: a connection may close at once.
        self._emptied = emptied
        for visitor in list(self._present):
            visitor.shut_down(notice)
        if emptied.called:
            return emptied
        timer = self.clock.callLater(SHUTDOWN_GRACE, self._cut_off, list(self._present))

        def stop_timer(result: None) -> None:
            if timer.active():
                timer.cancel()

        return emptied.addCallback(stop_timer)

    def _cut_off(self, visitors: Iterable[IChatMember]) -> None:
        slow = [visitor for visitor in visitors if visitor in self._present]
        self.log.warn(
            "Cutting off connections not closed within {grace:g} s: {count}",
            count=len(slow),
            grace=SHUTDOWN_GRACE,
        )
        for visitor in slow:
            visitor.cut_off()
        # A connection cut off is lost a moment later, in the reactor's next
        # turn, and then leaves the room; stopping before that turn would
        # lose its leave. This call comes after those, in case one does not.
        self.clock.callLater(0, self._stop_waiting)

    def _stop_waiting(self) -> None:
        # The server may stop before another turn: nobody's leave goes unlogged.
        self._leave_log.flush()
        if self._emptied is not None:
            emptied, self._emptied = self._emptied, None
            emptied.callback(None)


def _tail(lines: list[bytes], tails: dict[int, tuple[int, bytes]], start: int) -> bytes:
    """The held lines from start on, as one piece of bytes, shared by all who start there.

    tails keeps, by start, the last tail made and the end it was made to.
    When a crowd leaves in one turn, each leaver is caught up with what was
    held before it left, which grows by a line a leaver: each tail is made
    from the last one made from the same start, not from every line again.
    """
    made = tails.get(start)
    if made is None:
        tail = b"".join(lines[start:])
    else:
        end, tail = made
        if end < len(lines):
            tail += b"".join(lines[end:])
    tails[start] = (len(lines), tail)
    return tail

