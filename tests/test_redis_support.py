"""The redis_server fixture: a real redis-server that tests of shared-Redis chat nodes use."""

from __future__ import annotations

from support.redis import RedisServer


def test_answers_ping(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.command("PING") == b"+PONG\r\n"
    # Nothing is saved: no snapshot rules, no append-only file.
    assert redis_server.command("CONFIG", "GET", "save") == b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n"


def test_restarts_on_the_same_port_empty(redis_server: RedisServer) -> None:
    port = redis_server.port
    assert redis_server.command("SET", "room", "lobby") == b"+OK\r\n"
    assert redis_server.command("GET", "room") == b"$5\r\nlobby\r\n"

    assert redis_server.stop() == 0
    assert redis_server.stop() == 0  # idempotent
    redis_server.start()

    assert redis_server.port == port
    assert redis_server.command("PING") == b"+PONG\r\n"
    assert redis_server.command("GET", "room") == b"$-1\r\n"
