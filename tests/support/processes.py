"""Real server processes for loopback tests: start twistd, read its log, stop it cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

# The console scripts of the environment the tests run in: the same twistd
# and labproto that a user of this checkout runs.
BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")
LABPROTO = str(BIN / "labproto")

# How long a real process gets to do what a test waits for. Generous, since
# it only matters when something is wrong; a passing test never waits it out.
DEADLINE = 20.0

T = TypeVar("T")


def child_environment() -> dict[str, str]:
    """The environment for a child process: unbuffered, so its lines arrive as written."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _hear_ctrl_c() -> None:
    # A shell without job control starts its background jobs with SIGINT
    # ignored, and children inherit that: stop() would then wait out its
    # deadline. A server started here must hear Ctrl-C as a user's would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ServerProcess:
    """A running server whose combined output is collected line by line as it comes."""

    def __init__(self, argv: Sequence[str], cwd: Path) -> None:
        self.argv = list(argv)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            preexec_fn=_hear_ctrl_c,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def output(self) -> str:
        """Everything the process has printed so far."""
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, deadline: float = DEADLINE) -> re.Match[str]:
        """Wait until a line of output matches pattern, and return the match."""
        regex = re.compile(pattern)
        give_up = time.monotonic() + deadline
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                left = give_up - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no line matching {pattern!r} from {self.argv}"
                        f" (exit status {self.process.poll()}); output:\n" + "\n".join(self.lines)
                    )
                self._changed.wait(min(left, 0.5))

    def stop(self) -> int:
        """Stop the process as Ctrl-C would, and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(DEADLINE)
        return self.process.returncode


def poll_until(check: Callable[[], T | None], deadline: float = DEADLINE) -> T:
    """Call check until it returns something other than None, and return that.

    Only for a state the kernel changes on its own, which gives nothing to
    wait on (a socket's TCP state, a capture's socket appearing); it fails
    with check's last answer once deadline seconds have passed.
    """
    give_up = time.monotonic() + deadline
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > give_up:
            raise AssertionError(f"still waiting after {deadline} s for {check}")
        time.sleep(0.01)


def start_twistd(plugin: str, *options: str, cwd: Path) -> ServerProcess:
    """Start ``twistd -n plugin options`` in cwd, without a pid file."""
    return ServerProcess([TWISTD, "--nodaemon", "--pidfile=", plugin, *options], cwd)


# Any free port of 127.0.0.1, as a TCP server's --port takes it.
LOOPBACK_TCP = "tcp:0:interface=127.0.0.1"


def loopback_suite(calc_port: str = LOOPBACK_TCP) -> list[str]:
    """The plugin and options of a labsuite on free ports of 127.0.0.1 (servers' arguments).

    calc_port, the one a test may want elsewhere, is labcalc's --calc-port.
    """
    return [
        "labsuite",
        "--interface", "127.0.0.1",
        "--echo-port", "0",
        "--time-port", "0",
        "--chat-port", LOOPBACK_TCP,
        "--knock-port", LOOPBACK_TCP,
        "--calc-port", calc_port,
    ]  # fmt: skip


# The line a TCP service logs once it listens; group 1 is the port it took.
# Not labchat's "labchat web listening on ...", which --web logs first.
TCP_LISTENING = r"(?<! web) listening on TCP \S+:(\d+)(?: \(TLS\))?$"


def tcp_server(
    servers: Callable[..., ServerProcess], plugin: str, *options: str
) -> tuple[ServerProcess, int]:
    """Start a TCP service on a free port of 127.0.0.1 and return it with the port it took.

    servers is the conftest fixture of that name.
    """
    if "--port" not in options:
        options = ("--port", LOOPBACK_TCP, *options)
    server = servers(plugin, *options)
    return server, int(server.wait_for(TCP_LISTENING).group(1))


def resident_mib(pid: int) -> float:
    """The resident memory of a process, in MiB, as the kernel counts it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def start_labproto(
    *arguments: str,
    stdin: int = subprocess.PIPE,
    where: Callable[..., list[str]] | None = None,
) -> subprocess.Popen[str]:
    """Start the labproto command, its output and complaints piped, its input piped unless
    stdin says otherwise; where, as in run_labproto, runs it elsewhere."""
    command = [LABPROTO, *arguments]
    return subprocess.Popen(
        where(*command) if where is not None else command,
        env=child_environment(),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_labproto(
    *arguments: str,
    input: str | None = None,
    timeout: float = DEADLINE,
    where: Callable[..., list[str]] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the labproto command to its end, input piped in, and return its output and status.

    where, if given, turns the command line into one that runs elsewhere
    (another network namespace: support.netns).
    """
    command = [LABPROTO, *arguments]
    return subprocess.run(
        where(*command) if where is not None else command,
        env=child_environment(),
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
