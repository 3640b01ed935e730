"""Attackers of a labchat, each in a process of its own, so that they never wait on the test.

    python attackers.py flood PORT COUNT   COUNT users flood the room with empty lines
    python attackers.py crowd PORT COUNT   COUNT users join, then all leave at once

Each prints ``ready`` once its users are in the room. The flood then goes
on until the process is killed; the crowd waits for a line on its standard
input, closes every connection at once and prints ``left``.
"""

from __future__ import annotations

import selectors
import socket
import sys


def log_in(port: int, names: list[str]) -> list[socket.socket]:
    """Connect a user per name and log each in, all at once; return once every one is welcomed."""
    socks = []
    for name in names:
        sock = socket.create_connection(("127.0.0.1", port))
        # A name may follow the connection at once: the server reads it after its prompt.
        sock.sendall(f"{name}\n".encode())
        socks.append(sock)
    for sock, name in zip(socks, names, strict=True):
        received = b""
        while f"Welcome {name}!".encode() not in received:
            data = sock.recv(65536)
            if not data:
                raise SystemExit(f"{name} was refused: {received!r}")
            received += data
        sock.setblocking(False)
    return socks


def flood(port: int, count: int) -> None:
    """Send nothing but empty lines, as fast as the server takes them, dropping its answers."""
    lines = b"\n" * 65536
    selector = selectors.DefaultSelector()
    for sock in log_in(port, [f"flood{number}" for number in range(count)]):
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    print("ready", flush=True)
    while True:
        for key, events in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if events & selectors.EVENT_READ and not sock.recv(65536):
                return
            if events & selectors.EVENT_WRITE:
                try:
                    sock.send(lines)
                except BlockingIOError:
                    pass


def crowd(port: int, count: int) -> None:
    """Join count users, then, on a line of standard input, close them all at once."""
    socks = log_in(port, [f"crowd{number}" for number in range(count)])
    print("ready", flush=True)
    sys.stdin.readline()
    for sock in socks:
        sock.close()
    print("left", flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    attack = {"flood": flood, "crowd": crowd}[sys.argv[1]]
    attack(int(sys.argv[2]), int(sys.argv[3]))
