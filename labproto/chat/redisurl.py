"""The address of a Redis, as ``--redis redis://HOST:6379/0`` gives it.

Apart from backplane.py so that reading the options costs no import of the
Redis client.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_REDIS_PORT = 6379


@dataclass(frozen=True)
class RedisAddress:
    """Where a Redis listens, as ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`` says."""

    host: str
    port: int
    db: int
    password: str | None
    # A Redis 6 ACL user; None for the default user.
    username: str | None = None

    def __str__(self) -> str:
        # Never the password: this goes in logs.
        return f"redis://{self.host}:{self.port}/{self.db}"


def parse_redis_url(url: str) -> RedisAddress:
    """The address a --redis URL names; ValueError with a sentence if it names none."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise ValueError(f"expected redis://HOST[:PORT][/DB], not {url!r}")
    try:
        port = parts.port or DEFAULT_REDIS_PORT
    except ValueError:
        raise ValueError(f"the port of {url!r} is not a port number") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database of {url!r} must be a number, as in redis://HOST:6379/0")
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    if username is not None and password is None:
        # redis://secret@host would send no AUTH at all.
        raise ValueError(
            f"{url!r} names a user but no password: write redis://:PASSWORD@HOST "
            "for a password alone, redis://USER:PASSWORD@HOST for a user"
        )
    return RedisAddress(parts.hostname, port, int(path or 0), password, username)
