"""The design labproto replaces: the lab's chat server, one thread per client.

Blocking sockets, a thread for each client, a lock around the list of
clients, and ``sendall`` to each client in turn for every message, as the
lab's students write it. It speaks the benchmark's part of labchat's
contract (prompt, name, welcome, every message to everyone as ``<name>
text``) and checks nothing. While one client's ``sendall`` blocks, the lock
is held and every other sender waits: the whole room runs at the pace of
its slowest reader. Not for use: it exists to be measured against.

    python -m benchmarks.baselines.threaded_chat --port 43389
"""

from __future__ import annotations

import argparse
import signal
import socket
import threading

clients: list[socket.socket] = []
clients_lock = threading.Lock()


def broadcast(message: bytes) -> None:
    with clients_lock:
        for client in list(clients):
            try:
                client.sendall(message)
            except OSError:
                clients.remove(client)


def serve_client(conn: socket.socket) -> None:
    with conn:
        reader = conn.makefile("rb")
        conn.sendall(b"Welcome to labchat! Please enter your name:\r\n")
        name = reader.readline().decode("utf-8").strip()
        if not name:
            return
        # Welcomed and in the room in one step: a client that has its welcome
        # hears every message sent after it, and none before.
        with clients_lock:
            conn.sendall(f"Welcome {name}!\r\n".encode())
            clients.append(conn)
        try:
            for line in reader:
                text = line.decode("utf-8").rstrip("\r\n")
                broadcast(f"<{name}> {text}\r\n".encode())
        except OSError:
            pass
        finally:
            with clients_lock:
                if conn in clients:
                    clients.remove(conn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=43389)
    parser.add_argument("--host", default="127.0.0.1")
    options = parser.parse_args()
    # A thread per client needs little stack; the default 8 MiB of address
    # space each would run out before thousands of clients do.
    threading.stack_size(256 * 1024)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server = socket.create_server((options.host, options.port), backlog=1024)
    print(f"listening on {server.getsockname()[1]}", flush=True)
    with server:
        try:
            while True:
                conn, _ = server.accept()
                threading.Thread(target=serve_client, args=(conn,), daemon=True).start()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
