"""What keeps one user from hurting the others: flood control, and the room's open-file budget."""

from __future__ import annotations

import resource
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

from labproto.lines import DEFAULT_MAX_LINE

DEFAULT_LOGIN_TIMEOUT = 60.0
DEFAULT_BURST = 20
DEFAULT_RATE = 10.0
DEFAULT_SENDQ = 1024 * 1024
DEFAULT_MAX_PER_HOST = 50
# Where the hard limit is "unlimited", raising the soft limit to it fails:
# this is as far as it goes then.
UNLIMITED_FILES_CAP = 1024 * 1024


@dataclass(frozen=True)
class UserLimits:
    """The limits each user is held to, one per twistd option."""

    max_line: int = DEFAULT_MAX_LINE
    # Seconds a connection may take to log in; 0 waits for ever.
    login_timeout: float = DEFAULT_LOGIN_TIMEOUT
    # Lines a user may send at once, then lines per second; a rate of 0 turns flood control off.
    burst: int = DEFAULT_BURST
    rate: float = DEFAULT_RATE
    # Bytes of output a user may leave unread before being cut off.
    sendq: int = DEFAULT_SENDQ
    # Connections from one address, logged in or not, on every door; 0 for no limit.
    max_per_host: int = DEFAULT_MAX_PER_HOST


class TokenBucket:
    """Flood control: up to capacity lines at once, then rate lines a second.

    Starts full, so a user's first burst goes through; a rate of 0 lets
    every line through.
    """

    def __init__(self, capacity: int, rate: float, clock: IReactorTime) -> None:
        self.capacity = capacity
        self.rate = rate
        self.clock = clock
        self.tokens = float(capacity)
        self.updated = clock.seconds()

    def take(self) -> bool:
        """Spend one line's token if there is one, and say whether there was."""
        if not self.rate:
            return True
        now = self.clock.seconds()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def is_full(self) -> bool:
        """Whether the bucket had refilled entirely before its last line: the flood is over."""
        return self.tokens >= self.capacity - 1


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's soft limit on open files to its hard limit; return (before, after).

    Every connection is an open file, and the usual soft limit of 1024 would
    refuse the 1025th user long before the machine runs out of anything.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = UNLIMITED_FILES_CAP if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, wanted
    return soft, soft
