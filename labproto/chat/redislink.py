"""The link from one labchat node to the Redis that its room shares, over txredisapi.

A node keeps two connections to Redis: one subscribed to the room's
channel, which brings every line of the room in the one order Redis gives
them, and one for the scripts of redisscripts, which decide names and
publish lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import txredisapi  # type: ignore[import-untyped]
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from labproto.chat import redisscripts
from labproto.chat.backplane import Argument, BackplaneError, IBackplane, Operation
from labproto.chat.redisurl import RedisAddress

# How long a connection attempt, and then any one answer, may take before
# Redis counts as lost: an answer stuck for longer (a Redis stopped with
# SIGSTOP, a cable pulled) would otherwise hang the room's logins for ever.
CONNECT_TIMEOUT = 5.0
REPLY_TIMEOUT = 5.0


@dataclass(frozen=True)
class RoomKeys:
    """The Redis keys and channel of one room (see redisscripts for what each holds)."""

    room: str
    db: int = 0

    @property
    def names(self) -> str:
        return f"labchat:{self.room}:names"

    @property
    def nodes(self) -> str:
        return f"labchat:{self.room}:nodes"

    @property
    def channel(self) -> str:
        # Keys live in a database, but a channel reaches every subscriber
        # of the server, whatever database it selected.
        return f"labchat:{self.room}:lines:db{self.db}"

    def node(self, node: str) -> str:
        return f"labchat:{self.room}:node:{node}"


class _Quietly(ClientFactory):
    """Connects one protocol, without the two log lines per attempt of connectProtocol."""

    noisy = False

    def __init__(self, protocol: Protocol) -> None:
        self.protocol_instance = protocol

    def buildProtocol(self, addr: object) -> Protocol:
        return self.protocol_instance


class _Watched:
    """One of the link's two connections: its loss breaks the link."""

    link: RedisBackplane

    def connectionLost(self, why: Failure) -> None:
        super().connectionLost(why)  # type: ignore[misc]
        self.link.connection_lost(self, why)


class _Subscriber(_Watched, txredisapi.SubscriberProtocol):
    def __init__(self, link: RedisBackplane, received: Callable[[bytes], None]) -> None:
        super().__init__(charset=None, convertNumbers=False)
        self.link = link
        self.received = received

    def messageReceived(self, pattern: Any, channel: Any, message: bytes) -> None:
        self.received(message)


class _Commands(_Watched, txredisapi.RedisProtocol):
    def __init__(self, link: RedisBackplane) -> None:
        super().__init__(charset=None, convertNumbers=False, replyTimeout=REPLY_TIMEOUT)
        self.link = link


@implementer(IBackplane)
class RedisBackplane:
    """One node's link to a room's Redis, over txredisapi."""

    def __init__(self, reactor: Any, address: RedisAddress, room: str, node: str) -> None:
        self.reactor = reactor
        self.address = address
        self.keys = RoomKeys(room, address.db)
        self.node = node
        self._subscriber: _Subscriber | None = None
        self._commands: _Commands | None = None
        self._lost: Callable[[str], None] | None = None
        # How long connecting, logging in and subscribing may take in all.
        self.connect_timeout = CONNECT_TIMEOUT + REPLY_TIMEOUT

    def connect(
        self, received: Callable[[bytes], None], lost: Callable[[str], None]
    ) -> Deferred[None]:
        connecting = ensureDeferred(self._connect(received, lost))
        # txredisapi waits for the subscription with no time limit: a Redis
        # that takes the connection and never answers would hold the node
        # here, neither in the room nor trying again.
        return connecting.addTimeout(self.connect_timeout, self.reactor)

    async def _connect(
        self, received: Callable[[bytes], None], lost: Callable[[str], None]
    ) -> None:
        endpoint = HostnameEndpoint(
            self.reactor, self.address.host, self.address.port, timeout=CONNECT_TIMEOUT
        )
        try:
            subscriber = self._subscriber = _Subscriber(self, received)
            await endpoint.connect(_Quietly(subscriber))
            await self._log_in(subscriber)
            await subscriber.subscribe(self.keys.channel)
            commands = self._commands = _Commands(self)
            await endpoint.connect(_Quietly(commands))
            await self._log_in(commands)
        except CancelledError:
            self.disconnect()
            raise BackplaneError(f"no answer within {self.connect_timeout:g} s") from None
        except Exception as error:
            self.disconnect()
            raise BackplaneError(_why(error)) from error
        self._lost = lost

    async def _log_in(self, protocol: txredisapi.BaseRedisProtocol) -> None:
        # Done here, not by txredisapi: its own AUTH and SELECT report a
        # failure to a connection factory that this link does not use.
        if self.address.password is not None:
            await protocol.auth(self.address.password, self.address.username)
        if self.address.db:
            await protocol.select(self.address.db)

    def connection_lost(self, protocol: object, why: Failure) -> None:
        """One connection has closed: the link is broken, and both go."""
        if protocol is self._subscriber or protocol is self._commands:
            lost, self._lost = self._lost, None
            self.disconnect()
            if lost is not None:
                lost(_why(why.value))

    def disconnect(self) -> None:
        self._lost = None
        subscriber, commands = self._subscriber, self._commands
        self._subscriber = self._commands = None
        for protocol in (subscriber, commands):
            if protocol is not None and protocol.transport is not None:
                protocol.transport.abortConnection()

    def _run(self, script: str, *arguments: Argument) -> Deferred[Any]:
        commands = self._commands
        if commands is None:
            return _failed("not connected")
        keys = [self.keys.names, self.keys.nodes, self.keys.node(self.node)]
        arguments = (self.keys.channel, self.node, *arguments)
        return commands.eval(script, keys, arguments).addErrback(_reraise)

    def flush(self, operations: Sequence[Operation]) -> Deferred[list[int]]:
        flat = [argument for operation in operations for argument in operation]
        return self._run(redisscripts.FLUSH, *flat)

    def heartbeat(self, ttl: float, left: tuple[bytes, bytes]) -> Deferred[int]:
        return self._run(redisscripts.HEARTBEAT, int(ttl * 1000), *left)

    def rejoin(
        self,
        ttl: float,
        joined: tuple[bytes, bytes],
        left: tuple[bytes, bytes],
        users: Sequence[tuple[str, str]],
        departed: Sequence[tuple[str, bytes]],
        pending: Sequence[str] = (),
    ) -> Deferred[list[int]]:
        flat: list[Argument] = [int(ttl * 1000), *joined, *left, len(users), len(pending)]
        for key, name in users:
            flat += [key, name]
        flat += pending
        for key, line in departed:
            flat += [key, line]
        return self._run(redisscripts.REJOIN, *flat)

    def goodbye(self, left: tuple[bytes, bytes]) -> Deferred[int]:
        return self._run(redisscripts.GOODBYE, *left)


def _why(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _failed(why: str) -> Deferred[Any]:
    failed: Deferred[Any] = Deferred()
    failed.errback(BackplaneError(why))
    return failed


def _reraise(failure: Failure) -> None:
    raise BackplaneError(_why(failure.value))
