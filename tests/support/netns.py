"""Two computers on one machine: network namespaces joined by a veth pair, for e2e tests.

The server "computer" has 192.0.2.1/24 and the client "computer" 192.0.2.2/24
(TEST-NET-1, RFC 5737: addresses that never route anywhere real). Each
namespace has its own loopback and its own ports, so the services can take
their default ports, and the link between the two is quiet enough to capture
on. A command runs on one of them through ``ip netns exec NAME``, which execs
it: the process started is the command itself, so SIGINT reaches it as
Ctrl-C would.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from support.processes import (
    DEADLINE,
    TWISTD,
    ServerProcess,
    run_labproto,
)

SERVER_ADDRESS = "192.0.2.1"
CLIENT_ADDRESS = "192.0.2.2"
PREFIX_LENGTH = 24
# Interface names are per namespace, and each pair lives in namespaces of its
# own, so fixed names cannot clash (the kernel makes each end directly in its
# namespace). They are what a capture names with -i.
SERVER_INTERFACE = "lp-srv0"
CLIENT_INTERFACE = "lp-cli0"

# ip lives in /usr/sbin or /sbin, which an unprivileged user's PATH may lack.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
_numbers = itertools.count()


class NamespaceError(Exception):
    """An ip command that sets up or tears down the namespaces failed."""


def ip_command() -> str | None:
    """The path of iproute2's ip, or None when it is not installed."""
    return shutil.which("ip", path=_SEARCH_PATH)


def _ip(*arguments: str) -> None:
    ip = ip_command()
    if ip is None:
        raise NamespaceError("the ip command (iproute2) is not installed")
    result = subprocess.run(
        [ip, *arguments], capture_output=True, text=True, timeout=DEADLINE, check=False
    )
    if result.returncode != 0:
        raise NamespaceError(
            f"ip {' '.join(arguments)} failed (status {result.returncode}): "
            + (result.stderr.strip() or result.stdout.strip() or "no message")
        )


def unique_name(role: str) -> str:
    """A namespace name no other test run on this machine uses at the same time."""
    return f"lp-{role}-{os.getpid()}-{next(_numbers)}"


@functools.cache
def why_no_namespaces() -> str | None:
    """Why two namespaces joined by a veth pair cannot be made here, or None if they can.

    The reason is meant for pytest.skip. The answer is found by trying, once
    per test run: root is necessary but not enough (a container may forbid
    namespaces or mounts, or lack veth).
    """
    if ip_command() is None:
        return "network namespaces: the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return f"network namespaces need root (running as uid {os.geteuid()})"
    try:
        with two_hosts() as hosts:
            # exec also needs to mount a /sys of the namespace's own.
            _ip("netns", "exec", hosts.server_namespace, "true")
    except (NamespaceError, OSError, subprocess.SubprocessError) as e:
        return f"network namespaces cannot be used here: {e}"
    return None


def in_namespace(namespace: str, argv: Sequence[str]) -> list[str]:
    """argv prefixed so that it runs in namespace (ip netns exec execs it: same process)."""
    ip = ip_command()
    assert ip is not None, "ip is not installed"
    return [ip, "netns", "exec", namespace, *argv]


@dataclass(frozen=True)
class TwoHosts:
    """Two namespaces, the server's and the client's, joined by a veth pair."""

    server_namespace: str
    client_namespace: str
    server_address: str = SERVER_ADDRESS
    client_address: str = CLIENT_ADDRESS
    server_interface: str = SERVER_INTERFACE
    client_interface: str = CLIENT_INTERFACE

    def on_server(self, *argv: str) -> list[str]:
        """argv run on the server computer."""
        return in_namespace(self.server_namespace, argv)

    def on_client(self, *argv: str) -> list[str]:
        """argv run on the client computer."""
        return in_namespace(self.client_namespace, argv)

    def start_on_server(self, argv: Sequence[str], cwd: Path) -> ServerProcess:
        """Start a long-running command on the server computer, its output collected."""
        return ServerProcess(self.on_server(*argv), cwd)

    def start_twistd(self, plugin: str, *options: str, cwd: Path) -> ServerProcess:
        """``twistd -n plugin options`` on the server computer, without a pid file."""
        return self.start_on_server([TWISTD, "--nodaemon", "--pidfile=", plugin, *options], cwd)

    def run_labproto(
        self, *arguments: str, input: str | None = None, timeout: float = DEADLINE
    ) -> subprocess.CompletedProcess[str]:
        """Run labproto on the client computer to its end, input piped in."""
        return run_labproto(*arguments, input=input, timeout=timeout, where=self.on_client)


@contextlib.contextmanager
def two_hosts() -> Iterator[TwoHosts]:
    """Make two fresh namespaces joined by a veth pair; both are deleted on exit.

    Deleting a namespace deletes its veth end (and with it the other end).
    Processes still running in a namespace keep it alive after the deletion,
    so stop them first.
    """
    hosts = TwoHosts(unique_name("srv"), unique_name("cli"))
    made: list[str] = []
    try:
        for namespace in (hosts.server_namespace, hosts.client_namespace):
            _ip("netns", "add", namespace)
            made.append(namespace)
        # Each end is made directly in its namespace: nothing appears, even
        # for a moment, among the machine's own interfaces.
        _ip(
            "link", "add", hosts.server_interface, "netns", hosts.server_namespace,
            "type", "veth",
            "peer", "name", hosts.client_interface, "netns", hosts.client_namespace,
        )
        for namespace, interface, address in (
            (hosts.server_namespace, hosts.server_interface, hosts.server_address),
            (hosts.client_namespace, hosts.client_interface, hosts.client_address),
        ):
            _ip("-n", namespace, "address", "add", f"{address}/{PREFIX_LENGTH}", "dev", interface)
            _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("-n", namespace, "link", "set", interface, "up")
        yield hosts
    finally:
        problems = []
        for namespace in reversed(made):
            try:
                _ip("netns", "delete", namespace)
            except NamespaceError as e:
                problems.append(str(e))
        if problems:
            raise NamespaceError("; ".join(problems))
