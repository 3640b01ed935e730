"""One person's time in the room: the login dialogue, then their messages and commands.

A ChatSession never touches a socket: it reads lines from its connection
and writes bytes to it through IChatConnection, which each transport (the
TCP line protocol here, a WebSocket elsewhere) implements in its own
module. Tests drive it with a fake connection and a task.Clock.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from labproto.chat import figures, wire
from labproto.chat.commands import split_command, split_word
from labproto.chat.limits import TokenBucket, UserLimits
from labproto.chat.names import parse_name
from labproto.chat.room import Answer, ChatRoom, IChatMember, encode_line
from labproto.text import clean_message

T = TypeVar("T")


class IChatConnection(Interface):
    """What a session needs of the connection that carries it."""

    def send(line: bytes) -> None:  # noqa: N805 (zope interfaces have no self)
        """Send one line, UTF-8 ending with CRLF, as it is; cheap, and never re-entrant."""

    def close() -> None:
        """Close the connection once what was sent has been written."""

    def abort() -> None:
        """Close the connection now, dropping whatever is still unsent."""

    kind = Attribute("What carries the connection, as /metrics counts it: 'tcp', 'websocket'.")


class Stage(enum.Enum):
    """Where a session is: the one state of a labchat connection."""

    LOGIN = "login"
    CHAT = "chat"
    GONE = "gone"


@implementer(IChatMember)
class ChatSession:
    """The chat logic of one connection, from its first line to its last."""

    log = Logger()

    def __init__(
        self,
        room: ChatRoom,
        connection: IChatConnection,
        peer: str,
        limits: UserLimits,
        clock: IReactorTime,
        host: str | None = None,
    ) -> None:
        self.room = room
        self.connection = connection
        self.peer = peer
        self.host = host
        self.limits = limits
        self.clock = clock
        self.name: str | None = None
        self.kind: str = connection.kind
        self.stage = Stage.LOGIN
        # Straight to the connection: every broadcast calls this once per user.
        self.deliver: Callable[[bytes], None] = connection.send
        self._flood = TokenBucket(limits.burst, limits.rate, clock)
        self._flooding = False
        self._login_timer: IDelayedCall | None = None
        # While the room works on a request that it answers later (a room
        # spread over several nodes asks Redis), the lines read since wait
        # here, to be handled in order once the answer has come.
        self._unread: list[str] | None = None

    def start(self) -> None:
        """Greet a new connection with the login prompt, or turn it away if the room is full."""
        self.log.info("Connected {peer}", peer=self.peer)
        if not self.room.admits_visitor():
            self._turn_away()
            return
        max_per_host = self.limits.max_per_host
        if max_per_host and self.room.connections_from(self.host) >= max_per_host:
            self.log.info(
                "Too many connections from {host}: turned away {peer}",
                host=self.host,
                peer=self.peer,
            )
            self.room.figures.disconnects[figures.TOO_MANY_FROM_HOST] += 1
            self._finish(encode_line(wire.TOO_MANY_FROM_HOST))
            return
        self.room.arrive(self)
        self._prompt()

    def _prompt(self) -> None:
        self.send_text(wire.PROMPT)
        if self.limits.login_timeout:
            self._login_timer = self.clock.callLater(
                self.limits.login_timeout, self._login_timed_out
            )

    def lose_name(self, notice: bytes) -> None:
        """The name went to someone else while the room's nodes were apart: log in again."""
        if self.stage is Stage.CHAT:
            self.log.info("{name} must log in again: the name was taken", name=self.name)
            self.name = None
            self.stage = Stage.LOGIN
            # Lines held for an answer were meant as messages, not names.
            if self._unread is not None:
                self._unread.clear()
            self.deliver(notice)
            self._prompt()

    def shut_down(self, notice: bytes) -> None:
        """The server is stopping: leave the room, send notice, and close the connection."""
        if self.stage is not Stage.GONE:
            self._leave(wire.SERVER_SHUTTING_DOWN)
            self._finish(notice)

    def cut_off(self) -> None:
        """Close the connection now."""
        self.connection.abort()

    def send_text(self, text: str) -> None:
        """Send one line to this user alone, after what the room has waiting for it."""
        self.room.tell(self, encode_line(text))

    def line_received(self, text: str) -> None:
        """Handle one line from the user: a name while logging in, then a message or command."""
        if self._unread is not None:
            self._wait_with(text)
        elif self.stage is Stage.CHAT:
            self._chat(text)
        elif self.stage is Stage.LOGIN:
            self._log_in(text)

    def _wait_with(self, text: str) -> None:
        """Keep a line read while an answer is awaited: at most a burst of them, and /quit.

        Without flood control (--rate 0) every line is kept, as every line
        would have been relayed.
        """
        assert self._unread is not None
        command = split_command(text)
        if (
            not self.limits.rate
            or len(self._unread) < self.limits.burst
            or (command is not None and command[0].lower() == "/quit")
        ):
            self._unread.append(text)
            return
        # The room is slow to answer (Redis is): the user hears so at once,
        # but of an empty line, which nobody would miss.
        self.room.figures.flood_dropped += 1
        if text.strip():
            self.send_text(wire.SLOW_DOWN)

    def input_ended(self) -> None:
        """The user can send nothing more (a half-closed connection): leave the room now.

        The connection closes once what is already on its way has been sent.
        """
        self._leave(wire.CONNECTION_LOST)

    def connection_lost(self, reason: str = wire.CONNECTION_LOST) -> None:
        """The connection has ended: leave the room, if still in it, for reason."""
        self._leave(reason)
        self.room.depart(self)

    def _leave(self, reason: str) -> None:
        self._stop_login_timer()
        if self.stage is not Stage.GONE:
            self.room.figures.disconnects[figures.disconnect_reason(reason)] += 1
        if self.stage is Stage.CHAT:
            self.room.leave(self, reason)
        elif self.stage is Stage.LOGIN:
            self.log.info("Disconnected {peer} before logging in", peer=self.peer)
        self.stage = Stage.GONE

    def _finish(self, line: bytes) -> None:
        """Send a last line, and close the connection after it."""
        # Nothing may follow the last line, not even the login deadline.
        self._stop_login_timer()
        self.stage = Stage.GONE
        self.connection.send(line)
        self.connection.close()

    def _turn_away(self) -> None:
        self.log.info("Room full: turned away {peer}", peer=self.peer)
        self.room.figures.disconnects[figures.ROOM_FULL] += 1
        self._finish(encode_line(wire.ROOM_FULL))

    def _log_in(self, text: str) -> None:
        command = split_command(text)
        if command is not None and command[0].lower() == "/quit":
            # Names have no "/": this is someone leaving before logging in.
            self._leave(wire.QUIT)
            self.connection.close()
            return
        name = parse_name(text)
        if name is None:
            # Every line costs the server work: a flood of lines that are no
            # name (empty ones too) is held to the bucket the user's messages
            # will be. A name that logs in costs nothing of it.
            if self._may_send(answer=bool(text.strip())):
                self.send_text(wire.INVALID_NAME)
            return
        self._when_answered(self.room.join(self, name), self._joined)

    def _joined(self, refusal: str | None) -> None:
        if self.stage is not Stage.LOGIN:
            if refusal is None:
                # The room let us in after the connection had gone.
                self.room.leave(self, wire.CONNECTION_LOST)
            return
        if refusal == wire.ROOM_FULL:
            self._turn_away()
        elif refusal is not None:
            self.send_text(refusal)
        else:
            self.stage = Stage.CHAT
            self._stop_login_timer()

    def _when_answered(self, answer: Answer[T], then: Callable[[T], None]) -> None:
        """Call then with the room's answer, at once or once it has come."""
        if not isinstance(answer, Deferred):
            then(answer)
            return
        self._unread = []

        def answered(result: T) -> None:
            try:
                then(result)
            except Exception:
                # Logged; the user's lines must not wait for ever behind it.
                self.log.failure("Handling the room's answer")
            unread, self._unread = self._unread or [], None
            for index, text in enumerate(unread):
                if self._unread is not None:
                    # That line asked the room something too: the rest wait again.
                    self._unread.extend(unread[index:])
                    return
                self.line_received(text)

        answer.addCallback(answered).addErrback(
            lambda failure: self.log.failure("Handling the room's answer", failure)
        )

    def _login_timed_out(self) -> None:
        self._login_timer = None
        self.log.info("Login timed out: {peer}", peer=self.peer)
        self.room.figures.disconnects[figures.LOGIN_TIMEOUT] += 1
        self._finish(encode_line(wire.LOGIN_TIMED_OUT))

    def _stop_login_timer(self) -> None:
        if self._login_timer is not None:
            self._login_timer.cancel()
            self._login_timer = None

    def _chat(self, text: str) -> None:
        if not text or text.isspace():
            # Not relayed, but read and handled all the same: a flood of
            # empty lines costs the server as much as one of messages.
            self._may_send(answer=False)
            return
        command = split_command(text)
        if command is not None:
            word, rest = command
            if word.lower() == "/quit":
                # Never held back by flood control: a flooder may always leave.
                self.command_quit(rest)
            elif self._may_send():
                command = getattr(self, "command_" + word[1:].lower(), None)
                if command is None:
                    self.send_text(wire.unknown_command(clean_message(word)))
                else:
                    command(rest)
        elif self._may_send():
            message = clean_message(text[1:] if text.startswith("/") else text)
            if message:
                self.room.say(self, message)

    def _may_send(self, answer: bool = True) -> bool:
        """Take a line from the user's flood bucket; past it, the line is dropped.

        A dropped line is answered with ERROR slow down unless answer is
        False (an empty line, which nobody would miss).
        """
        if self._flood.take():
            # One warning per flood: a flood ends when the bucket is full again.
            if self._flooding and self._flood.is_full():
                self._flooding = False
            return True
        if not self._flooding:
            self._flooding = True
            self.log.warn(
                "{name} sends too fast: dropping lines past {burst} at once or {rate:g}/s",
                name=self.name or self.peer,
                burst=self.limits.burst,
                rate=self.limits.rate,
            )
        self.room.figures.flood_dropped += 1
        if answer:
            self.send_text(wire.SLOW_DOWN)
        return False

    def command_me(self, rest: str) -> None:
        """``/me waves``: everyone sees ``* alice waves``."""
        action = clean_message(rest)
        if not action:
            self.send_text(wire.usage("/me ACTION"))
            return
        self.room.act(self, action)

    def command_msg(self, rest: str) -> None:
        """``/msg bob psst``: bob alone sees ``*alice* psst``."""
        recipient, text = split_word(rest)
        message = clean_message(text)
        if not recipient or not message:
            self.send_text(wire.usage("/msg NAME TEXT"))
            return
        self._when_answered(
            self.room.whisper(self, clean_message(recipient), message), self._refused
        )

    def _refused(self, refusal: str | None) -> None:
        if refusal is not None and self.stage is Stage.CHAT:
            self.send_text(refusal)

    def command_who(self, rest: str) -> None:
        """``/who``: the names of everyone logged in."""
        self._when_answered(self.room.list_names(), self._list)

    def _list(self, names: list[str]) -> None:
        if self.stage is Stage.CHAT:
            for line in wire.who(names):
                self.send_text(line)

    def command_nick(self, rest: str) -> None:
        """``/nick carol``: everyone sees ``* alice is now known as carol``."""
        if not rest.strip():
            self.send_text(wire.usage("/nick NAME"))
            return
        name = parse_name(rest)
        if name is None:
            self.send_text(wire.INVALID_NAME)
        else:
            self._when_answered(self.room.rename(self, name), self._refused)

    def command_help(self, rest: str) -> None:
        """``/help``: the list of commands."""
        for line in wire.HELP:
            self.send_text(line)

    def command_quit(self, rest: str) -> None:
        """``/quit [reason]``: say goodbye, leave, and close the connection."""
        # A room spread over nodes delivers the user's last lines only once
        # they come back from Redis: they are read before the goodbye.
        self._when_answered(self.room.settle(), lambda _: self._quit(rest))

    def _quit(self, rest: str) -> None:
        if self.stage is not Stage.CHAT:
            return
        assert self.name is not None
        self.send_text(wire.bye(self.name))
        self.stage = Stage.GONE
        self.room.figures.disconnects[figures.QUIT] += 1
        self.room.leave(self, clean_message(rest) or wire.QUIT)
        self.connection.close()

