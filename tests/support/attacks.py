"""Attacks on a real labchat, and a pair of well-behaved users who time the room meanwhile."""

from __future__ import annotations

import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from support.chat import ChatUser
from support.processes import DEADLINE, child_environment

ATTACKERS = Path(__file__).with_name("attackers.py")


@contextmanager
def attackers(kind: str, port: int, count: int) -> Iterator[subprocess.Popen[str]]:
    """Run count attackers of kind (see attackers.py) in a process of their own, in the room."""
    process = subprocess.Popen(
        [sys.executable, str(ATTACKERS), kind, str(port), str(count)],
        env=child_environment(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        # A line, or the end of the output if the attackers failed.
        assert process.stdout.readline() == "ready\n", f"the {kind} attackers did not start"
        yield process
    finally:
        process.kill()
        process.wait()


@dataclass
class Timings:
    """What the pair saw: each probe's delay in seconds, and any other line the receiver read."""

    delays: list[float] = field(default_factory=list)
    other_lines: list[str] = field(default_factory=list)
    sent: int = 0


def time_the_room(
    port: int,
    seconds: float,
    rate: float = 10.0,
    at_one_second: Callable[[], object] = lambda: None,
    ignore: tuple[str, ...] = (),
) -> Timings:
    """Have one user send rate lines a second for seconds, and time each one's arrival at another.

    The lines go out on a fixed schedule whatever the server does, and each
    delay counts from the line's scheduled time, so a stalled server cannot
    hide the wait it caused. at_one_second runs a second in (the attack
    starts then); lines starting with any of ignore (the attackers' own
    joins and leaves) are not counted as other lines.
    """
    sender, receiver = (_logged_in(port, name) for name in ("pairsend", "pairhear"))
    timings = Timings()
    due: list[float] = []
    start = time.monotonic()
    attacked = False
    with selectors.DefaultSelector() as selector:
        for user in (sender, receiver):
            selector.register(user.sock, selectors.EVENT_READ, user)
        while len(timings.delays) < len(due) or time.monotonic() - start < seconds:
            now = time.monotonic()
            if now - start > seconds + DEADLINE:
                raise AssertionError(f"{len(due) - len(timings.delays)} lines never arrived")
            if not attacked and now - start >= 1:
                attacked = True
                at_one_second()
            next_due = start + len(due) / rate
            if now >= next_due and now - start < seconds:
                due.append(next_due)
                sender.send(f"probe {len(due) - 1}")
                continue
            for key, _ in selector.select(max(0.0, min(next_due - now, 0.05))):
                user = key.data
                user.receive()
                if user.ended:
                    raise AssertionError(f"the server closed the connection of {user!r}")
                for line in user.lines[user.seen :]:
                    if user is receiver and line.startswith("<pairsend> probe "):
                        number = int(line.rsplit(" ", 1)[1])
                        timings.delays.append(time.monotonic() - due[number])
                    elif line.startswith("ERROR") or (
                        user is receiver and not line.startswith(("<pairsend> ", *ignore))
                    ):
                        # The sender would be told of a flood, and the
                        # receiver hear what it should not.
                        timings.other_lines.append(line)
                user.seen = len(user.lines)
    timings.sent = len(due)
    for user in (sender, receiver):
        user.sock.close()
    return timings


def _logged_in(port: int, name: str) -> ChatUser:
    user = ChatUser(socket.create_connection(("127.0.0.1", port)))
    user.log_in(name)
    return user
