"""--trace without sockets: the escaping of a chunk, and the tracing wrappers on fake transports."""

from __future__ import annotations

from types import ModuleType
from typing import Any, cast

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from support.fakes import DatagramPort
from twisted.application.internet import StreamServerEndpointService, UDPServer
from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IPushProducer,
    ITCPTransport,
    IUDPTransport,
)
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from labproto.calc import tap as calc_tap
from labproto.calc.protocol import CalculatorFactory
from labproto.chat import tap as chat_tap
from labproto.chat.limits import UserLimits
from labproto.chat.protocol import ChatFactory, ChatProtocol
from labproto.chat.room import ChatRoom
from labproto.knock import tap as knock_tap
from labproto.lines import LineProtocol, LineServerFactory
from labproto.tcpserver import tcp_service
from labproto.trace import (
    TracingDatagramProtocol,
    TracingFactory,
    TracingProtocol,
    quote_bytes,
    show_bytes,
)
from labproto.udpecho import tap as udpecho_tap
from labproto.udpecho.protocol import EchoServerProtocol
from labproto.udpserver import udp_service
from labproto.udptime import tap as udptime_tap
from labproto.udptime.protocol import Calendar, TimeServerProtocol

PEER = IPv4Address("TCP", "127.0.0.1", 51234)
SHOWN_PEER = "('127.0.0.1', 51234)"
CLIENT = ("192.0.2.7", 5000)
TAPS = [udpecho_tap, udptime_tap, knock_tap, calc_tap, chat_tap]


# The escaping of one chunk.


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (b"hello", '"hello"'),
        (b"", '""'),
        (b"a b", '"a b"'),
        (b"12 + 42\r\n", '"12 + 42\\r\\n"'),
        (b"tab\there", '"tab\\there"'),
        (b'say "hi"', '"say \\"hi\\""'),
        (b"back\\slash", '"back\\\\slash"'),
        (b"\\x41 is not A", '"\\\\x41 is not A"'),
        ("héllo, 世界 🙂".encode(), '"héllo, 世界 🙂"'),
        (b"\x00\x1b[2J\x7f", '"\\x00\\x1b[2J\\x7f"'),
        ("\x85".encode(), '"\\x85"'),  # C1 control NEL, valid UTF-8 but not printable
        (b"caf\xe9", '"caf\\xe9"'),  # Latin-1, not UTF-8: the byte itself
        (b"\xff\xfe", '"\\xff\\xfe"'),
        (b"\xed\xa0\x80", '"\\xed\\xa0\\x80"'),  # an encoded surrogate is not UTF-8
        ("\u00ad".encode(), '"\\xad"'),  # soft hyphen: a format character
        ("a\u2028b".encode(), '"a\\u2028b"'),  # line separator
        ("\u202eevil".encode(), '"\\u202eevil"'),  # right-to-left override
        ("\U000e0001".encode(), '"\\U000e0001"'),  # a tag character
        ("\u00a0".encode(), '"\\xa0"'),  # no-break space is not printable to Python
    ],
)
def test_a_chunk_is_shown_as_quoted_escaped_utf8(data: bytes, shown: str) -> None:
    assert quote_bytes(data) == shown
    assert show_bytes(data) == f"{len(data)} bytes: {shown}"


def test_a_chunk_of_4096_bytes_is_shown_whole() -> None:
    assert show_bytes(b"x" * 4096) == '4096 bytes: "' + "x" * 4096 + '"'


def test_only_the_first_4096_bytes_of_a_longer_chunk_are_shown() -> None:
    assert show_bytes(b"y" * 65536) == '65536 bytes, first 4096 shown: "' + "y" * 4096 + '"'


def test_a_character_cut_by_the_limit_shows_its_bytes() -> None:
    assert show_bytes("é".encode() * 3, limit=5) == '6 bytes, first 5 shown: "éé\\xc3"'


@given(st.binary(max_size=300))
def test_whatever_the_bytes_the_trace_is_one_printable_line(data: bytes) -> None:
    shown = quote_bytes(data)
    assert shown.isprintable()
    inner = shown[1:-1]
    assert (shown[0], shown[-1]) == ('"', '"')
    # Every quote inside is escaped: the closing quote is the end of the chunk.
    assert '"' not in inner.replace("\\\\", "").replace('\\"', "")


# Printable text: no control, format, surrogate, private or unassigned
# character, and no separator but the space. Drawn so, not filtered, or
# Hypothesis throws most of what it draws away and gives up now and then.
PRINTABLE = st.characters(
    exclude_categories=("C", "Z"), include_characters=" ", exclude_characters='\\"'
)


@given(st.text(alphabet=PRINTABLE, max_size=200))
def test_printable_text_is_shown_as_it_is(text: str) -> None:
    assume(text.isprintable())
    assert quote_bytes(text.encode()) == f'"{text}"'


# TCP: the tracing protocol on a string transport.


class Recorder(LineProtocol):
    """A line service that answers each line with its length, and aborts on "abort"."""

    def textReceived(self, text: str) -> None:
        if text == "abort":
            cast(ITCPTransport, self.transport).abortConnection()
            return
        self.send_text(str(len(text)))


class RecorderFactory(LineServerFactory):
    protocol = Recorder


class TCPTransport(StringTransport):
    """A StringTransport that is a TCP connection: it has Nagle's algorithm to turn off."""

    no_delay = False

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.no_delay = enabled


implementer(ITCPTransport)(TCPTransport)


def traced(factory: Any, transport: StringTransport | None = None) -> tuple[Any, StringTransport]:
    """A connection to factory's service, traced as labcalc, on a string transport."""
    protocol = TracingFactory(factory, "labcalc").buildProtocol(PEER)
    assert isinstance(protocol, TracingProtocol)
    transport = transport or TCPTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    return protocol, transport


def test_a_connection_is_traced_chunk_by_chunk_in_causal_order(logged) -> None:
    protocol, transport = traced(CalculatorFactory(1024))
    protocol.dataReceived(b"gautamop\n12 + 42\nq\n")
    protocol.connectionLost(Failure(ConnectionDone()))
    traces = [line for line in logged.lines() if line.startswith("trace ")]
    assert traces == [
        f"trace labcalc {SHOWN_PEER} connected",
        f"trace labcalc {SHOWN_PEER} out 39 bytes: \"Welcome to labcalc. What's your name?\\r\\n\"",
        f'trace labcalc {SHOWN_PEER} in 19 bytes: "gautamop\\n12 + 42\\nq\\n"',
        f'trace labcalc {SHOWN_PEER} out 64 bytes: "Hello gautamop! Send an expression like '
        '12 + 42, or q to quit.\\r\\n"',
        f'trace labcalc {SHOWN_PEER} out 6 bytes: "54.0\\r\\n"',
        f'trace labcalc {SHOWN_PEER} out 15 bytes: "Session ended\\r\\n"',
        f"trace labcalc {SHOWN_PEER} closed: Connection was closed cleanly.",
    ]
    # The trace comes on top of the service's own log, which stays as it was.
    assert f"Connection from {SHOWN_PEER}" in logged.lines()
    assert logged.lines().index(f"trace labcalc {SHOWN_PEER} connected") == 0
    assert transport.value().endswith(b"54.0\r\nSession ended\r\n")
    assert transport.disconnecting


def test_the_traced_service_writes_exactly_what_it_writes_untraced() -> None:
    session = b"alice\r\n1 / 0\r\n" + b"7" * 2000 + b"\n2 * 3\r\nq\r\n"
    protocol, traced_transport = traced(CalculatorFactory(1024))
    untraced = CalculatorFactory(1024).buildProtocol(PEER)
    bare = StringTransport(peerAddress=PEER)
    untraced.makeConnection(bare)
    protocol.dataReceived(session)
    untraced.dataReceived(session)
    assert traced_transport.value() == bare.value()
    assert traced_transport.disconnecting and bare.disconnecting


class WitnessTransport(TCPTransport):
    """A transport that notes, at each write, how many trace lines were logged before it."""

    def __init__(self, logged: Any) -> None:
        super().__init__(peerAddress=PEER)
        self.logged = logged
        self.traces_before: list[int] = []

    def write(self, data: bytes) -> None:
        self.traces_before.append(sum(line.startswith("trace ") for line in self.logged.lines()))
        super().write(data)


def test_a_write_is_traced_before_the_connection_has_it(logged) -> None:
    # Were it traced after, an answer sent at once (or a connection lost at
    # the write) could appear in the log before the write that caused it.
    protocol, transport = traced(RecorderFactory(64), WitnessTransport(logged))
    protocol.dataReceived(b"hi\n")
    # connected and "in" come first; the write finds its own "out" line logged.
    assert cast(WitnessTransport, transport).traces_before == [3]


def test_write_sequence_is_traced_as_one_chunk(logged) -> None:
    protocol, transport = traced(RecorderFactory(64))
    protocol.writeSequence([b"one ", b"two\r\n"])
    assert transport.value() == b"one two\r\n"
    assert logged.lines()[-1] == f'trace labcalc {SHOWN_PEER} out 9 bytes: "one two\\r\\n"'


def test_the_wrapper_is_half_closeable_exactly_when_the_service_is() -> None:
    line_service, _ = traced(RecorderFactory(64))
    plain, _ = traced(Factory.forProtocol(Protocol))
    # twisted.internet.tcp asks exactly this when the peer's FIN arrives.
    assert IHalfCloseableProtocol(line_service, None) is line_service
    assert IHalfCloseableProtocol(plain, None) is None


def test_a_fin_is_traced_and_reaches_the_service(logged) -> None:
    protocol, transport = traced(CalculatorFactory(1024))
    protocol.dataReceived(b"gautamop\n12 + 42\n")
    assert not transport.disconnecting
    protocol.readConnectionLost()
    assert logged.lines()[-1] == (
        f"trace labcalc {SHOWN_PEER} in FIN (the peer will send nothing more)"
    )
    # labcalc's answer to a FIN: close once every answer is written.
    assert transport.disconnecting
    assert transport.value().endswith(b"54.0\r\n")


def test_write_connection_lost_reaches_the_service() -> None:
    protocol, transport = traced(RecorderFactory(64))
    protocol.writeConnectionLost()
    assert transport.disconnecting


def test_disconnecting_is_the_real_transports() -> None:
    # LineProtocol stops handling lines once its transport is disconnecting:
    # after an abort, "next" must not be answered.
    protocol, transport = traced(RecorderFactory(64))
    assert protocol.disconnecting is False
    protocol.dataReceived(b"one\nabort\nnext\n")
    assert transport.value() == b"3\r\n"
    assert protocol.disconnecting is True


def test_the_service_sees_the_real_transports_peer_host_and_interfaces() -> None:
    protocol, transport = traced(RecorderFactory(64))
    assert protocol.getPeer() == PEER
    assert protocol.getHost() == transport.getHost()
    assert ITCPTransport.providedBy(protocol)
    # makeConnection took the transport's interfaces on top, not instead.
    assert IHalfCloseableProtocol.providedBy(protocol)


def test_labchat_registers_as_producer_turns_off_nagle_and_aborts_through_the_wrapper() -> None:
    clock = Clock()
    factory = ChatFactory(ChatRoom(clock), UserLimits(), clock)
    transport = TCPTransport(peerAddress=PEER)
    protocol, _ = traced(factory, transport)
    chat = protocol.wrapped
    assert isinstance(chat, ChatProtocol)
    assert transport.no_delay is True
    protocol.dataReceived(b"alice\r\n")
    # The real transport pauses and resumes the chat protocol itself.
    assert transport.producer is chat and transport.streaming
    assert IPushProducer.providedBy(transport.producer)
    chat.abort()
    assert transport.disconnecting


def test_a_closed_connection_is_traced_with_its_reason_before_the_service_hears(logged) -> None:
    transport = StringTransportWithDisconnection(peerAddress=PEER)
    protocol, _ = traced(CalculatorFactory(1024), transport)
    transport.protocol = protocol
    protocol.dataReceived(b"bob\n")
    protocol.connectionLost(Failure(ConnectionAborted()))
    lines = logged.lines()
    closed = (
        f"trace labcalc {SHOWN_PEER} closed: "
        "Connection was aborted locally using ITCPTransport.abortConnection."
    )
    assert closed in lines
    assert lines.index(closed) < lines.index("Session ended (bob)")


def test_the_factory_is_the_services_to_twisted() -> None:
    starts: list[str] = []

    class Counting(RecorderFactory):
        def doStart(self) -> None:
            starts.append("start")

        def doStop(self) -> None:
            starts.append("stop")

    wrapped = Counting(64)
    factory = TracingFactory(wrapped, "labcalc")
    factory.doStart()
    factory.doStop()
    assert starts == ["start", "stop"]
    assert (factory.noisy, factory.logPrefix()) == (False, "Counting")


def test_a_peer_the_service_refuses_is_refused() -> None:
    class Refusing(Factory):
        def buildProtocol(self, addr: Any) -> None:
            return None

    assert TracingFactory(Refusing(), "labcalc").buildProtocol(PEER) is None


def test_the_log_prefix_is_the_services() -> None:
    protocol, _ = traced(CalculatorFactory(1024))
    assert protocol.logPrefix() == "CalculatorProtocol"


# UDP: the tracing datagram protocol on a fake port.


def test_a_traced_udp_service_logs_where_it_listens_as_it_does_untraced(logged) -> None:
    DatagramPort().attach(EchoServerProtocol())
    DatagramPort().attach(TracingDatagramProtocol(EchoServerProtocol()))
    assert logged.lines() == ["udpecho listening on UDP 0.0.0.0:4321"] * 2


def test_each_datagram_in_and_out_is_traced_around_the_services_log(logged) -> None:
    port = DatagramPort().attach(TracingDatagramProtocol(EchoServerProtocol()))
    assert port.protocol is not None
    port.protocol.datagramReceived(b"hello", CLIENT)
    assert port.written == [(b"Ok", CLIENT)]
    assert logged.lines()[1:] == [
        "trace udpecho ('192.0.2.7', 5000) in 5 bytes: \"hello\"",
        "Server received MESSAGE= hello from ADDR= ('192.0.2.7', 5000)",
        "trace udpecho ('192.0.2.7', 5000) out 2 bytes: \"Ok\"",
    ]


def test_an_unanswered_datagram_is_traced_in_only(logged) -> None:
    port = DatagramPort().attach(TracingDatagramProtocol(EchoServerProtocol()))
    assert port.protocol is not None
    port.protocol.datagramReceived(b"\x00", CLIENT)
    traces = [line for line in logged.lines() if line.startswith("trace ")]
    assert traces == ["trace udpecho ('192.0.2.7', 5000) in 1 bytes: \"\\x00\""]


def test_udptime_is_traced_under_its_own_name(logged) -> None:
    clock = Clock()
    clock.advance(86400 * 365)
    service = TimeServerProtocol(Calendar(date_format="%Y", utc=True), clock)
    port = DatagramPort().attach(TracingDatagramProtocol(service))
    assert port.protocol is not None
    port.protocol.datagramReceived(b"SEND_DATE", CLIENT)
    assert port.written == [(b"1971", CLIENT)]
    traces = [line for line in logged.lines() if line.startswith("trace ")]
    assert traces == [
        "trace udptime ('192.0.2.7', 5000) in 9 bytes: \"SEND_DATE\"",
        "trace udptime ('192.0.2.7', 5000) out 4 bytes: \"1971\"",
    ]


class Lifecycle(DatagramProtocol):
    """Records what its port does to it."""

    service_name = "probe"
    noisy = False

    def __init__(self) -> None:
        self.calls: list[str] = []

    def startProtocol(self) -> None:
        self.calls.append("start")

    def stopProtocol(self) -> None:
        self.calls.append("stop")

    def connectionRefused(self) -> None:
        self.calls.append("refused")


def test_the_port_starts_stops_and_refuses_the_traced_protocol() -> None:
    service = Lifecycle()
    tracing = TracingDatagramProtocol(service)
    port = DatagramPort().attach(tracing)
    assert service.transport is not None and service.transport.getHost() == port.host
    assert IUDPTransport.providedBy(service.transport)
    tracing.connectionRefused()
    port.stopListening()
    assert service.calls == ["start", "refused", "stop"]
    assert (service.transport, service.numPorts, tracing.transport) == (None, 0, None)
    # Started again, as a restarted service's port does.
    DatagramPort().attach(tracing)
    assert service.calls[-1] == "start"


def test_the_traced_protocol_keeps_the_services_noise_and_log_prefix() -> None:
    tracing = TracingDatagramProtocol(EchoServerProtocol())
    assert (tracing.noisy, tracing.logPrefix()) == (False, "EchoServerProtocol")


# The --trace flag of every server.


def parsed(tap: ModuleType, *argv: str) -> Any:
    options: usage.Options = tap.Options()
    options.parseOptions(list(argv))
    return options


@pytest.mark.parametrize("tap", TAPS)
def test_every_server_takes_trace_and_is_untraced_without_it(tap: ModuleType) -> None:
    # Twisted's flags are 0 and 1.
    assert (parsed(tap)["trace"], parsed(tap, "--trace")["trace"]) == (0, 1)
    assert "--trace" in str(tap.Options())


def test_services_with_flags_of_their_own_keep_them_beside_trace() -> None:
    assert (parsed(chat_tap, "--quiet", "--trace")["quiet"], parsed(chat_tap)["quiet"]) == (
        True,
        False,
    )
    options = parsed(udptime_tap, "--utc", "--trace")
    assert (options["utc"], options["trace"]) == (True, True)


def served_factory(top: MultiService) -> Any:
    servers = [s for s in top if isinstance(s, StreamServerEndpointService)]
    if not servers:
        servers = [s for child in top if isinstance(child, MultiService) for s in child]
    (server,) = servers
    return server.factory


def test_tcp_service_traces_under_its_name_only_with_trace() -> None:
    factory = CalculatorFactory(1024)
    untraced = tcp_service(parsed(calc_tap), factory, "labcalc")
    assert served_factory(untraced) is factory
    traced_factory = served_factory(tcp_service(parsed(calc_tap, "--trace"), factory, "labcalc"))
    assert isinstance(traced_factory, TracingFactory)
    assert (traced_factory.wrapped, traced_factory.service) == (factory, "labcalc")


def test_labchat_serves_a_traced_factory_with_trace() -> None:
    top = chat_tap.makeService(parsed(chat_tap, "--trace"), reactor=Clock())
    factory = served_factory(top)
    assert isinstance(factory, TracingFactory)
    assert isinstance(factory.wrapped, ChatFactory) and factory.service == "labchat"


def udp_protocol(top: MultiService) -> Any:
    (server,) = list(top)
    assert isinstance(server, UDPServer)
    return server.args[1]


def test_udp_service_traces_only_with_trace() -> None:
    service = EchoServerProtocol()
    assert udp_protocol(udp_service(parsed(udpecho_tap), service)) is service
    traced_protocol = udp_protocol(udp_service(parsed(udpecho_tap, "--trace"), service))
    assert isinstance(traced_protocol, TracingDatagramProtocol)
    assert (traced_protocol.wrapped, traced_protocol.service) == (service, "udpecho")
