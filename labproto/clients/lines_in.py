"""Lines from standard input for a client that runs on the reactor, typed or piped alike."""

from __future__ import annotations

import threading
from typing import Any, BinaryIO

from twisted.internet.defer import DeferredQueue

from labproto.text import decode_text

# Longer than any line a labproto client sends; the rest of a longer one is
# read and thrown away, so that a huge input line cannot fill memory.
MAX_INPUT_LINE = 64 * 1024
# Lines read ahead of the client: enough to keep it busy, few enough that a
# large piped file is not read into memory before the server has answered.
READ_AHEAD = 64


class LineTooLong(str):
    """An input line longer than MAX_INPUT_LINE bytes: its start, marked as cut."""


class InputLines:
    """The lines of a stream such as standard input, read by a thread and handed to the reactor.

    A thread, because a blocking read works the same on a terminal, a pipe
    and a regular file, where the reactor cannot watch a regular file and
    Twisted's StandardIO would switch the terminal, which the shell shares,
    to non-blocking mode. The thread is a daemon, so that a client leaving
    while a read still waits (the user never typed the line) is not held up.
    """

    def __init__(self, reactor: Any, stream: BinaryIO) -> None:
        self._reactor = reactor
        self._stream = stream
        self._lines: DeferredQueue[str | None] = DeferredQueue()
        self._room = threading.Semaphore(READ_AHEAD)
        threading.Thread(target=self._read, name="input lines", daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                self._room.acquire()
                line = self._stream.readline(MAX_INPUT_LINE + 1)
                if not line:
                    break
                self._hand_over(self._line_text(line))
        except (OSError, ValueError):
            pass  # An input that cannot be read ends like one that has ended.
        self._hand_over(None)

    def _line_text(self, line: bytes) -> str:
        if line.endswith(b"\n"):
            return decode_text(line[:-1].removesuffix(b"\r"))
        if len(line) <= MAX_INPUT_LINE:
            return decode_text(line)  # The last line, without a line end.
        while True:
            rest = self._stream.readline(MAX_INPUT_LINE)
            if not rest or rest.endswith(b"\n"):
                return LineTooLong(decode_text(line[:MAX_INPUT_LINE]))

    def _hand_over(self, line: str | None) -> None:
        self._reactor.callFromThread(self._lines.put, line)

    async def next_line(self) -> str | None:
        """The next input line without its line end, or None at the end of the input."""
        line = await self._lines.get()
        self._room.release()
        if line is None:
            self._lines.put(None)  # The end stays the end, however often it is asked.
        return line
