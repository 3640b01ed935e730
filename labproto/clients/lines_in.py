"""Lines from standard input for a client that runs on the reactor, typed or piped alike."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

from twisted.internet.defer import DeferredQueue

from labproto.text import decode_text

# Longer than any line a labproto client sends; the rest of a longer one is
# read and thrown away, so that a huge input line cannot fill memory.
MAX_INPUT_LINE = 64 * 1024
# Lines read ahead of the client: enough to keep it busy, few enough that a
# large piped file is not read into memory before the server has answered.
READ_AHEAD = 64
READ_SIZE = 64 * 1024


class LineTooLong(str):
    """An input line longer than MAX_INPUT_LINE bytes: its start, marked as cut."""


def _line_text(line: bytes) -> str:
    line = line.removesuffix(b"\r")
    if len(line) > MAX_INPUT_LINE:
        return LineTooLong(decode_text(line[:MAX_INPUT_LINE]))
    return decode_text(line)


class InputLines:
    """The lines of a file descriptor such as standard input's, read by a thread for the reactor.

    A thread, because a blocking read works the same on a terminal, a pipe
    and a regular file, where the reactor cannot watch a regular file and
    Twisted's StandardIO would switch the terminal, which the shell shares,
    to non-blocking mode. The thread is a daemon, so that a client leaving
    while a read still waits (the user never typed the line) is not held
    up; it reads the descriptor with os.read, because a daemon thread still
    inside a buffered file object at exit makes Python abort.
    """

    def __init__(self, reactor: Any, fd: int) -> None:
        self._reactor = reactor
        self._fd = fd
        self._lines: DeferredQueue[str | None] = DeferredQueue()
        self._room = threading.Semaphore(READ_AHEAD)
        threading.Thread(target=self._read, name="input lines", daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self._split_lines():
                self._room.acquire()
                self._hand_over(line)
        except OSError:
            pass  # An input that cannot be read ends like one that has ended.
        self._hand_over(None)

    def _split_lines(self) -> Iterator[str]:
        pending = b""
        # The start of a line already known to be too long, while its end is awaited.
        cut: bytes | None = None
        while chunk := os.read(self._fd, READ_SIZE):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if cut is not None:
                    line, cut = cut, None
                    yield LineTooLong(decode_text(line))
                else:
                    yield _line_text(line)
            # One more byte may be the CR of a CRLF split between two reads.
            if len(pending) > MAX_INPUT_LINE + 1:
                if cut is None:
                    cut = pending[:MAX_INPUT_LINE]
                pending = b""
        if cut is not None:
            yield LineTooLong(decode_text(cut))
        elif pending:
            yield _line_text(pending)  # The last line had no line end.

    def _hand_over(self, line: str | None) -> None:
        self._reactor.callFromThread(self._lines.put, line)

    async def next_line(self) -> str | None:
        """The next input line without its line end, or None at the end of the input."""
        line = await self._lines.get()
        self._room.release()
        if line is None:
            self._lines.put(None)  # The end stays the end, however often it is asked.
        return line
