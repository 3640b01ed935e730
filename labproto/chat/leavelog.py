"""The log of who left the room: a line per leave, or, for a crowd, twenty names to a line.

Writing a log line costs the server far more than taking a user out of the
room: when 3000 users leave in one turn of the reactor (a classroom's
network cut, a load test ending), their 3000 lines took most of half a
second, and everyone else's lines waited for them. So the first leave of a
turn is logged at once, as always, and the others of that turn together
when the turn ends, twenty names to a line for each reason, as /who lists
a big room.
"""

from __future__ import annotations

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from labproto.chat import wire
from labproto.text import printable


class LeaveLog:
    """Logs each user who leaves the room, grouping those who leave in the same turn."""

    def __init__(self, log: Logger, clock: IReactorTime) -> None:
        self.log = log
        self.clock = clock
        # The turn's leaves after its first, by reason: logged when the turn ends.
        self._waiting: dict[str, list[str]] = {}
        self._turn_end: IDelayedCall | None = None

    def left(self, name: str, reason: str) -> None:
        """Log that name left for reason: at once if first in the turn, else at its end."""
        if self._turn_end is None:
            self.log.info("{name} left ({reason})", name=name, reason=printable(reason))
            self._turn_end = self.clock.callLater(0, self.flush)
        else:
            self._waiting.setdefault(reason, []).append(name)

    def flush(self) -> None:
        """Log the leaves still waiting for the turn's end, now."""
        if self._turn_end is not None and self._turn_end.active():
            self._turn_end.cancel()
        self._turn_end = None
        waiting, self._waiting = self._waiting, {}
        for reason, names in waiting.items():
            for start in range(0, len(names), wire.NAMES_PER_LINE):
                self.log.info(
                    "{names} left ({reason})",
                    names=", ".join(names[start : start + wire.NAMES_PER_LINE]),
                    reason=printable(reason),
                )
