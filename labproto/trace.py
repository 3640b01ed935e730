"""``--trace``: every byte a server receives and sends, logged as it happens.

Each server run with ``--trace`` logs one line per event on each connection
(TCP) or per datagram (UDP)::

    trace labcalc ('127.0.0.1', 51234) connected
    trace labcalc ('127.0.0.1', 51234) out 39 bytes: "Welcome to labcalc. What's your name?\\r\\n"
    trace labcalc ('127.0.0.1', 51234) in 15 bytes: "gautamop\\n7 / 2\\n"
    trace labcalc ('127.0.0.1', 51234) out 64 bytes: "Hello gautamop! Send an [...]\\r\\n"
    trace labcalc ('127.0.0.1', 51234) out 5 bytes: "3.5\\r\\n"
    trace labcalc ('127.0.0.1', 51234) in FIN (the peer will send nothing more)
    trace labcalc ('127.0.0.1', 51234) closed: Connection was closed cleanly.

``in`` is a chunk as the server read it and ``out`` one as the server wrote
it. A chunk is not a line, nor a message: TCP is a stream of bytes, and how
it is cut into chunks depends on the moment each side's system sent and
read, so one chunk may hold several lines (as above) or part of one. Only a
UDP datagram is always one chunk. ``in FIN`` says that the peer shut down
its sending side (``nc -N`` does at the end of its input): the server may
still answer before it closes.

The bytes are shown as UTF-8 text in double quotes; what is not printable
is escaped as in Python: ``\\r`` ``\\n`` ``\\t``, ``\\"`` and ``\\\\``, and
``\\xNN`` (also for a byte that is not valid UTF-8), ``\\uNNNN`` or
``\\UNNNNNNNN`` for any other character. A chunk longer than 4096 bytes is
shown up to its 4096th byte only, and says so.

Over TLS (an ``ssl:`` endpoint) the trace shows the plaintext, the bytes
that the service reads and writes, before encryption: what a packet capture
of the same connection cannot show, since only TLS records cross the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from twisted.internet.interfaces import (
    IAddress,
    IFileDescriptorReceiver,
    IHalfCloseableProtocol,
    IHandshakeListener,
    ILoggingContext,
    IProtocol,
    IProtocolFactory,
    ITransport,
)
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, alsoProvides, directlyProvides, implementer, providedBy

from labproto.lines import describe_peer
from labproto.text import format_address

# How much of one chunk a trace line shows.
TRACE_LIMIT = 4096

# The flag every server takes, and its help.
TRACE_FLAG = "trace"
TRACE_HELP = (
    "Log each chunk of bytes received and sent (over TLS, the plaintext) and, on TCP, "
    "each connection, close and FIN from the peer: one line each."
)

log = Logger()

_NAMED_ESCAPES = {"\\": "\\\\", '"': '\\"', "\r": "\\r", "\n": "\\n", "\t": "\\t"}
# Decoding with surrogateescape turns each byte that is not valid UTF-8
# into one of these lone surrogates, which valid UTF-8 never yields.
_ESCAPED_BYTES = range(0xDC80, 0xDD00)
# The interfaces through which a transport calls back its protocol: the
# tracing protocol provides one exactly when the traced protocol does.
_CALLBACK_INTERFACES = (IHalfCloseableProtocol, IHandshakeListener, IFileDescriptorReceiver)


def _escape(char: str) -> str:
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    if char.isprintable():
        return char
    code = ord(char)
    if code in _ESCAPED_BYTES:
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def quote_bytes(data: bytes) -> str:
    """Show bytes as quoted UTF-8 text, whatever is not printable escaped: ``"hi\\r\\n"``."""
    text = data.decode("utf-8", "surrogateescape")
    return '"' + "".join(_escape(char) for char in text) + '"'


def show_bytes(data: bytes, limit: int = TRACE_LIMIT) -> str:
    """Show a chunk as a trace line does: ``5 bytes: "hello"``, at most limit bytes of it quoted.

    A longer chunk shows its first limit bytes only, and says so:
    ``65536 bytes, first 4096 shown: "..."``.
    """
    if len(data) > limit:
        return f"{len(data)} bytes, first {limit} shown: {quote_bytes(data[:limit])}"
    return f"{len(data)} bytes: {quote_bytes(data)}"


def _trace_chunk(service: str, peer: str, direction: str, data: bytes) -> None:
    log.info(
        "trace {service} {peer} {direction} {chunk}",
        service=service,
        peer=peer,
        direction=direction,
        chunk=show_bytes(data),
        size=len(data),
    )


@implementer(IProtocol, ILoggingContext)
class TracingProtocol:
    """Traces one TCP connection: the protocol of the transport, and the transport of the service.

    The traced protocol gets this object as its transport: its writes are
    traced and passed on, and whatever else it asks of its transport
    (getPeer, registerProducer, abortConnection, setTcpNoDelay,
    disconnecting, ...) is the real transport's own. Unlike Twisted's
    ProtocolWrapper, it keeps no state of its own that could disagree
    with the real transport, and it provides IHalfCloseableProtocol when
    the traced protocol does, which is what makes Twisted report a peer's
    FIN instead of closing at once.
    """

    transport: Any = None
    peer = "(not connected)"

    def __init__(self, wrapped: IProtocol, service: str) -> None:
        self.wrapped = wrapped
        self.service = service
        directlyProvides(self, *[i for i in _CALLBACK_INTERFACES if i.providedBy(wrapped)])

    def __getattr__(self, name: str) -> Any:
        # Only reached for what this class does not define: the rest of
        # the transport's interface, attributes such as disconnecting and
        # connected included.
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.transport, name)

    def logPrefix(self) -> str:
        """The traced protocol's log prefix, so the log's system field stays the same."""
        if ILoggingContext.providedBy(self.wrapped):
            return str(self.wrapped.logPrefix())
        return self.wrapped.__class__.__name__

    # The protocol side, called by the real transport.

    def makeConnection(self, transport: Any) -> None:
        """Trace the connection, then connect the traced protocol with this object as transport."""
        self.transport = transport
        self.peer = describe_peer(transport.getPeer())
        # Code that asks whether its transport is TCP, TLS, ... gets the
        # real transport's answer.
        alsoProvides(self, *_transport_interfaces(transport))
        log.info("trace {service} {peer} connected", service=self.service, peer=self.peer)
        self.wrapped.makeConnection(cast(ITransport, self))

    def connectionMade(self) -> None:
        """Nothing: makeConnection has already connected the traced protocol."""

    def dataReceived(self, data: bytes) -> None:
        """Trace a chunk received, and pass it on."""
        _trace_chunk(self.service, self.peer, "in", data)
        self.wrapped.dataReceived(data)

    def readConnectionLost(self) -> None:
        """Trace the peer's FIN, and pass it on."""
        log.info(
            "trace {service} {peer} in FIN (the peer will send nothing more)",
            service=self.service,
            peer=self.peer,
        )
        self.wrapped.readConnectionLost()  # type: ignore[attr-defined]

    def writeConnectionLost(self) -> None:
        """Pass on that the sending side is shut down."""
        self.wrapped.writeConnectionLost()  # type: ignore[attr-defined]

    def handshakeCompleted(self) -> None:
        """Pass on that the TLS handshake is done."""
        self.wrapped.handshakeCompleted()  # type: ignore[attr-defined]

    def fileDescriptorReceived(self, descriptor: int) -> None:
        """Pass on a file descriptor received over a UNIX socket."""
        self.wrapped.fileDescriptorReceived(descriptor)  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure) -> None:
        """Trace the end of the connection and why, and pass it on."""
        log.info(
            "trace {service} {peer} closed: {reason}",
            service=self.service,
            peer=self.peer,
            reason=reason.getErrorMessage(),
        )
        self.wrapped.connectionLost(reason)

    # The transport side, called by the traced protocol.

    def write(self, data: bytes) -> None:
        """Trace a chunk sent, before the transport has it: the log keeps the causal order."""
        _trace_chunk(self.service, self.peer, "out", data)
        self.transport.write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Trace the chunks as one, then send them."""
        chunks = list(data)
        _trace_chunk(self.service, self.peer, "out", b"".join(chunks))
        self.transport.writeSequence(chunks)


def _transport_interfaces(transport: object) -> list[type[Interface]]:
    return [i for i in providedBy(transport) if i not in (IProtocol, *_CALLBACK_INTERFACES)]


@implementer(IProtocolFactory, ILoggingContext)
class TracingFactory:
    """Wraps a TCP service's factory so that each of its connections is traced under service."""

    def __init__(self, wrapped: IProtocolFactory, service: str) -> None:
        self.wrapped = wrapped
        self.service = service

    @property
    def noisy(self) -> bool:
        """Whether the port logs this factory's start and stop: as the service's factory does."""
        return bool(getattr(self.wrapped, "noisy", True))

    def logPrefix(self) -> str:
        """The service factory's log prefix: "CalculatorFactory starting on 43391" stays as is."""
        if ILoggingContext.providedBy(self.wrapped):
            return str(self.wrapped.logPrefix())
        return self.wrapped.__class__.__name__

    def doStart(self) -> None:
        """Start the service's factory."""
        self.wrapped.doStart()

    def doStop(self) -> None:
        """Stop the service's factory."""
        self.wrapped.doStop()

    def buildProtocol(self, addr: IAddress) -> TracingProtocol | None:
        """The service's protocol for a new connection, traced; None if it refuses the peer."""
        protocol = self.wrapped.buildProtocol(addr)
        if protocol is None:
            return None
        return TracingProtocol(protocol, self.service)


class _TracingDatagramTransport:
    """The UDP port as a traced datagram protocol sees it: each write is traced."""

    def __init__(self, port: Any, service: str) -> None:
        self.port = port
        self.service = service
        # Code that asks what its transport is gets the real port's answer.
        alsoProvides(self, *providedBy(port))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.port, name)

    def write(self, packet: bytes, addr: Any = None) -> Any:
        """Trace a datagram sent, then send it."""
        peer = format_address(*addr[:2]) if addr else "(connected peer)"
        _trace_chunk(self.service, peer, "out", packet)
        if addr is None:
            return self.port.write(packet)
        return self.port.write(packet, addr)


class TracingDatagramProtocol(DatagramProtocol):
    """Traces a UDP service: every datagram it receives and sends, under its service_name.

    The traced protocol sees the real port (through a transport that
    traces its writes) and gets every call the port makes, so that it
    behaves exactly as it does untraced.
    """

    def __init__(self, wrapped: DatagramProtocol, service: str | None = None) -> None:
        self.wrapped = wrapped
        self.service = service or str(getattr(wrapped, "service_name", type(wrapped).__name__))
        # Twisted logs this protocol's start and stop as it does the traced one's.
        self.noisy = wrapped.noisy

    def logPrefix(self) -> str:
        """The traced protocol's log prefix: "EchoServerProtocol (UDP)" stays as is."""
        return str(self.wrapped.logPrefix())

    def makeConnection(self, transport: Any) -> None:
        """Connect the traced protocol to the port, through a transport that traces its writes."""
        self.transport = transport
        self.wrapped.makeConnection(_TracingDatagramTransport(transport, self.service))  # type: ignore[arg-type]

    def doStart(self) -> None:
        self.wrapped.doStart()

    def doStop(self) -> None:
        self.transport = None
        self.wrapped.doStop()

    def startProtocol(self) -> None:
        self.wrapped.startProtocol()

    def stopProtocol(self) -> None:
        self.wrapped.stopProtocol()

    def connectionRefused(self) -> None:
        self.wrapped.connectionRefused()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Trace a datagram received, and pass it on."""
        _trace_chunk(self.service, format_address(*addr[:2]), "in", datagram)
        self.wrapped.datagramReceived(datagram, addr)
