"""twistd wiring for labchat: ``twistd -n labchat [--port ENDPOINT] [--web ENDPOINT] [limits]``."""

from __future__ import annotations

import re
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python import usage

from labproto import ports
from labproto.chat import limits
from labproto.chat.origins import OriginPolicy, origin_key
from labproto.chat.protocol import ChatFactory
from labproto.chat.redisurl import parse_redis_url
from labproto.chat.room import DEFAULT_MAX_USERS, ChatRoom
from labproto.chat.sendqueue import UNSENT_WHEN_PAUSED
from labproto.chat.sharedroom import LOST_AFTER
from labproto.tcpserver import (
    TCPServerOptions,
    checked_endpoint,
    endpoint_service,
    listening_parameters,
    tcp_service,
)

DEFAULT_ROOM = "lobby"
ROOM_PATTERN = r"[A-Za-z0-9_.-]{1,64}"
_SIZE = re.compile(r"([0-9]+)\s*(k|kib|m|mib)?", re.IGNORECASE)
_UNITS = {None: 1, "k": 1024, "kib": 1024, "m": 1024 * 1024, "mib": 1024 * 1024}


def parse_size(text: str) -> int | None:
    """A number of bytes, ``1048576``, ``1024K`` or ``1MiB``, or None if text is not one."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        return None
    unit = match.group(2)
    return int(match.group(1)) * _UNITS[unit.lower() if unit else None]


def _number(text: str, option: str, minimum: float) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= minimum or value == float("inf"):
        raise usage.UsageError(f"--{option} must be a number from {minimum:g} up, not {text!r}")
    return value


class Options(TCPServerOptions):
    """Options of the labchat server."""

    synopsis = (
        "[--port N|ENDPOINT] [--max-line N] [--login-timeout S] [--burst N] [--rate N] "
        "[--sendq BYTES] [--max-users N] [--max-per-host N] "
        "[--web ENDPOINT [--web-origin ORIGINS]] "
        "[--redis URL [--room NAME] [--lost-after S]] [--quiet] [--trace]"
    )
    longdesc = (
        "The lab's TCP chat room: everyone who connects picks a name and talks to "
        "everyone else; /help lists the commands. Join it with: "
        "labproto chat --host THIS-HOST (or nc THIS-HOST 43389). With --web tcp:8080, "
        "browsers join the same room at http://THIS-HOST:8080/. With --redis, every "
        "labchat given the same Redis and --room is one room."
    )
    optFlags = [["quiet", "q", "Do not log each message (joins, leaves and renames still are)."]]
    optParameters = listening_parameters(ports.LABCHAT) + [
        [
            "login-timeout",
            None,
            f"{limits.DEFAULT_LOGIN_TIMEOUT:g}",
            "Seconds a connection may take to log in before it is closed; 0 waits for ever.",
        ],
        ["burst", None, str(limits.DEFAULT_BURST), "Lines a user may send at once."],
        [
            "rate",
            None,
            f"{limits.DEFAULT_RATE:g}",
            "Lines per second a user may go on sending after a burst; 0 turns flood control off.",
        ],
        [
            "sendq",
            None,
            f"{limits.DEFAULT_SENDQ // 1024 // 1024}MiB",
            "Output a user may leave unread (bytes, or with K or M) before being disconnected.",
        ],
        ["max-users", None, str(DEFAULT_MAX_USERS), "Users the room holds at once."],
        [
            "max-per-host",
            None,
            str(limits.DEFAULT_MAX_PER_HOST),
            "Connections from one address, logged in or not, on every door of the room; "
            "0 for no limit (a load test from one machine needs that).",
        ],
        [
            "web",
            None,
            None,
            "Also serve the chat page (/), its WebSocket (/ws) and the room's figures "
            "(/metrics) on this port number or endpoint (tcp:8080; ssl:8443:privateKey=...: "
            "https and wss). Off unless given.",
        ],
        [
            "web-origin",
            None,
            "",
            "Comma-separated origins (https://lab.example.org) whose pages may open the "
            "WebSocket, or * for any; by default only the page's own origin.",
        ],
        [
            "redis",
            None,
            None,
            "Share the room with every other labchat given this Redis and --room: "
            "redis://HOST[:PORT][/DB]. Off unless given: the room is this process's alone.",
        ],
        ["room", None, DEFAULT_ROOM, "The name of the room in Redis (letters, digits, _ . -)."],
        [
            "lost-after",
            None,
            f"{LOST_AFTER:g}",
            "Seconds within which the users of a node that stops without a goodbye are "
            "told to the room as gone (with --redis).",
        ],
    ]

    def postOptions(self) -> None:
        super().postOptions()
        self["login-timeout"] = _number(self["login-timeout"], "login-timeout", 0)
        self["rate"] = _number(self["rate"], "rate", 0)
        for option in ("burst", "max-users"):
            if not re.fullmatch(r"[0-9]+", self[option]) or int(self[option]) < 1:
                raise usage.UsageError(
                    f"--{option} must be a whole number from 1 up, not {self[option]!r}"
                )
            self[option] = int(self[option])
        if not re.fullmatch(r"[0-9]+", self["max-per-host"]):
            raise usage.UsageError(
                "--max-per-host must be a whole number, 0 for no limit, "
                f"not {self['max-per-host']!r}"
            )
        self["max-per-host"] = int(self["max-per-host"])
        sendq = parse_size(self["sendq"])
        if sendq is None or sendq < UNSENT_WHEN_PAUSED:
            # Less could not be told apart from a connection that is merely busy.
            raise usage.UsageError(
                f"--sendq must be a size of at least {UNSENT_WHEN_PAUSED // 1024}K "
                f"(bytes, or with K or M), not {self['sendq']!r}"
            )
        self["sendq"] = sendq
        if self["web"] is not None:
            self["web"] = checked_endpoint("web", self["web"])
        origins = [origin.strip() for origin in self["web-origin"].split(",") if origin.strip()]
        for origin in origins:
            if origin != "*" and origin_key(origin) is None:
                raise usage.UsageError(
                    "--web-origin takes origins such as https://lab.example.org:8443, "
                    f"or *, not {origin!r}"
                )
        if origins and self["web"] is None:
            raise usage.UsageError("--web-origin needs --web: there is no web page without it")
        self["web-origin"] = origins
        if self["redis"] is not None:
            try:
                self["redis"] = parse_redis_url(self["redis"])
            except ValueError as error:
                raise usage.UsageError(f"--redis: {error}") from None
        self["lost-after"] = _number(self["lost-after"], "lost-after", 0.3)
        if not re.fullmatch(ROOM_PATTERN, self["room"]):
            raise usage.UsageError(
                f"--room takes 1 to 64 letters, digits, _, . or -, not {self['room']!r}"
            )

    def user_limits(self) -> limits.UserLimits:
        """The per-user limits these options set."""
        return limits.UserLimits(
            max_line=self["max-line"],
            login_timeout=self["login-timeout"],
            burst=self["burst"],
            rate=self["rate"],
            sendq=self["sendq"],
            max_per_host=self["max-per-host"],
        )


class ChatRoomService(Service):
    """Opens the room for as many users as the system allows, and empties it politely at stop."""

    log = Logger()

    def __init__(self, room: ChatRoom) -> None:
        self.room = room

    def startService(self) -> None:
        super().startService()
        self.room.start()
        before, after = limits.raise_open_file_limit()
        # One line of one form, raised or not, so that the README can quote it.
        self.log.info("Open file limit: {after} (was {before})", before=before, after=after)
        if after < self.room.max_users + 100:
            self.log.warn(
                "The open file limit {limit} holds fewer users than --max-users {max_users}:"
                " raise it (ulimit -n) or lower --max-users",
                limit=after,
                max_users=self.room.max_users,
            )

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.room.shut_down()


def chat_room(options: Options, reactor: Any) -> ChatRoom:
    """The room of this process alone, or its part of a room shared through Redis."""
    if options["redis"] is None:
        return ChatRoom(reactor, max_users=options["max-users"], quiet=options["quiet"])
    from labproto.chat.backplane import new_node_name
    from labproto.chat.redislink import RedisBackplane
    from labproto.chat.sharedroom import SharedRoom

    node = new_node_name()
    address = options["redis"]
    return SharedRoom(
        reactor,
        RedisBackplane(reactor, address, options["room"], node),
        node,
        where=f"{address} room {options['room']}",
        max_users=options["max-users"],
        quiet=options["quiet"],
        lost_after=options["lost-after"],
    )


def makeService(options: Options, reactor: Any = None) -> MultiService:
    """Serve labchat on the endpoint of options, with the limits they set."""
    if reactor is None:
        from twisted.internet import reactor
    clock: IReactorTime = reactor
    room = chat_room(options, reactor)
    top = MultiService()
    # Services stop in the reverse order of their start: the port stops
    # accepting first, so nobody joins the room while it says goodbye.
    ChatRoomService(room).setServiceParent(top)
    user_limits = options.user_limits()
    if options["web"] is not None:
        # Imported only here: autobahn and Twisted Web add a sixth of a
        # second to the start of every labchat that serves no web page.
        from labproto.chat.metrics import room_registry
        from labproto.chat.web import web_site
        from labproto.chat.websocket import ChatWebSocketFactory

        # Listening before the TCP port, it stops after it: both stop taking
        # users before the room says goodbye.
        policy = OriginPolicy(options["web-origin"], secure=options["web"].startswith("ssl:"))
        websockets = ChatWebSocketFactory(room, user_limits, clock, policy)
        site = web_site(websockets, room_registry(room), reactor)
        endpoint_service(options["web"], site, "labchat web", reactor).setServiceParent(top)
    factory = ChatFactory(room, user_limits, clock)
    tcp_service(options, factory, "labchat", reactor).setServiceParent(top)
    return top
