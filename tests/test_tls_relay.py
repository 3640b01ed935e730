"""What a Wireshark user sees of a chat, with and without TLS: a recording relay in the middle.

The real ``labproto chat`` talks to a real labchat through a TCP relay run
by the test, which records every byte each way before passing it on: the
bytes on the wire, as a capture would show them. A second user, connected
directly, hears the first user's message, so both sessions demonstrably
worked. On tcp: the recording holds the message in plain text; on ssl: it
starts with a TLS handshake record and holds neither the message nor the
user's name.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest
import pytest_twisted
from support.certificates import make_certificate, tls_endpoint
from support.chat import PROMPT, Connect, chat_server
from support.processes import DEADLINE, ServerProcess, run_labproto
from twisted.internet import reactor, threads
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IAddress, IPushProducer
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.python.failure import Failure

Start = Callable[..., ServerProcess]

MESSAGE = "the secret word is swordfish"
# The first byte of a TLS record that carries a handshake message (ClientHello).
TLS_HANDSHAKE = 0x16


@dataclass
class Recording:
    """Every byte a relayed connection carried, each way, and when it ended."""

    client_to_server: bytearray = field(default_factory=bytearray)
    server_to_client: bytearray = field(default_factory=bytearray)
    ended: Deferred[None] = field(default_factory=Deferred)


class ToServer(Protocol):
    """The relay's connection to the server: passes on, and records, what the server sends."""

    def __init__(self, from_client: FromClient) -> None:
        self.from_client = from_client

    def connectionMade(self) -> None:
        self.from_client.server_connected(self)

    def dataReceived(self, data: bytes) -> None:
        self.from_client.recording.server_to_client += data
        self.from_client.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.from_client.lose_connection()


class FromClient(Protocol):
    """The client's connection to the relay: passes on, and records, what the client sends.

    Nothing is read from the client until the connection to the server is
    made, so nothing is lost and the recording starts with the first byte.
    """

    def __init__(self, recording: Recording, server_port: int) -> None:
        self.recording = recording
        self.server_port = server_port
        self.to_server: ToServer | None = None

    def connectionMade(self) -> None:
        cast(IPushProducer, self.transport).pauseProducing()
        connecting = connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", self.server_port), ToServer(self)
        )
        connecting.addErrback(lambda _: self.lose_connection())

    def server_connected(self, to_server: ToServer) -> None:
        """Start reading the client, now that its bytes can go on."""
        self.to_server = to_server
        cast(IPushProducer, self.transport).resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        assert self.to_server is not None and self.to_server.transport is not None
        self.recording.client_to_server += data
        self.to_server.transport.write(data)

    def write(self, data: bytes) -> None:
        """Pass bytes from the server on to the client."""
        assert self.transport is not None
        self.transport.write(data)

    def lose_connection(self) -> None:
        """Close the client's connection once what is written has gone."""
        assert self.transport is not None
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.to_server is not None and self.to_server.transport is not None:
            self.to_server.transport.loseConnection()
        self.recording.ended.callback(None)


class RecordingRelay(ServerFactory):
    """Relays one connection to the server on server_port of 127.0.0.1, recording it."""

    noisy = False

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.recording = Recording()

    def buildProtocol(self, addr: IAddress | None) -> FromClient:
        return FromClient(self.recording, self.server_port)


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "ssl"])
@pytest_twisted.ensureDeferred
async def test_the_wire_shows_the_chat_only_without_tls(
    tls: bool, servers: Start, connect: Connect, tmp_path: Path
) -> None:
    certificate = make_certificate(tmp_path)
    if tls:
        _, port = chat_server(servers, "--port", tls_endpoint(certificate))
        trusting = ssl.create_default_context(cafile=str(certificate.certificate))
        bob = connect(port, tls=trusting)
        security = ["--tls", "--ca-file", str(certificate.certificate)]
    else:
        _, port = chat_server(servers)
        bob = connect(port)
        security = []
    bob.log_in("bob")

    relay = RecordingRelay(port)
    listening = reactor.listenTCP(0, relay, interface="127.0.0.1")
    relay_port = cast(IPv4Address, listening.getHost()).port
    try:
        # The client blocks until it ends; the relay needs the reactor meanwhile.
        result = await threads.deferToThread(
            run_labproto,
            "chat",
            "--port",
            str(relay_port),
            *security,
            "--name",
            "alice",
            input=MESSAGE + "\n",
        )
        await relay.recording.ended.addTimeout(DEADLINE, reactor)
    finally:
        await maybeDeferred(listening.stopListening)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        f"{PROMPT}\nWelcome alice! 2 users online: alice, bob\n<alice> {MESSAGE}\nBye alice!\n"
    )
    # Already received: bob's socket holds it, the reactor is not needed to read it.
    assert bob.lines_through("* alice left (quit)") == [
        "* alice joined",
        f"<alice> {MESSAGE}",
        "* alice left (quit)",
    ]

    sent = bytes(relay.recording.client_to_server)
    received = bytes(relay.recording.server_to_client)
    if tls:
        assert sent[:1] == bytes([TLS_HANDSHAKE]), sent[:16]
        assert received[:1] == bytes([TLS_HANDSHAKE]), received[:16]
        for text in (MESSAGE.encode(), b"alice", b"swordfish"):
            assert text not in sent
            assert text not in received
        assert b"labchat" not in received
    else:
        # In the clear: the name, then the message, as typed.
        assert sent.startswith(b"alice\r\n"), sent
        assert MESSAGE.encode() in sent, sent
        assert f"<alice> {MESSAGE}".encode() in received
        assert PROMPT.encode() in received
