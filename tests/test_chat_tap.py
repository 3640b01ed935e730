"""labchat's twistd wiring: its options, the service it builds, and the room's start and stop."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from support.fakes import connected
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IServiceCollection, MultiService
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import (
    MemoryReactorClock,
    StringTransport,
)
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.web.server import Site

from labproto.chat import limits, tap
from labproto.chat.limits import UserLimits, raise_open_file_limit
from labproto.chat.protocol import ChatFactory, ChatProtocol
from labproto.chat.redislink import RedisBackplane
from labproto.chat.redisurl import RedisAddress
from labproto.chat.room import ChatRoom
from labproto.chat.sharedroom import SharedRoom
from labproto.chat.web import MetricsPage
from labproto.chat.websocket import ChatWebSocketResource

SHUTTING_DOWN = b"* server shutting down\r\n"


def parsed(*argv: str) -> tap.Options:
    options = tap.Options()
    options.parseOptions(list(argv))
    return options


def refusal(*argv: str) -> str:
    """The usage error that argv gets."""
    with pytest.raises(usage.UsageError) as refused:
        parsed(*argv)
    return str(refused.value)


def fired(deferred: Deferred[Any]) -> bool:
    results: list[object] = []
    deferred.addBoth(results.append)
    return bool(results)


@pytest.fixture(autouse=True)
def open_file_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int]]]:
    """Keep starting the service from changing this process's limit: it reports (before, after)."""
    figures = [(4096, 4096)]
    monkeypatch.setattr(limits, "raise_open_file_limit", lambda: figures[0])
    yield figures


# Options


def test_the_default_port_is_tcp_43389() -> None:
    assert parsed()["port"] == "tcp:43389"


def test_the_default_limits_are_the_contracts() -> None:
    assert parsed().user_limits() == UserLimits(
        max_line=1024, login_timeout=60.0, burst=20, rate=10.0, sendq=1024 * 1024
    )


def test_the_default_room_holds_1000_users_and_logs_messages() -> None:
    options = parsed()
    assert options["max-users"] == 1000
    assert not options["quiet"]


@pytest.mark.parametrize("flag", ["--quiet", "-q"])
def test_quiet_is_a_flag(flag: str) -> None:
    assert parsed(flag)["quiet"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--max-line", "2048"], UserLimits(max_line=2048)),
        (["--login-timeout", "2.5"], UserLimits(login_timeout=2.5)),
        (["--login-timeout", "0"], UserLimits(login_timeout=0.0)),
        (["--burst", "5"], UserLimits(burst=5)),
        (["--rate", "0.5"], UserLimits(rate=0.5)),
        (["--rate", "0"], UserLimits(rate=0.0)),
        (["--sendq", "2M"], UserLimits(sendq=2 * 1024 * 1024)),
        (["--sendq", "64K"], UserLimits(sendq=64 * 1024)),
        (["--sendq", "100000"], UserLimits(sendq=100000)),
    ],
)
def test_each_limit_option_sets_its_user_limit(argv: list[str], expected: UserLimits) -> None:
    assert parsed(*argv).user_limits() == expected


def test_max_users_becomes_an_int() -> None:
    assert parsed("--max-users", "5")["max-users"] == 5


@pytest.mark.parametrize("option", ["login-timeout", "rate"])
@pytest.mark.parametrize("value", ["-1", "abc", "", "inf", "nan", "1e400", "-0.5"])
def test_a_time_or_rate_that_is_not_a_number_from_0_up_is_a_usage_error(
    option: str, value: str
) -> None:
    assert refusal(f"--{option}", value) == (
        f"--{option} must be a number from 0 up, not {value!r}"
    )


@pytest.mark.parametrize("option", ["burst", "max-users"])
@pytest.mark.parametrize("value", ["0", "-1", "abc", "", "1.5", "+3", "1e3"])
def test_a_burst_or_max_users_that_is_not_a_whole_number_from_1_up_is_a_usage_error(
    option: str, value: str
) -> None:
    assert refusal(f"--{option}", value) == (
        f"--{option} must be a whole number from 1 up, not {value!r}"
    )


@pytest.mark.parametrize("value", ["65535", "63K", "abc", "", "1G", "1.5M", "-1M", "0"])
def test_a_sendq_that_is_not_a_size_of_at_least_64k_is_a_usage_error(value: str) -> None:
    assert refusal("--sendq", value) == (
        f"--sendq must be a size of at least 64K (bytes, or with K or M), not {value!r}"
    )


def test_a_bad_port_is_a_usage_error_naming_port() -> None:
    assert refusal("--port", "nonsense:1").startswith("--port 'nonsense:1' cannot be used: ")


# parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1048576),
        ("1024K", 1048576),
        ("1024k", 1048576),
        ("1024KiB", 1048576),
        ("1M", 1048576),
        ("1m", 1048576),
        ("1MiB", 1048576),
        ("1mib", 1048576),
        ("64 K", 65536),
        (" 2M ", 2097152),
        ("0", 0),
    ],
)
def test_parse_size_reads_bytes_kib_and_mib(text: str, size: int) -> None:
    assert tap.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "1.5M", "1G", "-1", "1 MB", "1KB", "0x10", "ten"])
def test_parse_size_refuses_what_is_not_a_size(text: str) -> None:
    assert tap.parse_size(text) is None


# makeService


def service_parts(top: MultiService) -> tuple[tap.ChatRoomService, StreamServerEndpointService]:
    """The room's service and the listening service that makeService built."""
    room_service, listening = list(top)
    assert isinstance(room_service, tap.ChatRoomService)
    assert IServiceCollection.providedBy(listening)
    (server,) = list(listening)
    assert isinstance(server, StreamServerEndpointService)
    return room_service, server


def made(*argv: str) -> tuple[MultiService, ChatFactory, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    top = tap.makeService(parsed(*argv), reactor)
    _, server = service_parts(top)
    assert isinstance(server.factory, ChatFactory)
    return top, server.factory, reactor


def start(top: MultiService) -> None:
    """Start a service as twistd does: the privileged part first."""
    top.privilegedStartService()
    top.startService()


def test_make_service_serves_a_chat_factory_with_the_options_limits() -> None:
    argv = ["--max-line", "2048", "--burst", "3", "--rate", "1", "--login-timeout", "9"]
    _, factory, _ = made(*argv)
    assert factory.limits == parsed(*argv).user_limits()
    assert factory.max_line == 2048


def test_make_service_gives_the_room_the_max_users_and_quiet_options() -> None:
    _, factory, _ = made("--max-users", "7", "--quiet")
    assert factory.room.max_users == 7
    assert factory.room.quiet


def test_the_room_service_and_the_factory_share_one_room() -> None:
    top, factory, _ = made()
    room_service, _ = service_parts(top)
    assert room_service.room is factory.room


def test_the_room_and_the_factory_keep_time_by_the_reactor_given() -> None:
    _, factory, reactor = made()
    assert factory.clock is reactor
    assert factory.room.clock is reactor


def test_a_started_service_listens_on_43389_with_the_chat_factory() -> None:
    top, factory, reactor = made()
    start(top)
    assert [server[:2] for server in reactor.tcpServers] == [(43389, factory)]


def test_a_started_service_logs_where_it_listens(logged) -> None:
    top, _, _ = made()
    start(top)
    assert "labchat listening on TCP 0.0.0.0:43389" in logged.lines()


# ChatRoomService: the open-file limit at start


def test_start_logs_the_open_file_limit_raised(
    logged, open_file_limit: list[tuple[int, int]]
) -> None:
    open_file_limit[0] = (1024, 4096)
    tap.ChatRoomService(ChatRoom(MemoryReactorClock(), max_users=100)).startService()
    assert logged.lines() == ["Open file limit: 4096 (was 1024)"]
    assert logged.levels() == ["info"]


def test_start_logs_the_open_file_limit_it_could_not_raise(
    logged, open_file_limit: list[tuple[int, int]]
) -> None:
    open_file_limit[0] = (4096, 4096)
    tap.ChatRoomService(ChatRoom(MemoryReactorClock(), max_users=100)).startService()
    assert logged.lines() == ["Open file limit: 4096 (was 4096)"]


def test_start_warns_when_the_open_file_limit_holds_fewer_than_max_users(
    logged, open_file_limit
) -> None:
    open_file_limit[0] = (1024, 1024)
    tap.ChatRoomService(ChatRoom(MemoryReactorClock(), max_users=1000)).startService()
    assert logged.levels() == ["info", "warn"]
    assert logged.lines()[-1] == (
        "The open file limit 1024 holds fewer users than --max-users 1000:"
        " raise it (ulimit -n) or lower --max-users"
    )


def test_start_does_not_warn_with_100_files_to_spare(
    logged, open_file_limit: list[tuple[int, int]]
) -> None:
    open_file_limit[0] = (1100, 1100)
    tap.ChatRoomService(ChatRoom(MemoryReactorClock(), max_users=1000)).startService()
    assert logged.levels() == ["info"]


# raise_open_file_limit, against a fake resource module

INFINITY = -1


def fake_resource(
    monkeypatch: pytest.MonkeyPatch, soft: int, hard: int, refuse: bool = False
) -> list[tuple[int, int]]:
    """Replace the resource module limits uses; return the list of setrlimit calls."""
    calls: list[tuple[int, int]] = []

    def setrlimit(which: int, value: tuple[int, int]) -> None:
        if refuse:
            raise ValueError("not allowed")
        calls.append(value)

    monkeypatch.setattr(
        limits,
        "resource",
        SimpleNamespace(
            RLIMIT_NOFILE=7,
            RLIM_INFINITY=INFINITY,
            getrlimit=lambda which: (soft, hard),
            setrlimit=setrlimit,
        ),
    )
    return calls


def test_the_soft_open_file_limit_is_raised_to_the_hard_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = fake_resource(monkeypatch, 1024, 4096)
    assert raise_open_file_limit() == (1024, 4096)
    assert calls == [(4096, 4096)]


def test_an_unlimited_hard_open_file_limit_raises_the_soft_one_to_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = fake_resource(monkeypatch, 1024, INFINITY)
    assert raise_open_file_limit() == (1024, 1024 * 1024)
    assert calls == [(1024 * 1024, INFINITY)]


def test_a_soft_open_file_limit_at_the_hard_one_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = fake_resource(monkeypatch, 4096, 4096)
    assert raise_open_file_limit() == (4096, 4096)
    assert calls == []


def test_a_refused_raise_of_the_open_file_limit_reports_it_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_resource(monkeypatch, 1024, 4096, refuse=True)
    assert raise_open_file_limit() == (1024, 1024)


# ChatRoomService: the room emptied politely at stop


class Room:
    """A started labchat service with alice logged in and one connection still at the prompt."""

    def __init__(self, closes_at_once: bool = False) -> None:
        self.top, self.factory, self.reactor = made()
        start(self.top)
        self.protocols: list[ChatProtocol] = []
        self.transports: list[StringTransport] = []
        for port, login in ((5000, b"alice\r\n"), (5001, b"")):
            protocol, transport = connected(self.factory, port, closes_at_once)
            assert isinstance(protocol, ChatProtocol)
            protocol.dataReceived(login)
            transport.clear()
            self.protocols.append(protocol)
            self.transports.append(transport)

    def stop(self) -> Deferred[Any]:
        stopped = self.top.stopService()
        assert isinstance(stopped, Deferred)
        return stopped

    def lose(self, index: int) -> None:
        """Connection index is gone, as a real transport reports a moment after its close."""
        self.protocols[index].connectionLost(Failure(ConnectionDone()))


def test_stop_tells_everyone_present_logged_in_or_not_that_the_server_is_shutting_down() -> None:
    room = Room()
    room.stop()
    assert [transport.value() for transport in room.transports] == [SHUTTING_DOWN] * 2


def test_stop_closes_every_connection_after_its_notice() -> None:
    room = Room()
    room.stop()
    assert all(transport.disconnecting for transport in room.transports)
    assert not any(transport.disconnected for transport in room.transports)


def test_stop_is_logged_with_the_number_of_connections_told(logged) -> None:
    room = Room()
    room.stop()
    assert "Shutting down: telling 2 connections" in logged.lines()


def test_stop_with_one_connection_says_connection_in_the_singular(logged) -> None:
    top, factory, _ = made()
    start(top)
    connected(factory, 5000, False)
    top.stopService()
    assert "Shutting down: telling 1 connection" in logged.lines()


def test_stop_finishes_once_every_connection_has_gone() -> None:
    room = Room()
    stopped = room.stop()
    room.lose(0)
    assert not fired(stopped)
    room.lose(1)
    assert fired(stopped)
    assert room.reactor.getDelayedCalls() == []


def test_stop_leaves_the_registry_empty() -> None:
    room = Room()
    room.stop()
    room.lose(0)
    room.lose(1)
    assert len(room.factory.room) == 0
    assert room.factory.room.find("alice") is None


def test_stop_of_an_empty_room_finishes_at_once() -> None:
    top, _, _ = made()
    start(top)
    assert fired(top.stopService())


def test_stop_cuts_off_connections_still_open_after_3_seconds() -> None:
    room = Room()
    stopped = room.stop()
    room.lose(0)
    room.reactor.advance(2.9)
    assert not fired(stopped)
    room.reactor.advance(0.1)
    assert fired(stopped)
    assert room.transports[1].disconnected
    assert not room.transports[0].disconnected


def test_cutting_off_slow_connections_at_stop_is_a_warning(logged) -> None:
    room = Room()
    room.stop()
    room.reactor.advance(3)
    assert logged.levels()[-1] == "warn"
    assert logged.lines()[-1] == "Cutting off connections not closed within 3 s: 2"


def test_the_port_stops_listening_before_the_room_says_goodbye(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    room = Room()
    _, server = service_parts(room.top)
    listening_at_goodbye: list[bool] = []
    shut_down = room.factory.room.shut_down

    def noting_shut_down() -> Deferred[None]:
        listening_at_goodbye.append(bool(server.running))
        return shut_down()

    monkeypatch.setattr(room.factory.room, "shut_down", noting_shut_down)
    room.stop()
    assert listening_at_goodbye == [False]


def test_stop_finishes_at_once_when_every_connection_closes_at_once(logged) -> None:
    room = Room(closes_at_once=True)
    stopped = room.stop()
    assert fired(stopped)
    assert "warn" not in logged.levels()


# --web


def web_parts(top: MultiService) -> tuple[Site, ChatFactory]:
    """The site and the TCP factory of a makeService built with --web."""
    room_service, web, listening = list(top)
    assert isinstance(room_service, tap.ChatRoomService)
    assert isinstance(web, StreamServerEndpointService)
    assert isinstance(web.factory, Site)
    (server,) = list(listening)
    return web.factory, server.factory


def test_the_web_site_is_off_unless_asked_for() -> None:
    assert parsed()["web"] is None
    made()


def test_web_serves_the_page_the_room_and_its_figures_on_its_own_port(logged) -> None:
    reactor = MemoryReactorClock()
    top = tap.makeService(parsed("--web", "8080"), reactor)
    site, factory = web_parts(top)
    start(top)
    assert [server[:2] for server in reactor.tcpServers] == [(8080, site), (43389, factory)]
    assert "labchat web listening on TCP 0.0.0.0:8080" in logged.lines()
    websocket = site.resource.getStaticEntity(b"ws")
    assert isinstance(websocket, ChatWebSocketResource)
    assert websocket._factory.room is factory.room
    assert websocket._factory.limits == factory.limits
    assert isinstance(site.resource.getStaticEntity(b"metrics"), MetricsPage)


def test_web_origins_are_parsed_into_a_list() -> None:
    options = parsed("--web", "8080", "--web-origin", "https://a.example.org, http://b.example:81")
    assert options["web-origin"] == ["https://a.example.org", "http://b.example:81"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--web", "tcp:nope"], "--web 'tcp:nope' cannot be used: "),
        (
            ["--web", "8080", "--web-origin", "lab.example.org"],
            "--web-origin takes origins such as https://lab.example.org:8443, or *, "
            "not 'lab.example.org'",
        ),
        (
            ["--web-origin", "https://lab.example.org"],
            "--web-origin needs --web: there is no web page without it",
        ),
    ],
)
def test_a_bad_web_option_is_a_usage_error_naming_it(argv: list[str], message: str) -> None:
    assert refusal(*argv).startswith(message)


# One room over several nodes (--redis)


def test_without_redis_the_room_is_this_process_alone() -> None:
    _, factory, _ = made()
    assert parsed()["redis"] is None
    assert type(factory.room) is ChatRoom


def test_redis_makes_the_room_this_node_s_part_of_a_shared_room() -> None:
    _, factory, reactor = made(
        "--redis", "redis://:s3cret@lab.example.org:6380/2", "--room", "cs101", "--lost-after", "6"
    )
    room = factory.room
    assert isinstance(room, SharedRoom)
    link = room.backplane
    assert isinstance(link, RedisBackplane)
    assert link.address == RedisAddress("lab.example.org", 6380, 2, "s3cret")
    assert link.keys.channel == "labchat:cs101:lines:db2"
    assert link.node == room.node
    # The password never reaches the log.
    assert room.where == "redis://lab.example.org:6380/2 room cs101"
    assert (room.heartbeat, room.node_ttl) == (2, 4)


def test_the_room_is_lobby_and_a_dead_node_is_told_within_15_seconds_by_default() -> None:
    options = parsed("--redis", "redis://127.0.0.1")
    assert options["room"] == "lobby"
    assert options["redis"] == RedisAddress("127.0.0.1", 6379, 0, None)
    assert options["lost-after"] == 15


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--redis", "http://127.0.0.1:6379"],
            "--redis: expected redis://HOST[:PORT][/DB], not 'http://127.0.0.1:6379'",
        ),
        (["--redis", "redis://h:port"], "--redis: the port of 'redis://h:port' is not a port"),
        (
            ["--redis", "redis://h/zero"],
            "--redis: the database of 'redis://h/zero' must be a number",
        ),
        (
            ["--redis", "redis://s3cret@h"],
            "--redis: 'redis://s3cret@h' names a user but no password: write "
            "redis://:PASSWORD@HOST",
        ),
        (["--room", "a room"], "--room takes 1 to 64 letters, digits, _, . or -, not 'a room'"),
        (["--lost-after", "0"], "--lost-after must be a number from 0.3 up, not '0'"),
    ],
)
def test_a_bad_redis_option_is_a_usage_error_naming_it(argv: list[str], message: str) -> None:
    assert refusal(*argv).startswith(message)
