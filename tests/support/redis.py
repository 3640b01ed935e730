"""A real redis-server for tests: Debian's, on a free port of 127.0.0.1, saving nothing."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import BinaryIO

from support.processes import DEADLINE, poll_until
from support.system import missing

HOST = "127.0.0.1"


def free_tcp_port() -> int:
    """A TCP port of 127.0.0.1 free now (redis-server cannot take port 0 and say which it got)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _reply(stream: BinaryIO) -> bytes:
    """One whole RESP reply, as the raw bytes redis sent."""
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError(f"incomplete reply from redis-server: {line!r}")
    kind, size = line[:1], line[1:-2]
    if kind == b"$" and int(size) >= 0:
        return line + stream.read(int(size) + 2)
    if kind == b"*" and int(size) > 0:
        return line + b"".join(_reply(stream) for _ in range(int(size)))
    return line


class RedisServer:
    """A redis-server process whose files and log are in directory; start() runs it.

    Its port is chosen once, so that start() after stop() or kill() comes
    back at the same url: empty, since nothing is ever saved.
    """

    def __init__(self, directory: Path) -> None:
        path = shutil.which("redis-server")
        if path is None:
            missing("redis-server is not installed: apt-get install redis-server")
        self.executable = path
        self.directory = directory
        self.log = directory / "redis-server.log"
        self.host = HOST
        self.port = free_tcp_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server as a client of it is configured: redis://127.0.0.1:PORT/0."""
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        """Start the server and return once it answers PING; fail with its log if it does not."""
        if self.process is not None and self.process.poll() is None:
            raise AssertionError(f"redis-server is already running on port {self.port}")
        argv = [
            self.executable,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "no",
            "--daemonize", "no",
        ]  # fmt: skip
        # Appended to, so that a restart's log follows the one before.
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            up = poll_until(self._ready, DEADLINE)
        except AssertionError:
            up = False
        if not up:
            status = self.kill()
            raise AssertionError(
                f"redis-server did not answer PING on port {self.port} within {DEADLINE} s"
                f" (exit status {status}); the end of {self.log}:\n{self.log_tail()}"
            )

    def _ready(self) -> bool | None:
        # True once it answers, False once it has exited, None while neither.
        assert self.process is not None
        if self.process.poll() is not None:
            return False
        try:
            # A short wait each time: whatever else may answer on the port must
            # not keep this from seeing the server exit.
            return True if self.command("PING", timeout=1.0) == b"+PONG\r\n" else None
        except OSError:
            return None

    def command(self, *words: str | bytes, timeout: float = DEADLINE) -> bytes:
        """Send one command on a fresh connection and return the raw reply, e.g. b"+PONG\\r\\n"."""
        parts = [word.encode() if isinstance(word, str) else word for word in words]
        request = b"*%d\r\n" % len(parts) + b"".join(
            b"$%d\r\n%s\r\n" % (len(part), part) for part in parts
        )
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(request)
            with sock.makefile("rb") as stream:
                return _reply(stream)

    def stop(self) -> int | None:
        """Stop the server with SIGTERM (SIGKILL if it lingers) and return its exit status.

        Does nothing more when it is not running; None if it never started.
        """
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> int | None:
        """Kill the server with SIGKILL, as a crash would, and return its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
