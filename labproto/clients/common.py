"""What every labproto client shares: its one-line failures and where it prints."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TextIO

# Exit statuses of the labproto command (PROTOCOLS.md).
EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_USAGE = 2
# Standard output failed for another reason than its reader leaving.
EXIT_OUTPUT_FAILED = 1


class ClientError(Exception):
    """A failure the user should read as one line on standard error, with an exit status."""

    def __init__(self, message: str, status: int = EXIT_UNREACHABLE) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Interrupted(Exception):
    """The user stopped the client (Ctrl-C) while it waited; it ends quietly, with status 0."""


class OutputClosed(Exception):
    """Standard output can take no more: its reader has gone, like ``head``, or its disk is full.

    Carries the reason, or None when the reader went away, which is no
    failure: the user has seen what they wanted.
    """

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Console:
    """Where a client prints: its answers to out, its complaints to err, each line flushed.

    Flushed, because a looping client's output is often piped into another
    program, which should see each line as it happens.
    """

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def say(self, line: str) -> None:
        """Print one line of the exchange on standard output."""
        try:
            print(line, file=self.out, flush=True)
        except BrokenPipeError:
            raise OutputClosed(None) from None
        except OSError as e:
            raise OutputClosed(e.strerror or str(e)) from None

    def complain(self, line: str) -> None:
        """Print one line about something that went wrong on standard error, if it can."""
        try:
            print(line, file=self.err, flush=True)
        except OSError:
            pass  # Nowhere left to complain; the exit status still tells.


def describe_server(host: str, port: int) -> str:
    """Show host and port as a user would type them, bracketing an IPv6 address."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def detach_closed_output(stream: TextIO) -> None:
    """Point a closed pipe's file descriptor at /dev/null so the exit flush cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream.fileno())
    os.close(devnull)
