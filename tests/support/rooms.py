"""A labchat room on fake connections and a task.Clock, for unit tests of the chat logic."""

from __future__ import annotations

import itertools
from typing import Any

from twisted.internet.task import Clock
from zope.interface import implementer

from labproto.chat.limits import UserLimits
from labproto.chat.room import ChatRoom
from labproto.chat.session import ChatSession, IChatConnection


@implementer(IChatConnection)
class FakeConnection:
    """A connection that records each line sent on it, and whether it was closed or aborted."""

    def __init__(self, kind: str = "tcp") -> None:
        self.kind = kind
        self.lines: list[bytes] = []
        self.closed = False
        self.aborted = False

    def send(self, line: bytes) -> None:
        self.lines.append(line)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


class User:
    """One connection to the test room: its session, and what the server sent it."""

    def __init__(self, session: ChatSession, connection: FakeConnection, clock: Clock) -> None:
        self.session = session
        self.connection = connection
        self.clock = clock

    def types(self, *lines: str) -> None:
        """Send lines to the server, one by one."""
        for line in lines:
            self.session.line_received(line)

    def heard(self) -> bytes:
        """Everything the server sent this user since the last call, by the end of the turn."""
        # The room sends its broadcasts when the reactor's turn ends.
        self.clock.advance(0)
        data = b"".join(self.connection.lines)
        self.connection.lines.clear()
        return data

    def hangs_up(self) -> None:
        """The connection ends, as a transport reports it, after a close or without one."""
        self.session.connection_lost()


class Lab:
    """A chat room on a task.Clock, and the users connecting to it."""

    def __init__(self, max_users: int = 1000, quiet: bool = False, **limits: Any) -> None:
        self.clock = Clock()
        self.room = ChatRoom(self.clock, max_users=max_users, quiet=quiet)
        self.limits = UserLimits(**limits)
        self._ports = itertools.count(5000)

    def connect(self, kind: str = "tcp", host: str | None = "10.0.0.7") -> User:
        """A new connection from host, given the login prompt (or turned away)."""
        connection = FakeConnection(kind)
        peer = f"({host!r}, {next(self._ports)})"
        session = ChatSession(self.room, connection, peer, self.limits, self.clock, host)
        session.start()
        return User(session, connection, self.clock)

    def user(self, name: str, kind: str = "tcp") -> User:
        """A new connection that has logged in as name; what it heard is kept."""
        user = self.connect(kind)
        user.types(name)
        return user

    def users(self, *names: str) -> list[User]:
        """New users logged in under names, in that order, with nothing heard yet."""
        users = [self.user(name) for name in names]
        for user in users:
            user.heard()
        return users
