"""The TCP clients' line connection and their input lines: no sockets, a Clock for every wait."""

from __future__ import annotations

import argparse
import errno
import os
import queue
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from OpenSSL import SSL
from support.certificates import pem, self_signed
from support.deferreds import failure_of, result_of
from support.fakes import ShutdownReactor
from twisted.internet import error, ssl
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test import iosim

from labproto.clients.cli import build_parser
from labproto.clients.common import ClientError, Interrupted
from labproto.clients.lines_in import MAX_INPUT_LINE, READ_SIZE, InputLines, LineTooLong
from labproto.clients.tcp import (
    FAREWELL_TIMEOUT,
    MAX_SERVER_LINE,
    MAX_UNREAD_LINES,
    LineClientProtocol,
    ServerConnection,
    client_endpoint,
    connect_lines,
)

WHERE = "127.0.0.1:43391"
# HostnameEndpoint tries the next resolved address, or gives up, this often.
NEXT_ATTEMPT = 0.3



def connected() -> tuple[LineClientProtocol, StringTransport]:
    protocol = LineClientProtocol()
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def server_connection(
    timeout: float = 10.0, farewell: str | None = None
) -> tuple[ServerConnection, ShutdownReactor, StringTransport]:
    reactor = ShutdownReactor()
    protocol, transport = connected()
    server = ServerConnection(reactor, protocol, "127.0.0.1", 43391, timeout, farewell)
    return server, reactor, transport


def receive(server: ServerConnection) -> Deferred[str]:
    return Deferred.fromCoroutine(server.receive())


def options(*arguments: str) -> argparse.Namespace:
    return build_parser().parse_args(["calc", *arguments])


# LineClientProtocol


def test_lines_received_before_they_are_asked_for_come_in_order() -> None:
    protocol, _ = connected()
    protocol.dataReceived(b"one\r\ntwo\r\n")
    assert result_of(protocol.next_line()) == "one"
    assert result_of(protocol.next_line()) == "two"


def test_a_line_asked_for_first_comes_when_it_arrives() -> None:
    protocol, _ = connected()
    line = protocol.next_line()
    assert not line.called
    protocol.dataReceived(b"Who's there?\r\n")
    assert result_of(line) == "Who's there?"


def test_a_line_may_end_with_lf_alone() -> None:
    protocol, _ = connected()
    protocol.dataReceived(b"54.0\n")
    assert result_of(protocol.next_line()) == "54.0"


def test_a_line_split_across_reads_comes_whole() -> None:
    protocol, _ = connected()
    protocol.dataReceived(b"Hello gaut")
    protocol.dataReceived(b"amop!\r")
    protocol.dataReceived(b"\n")
    assert result_of(protocol.next_line()) == "Hello gautamop!"


def test_invalid_utf8_from_the_server_becomes_replacement_characters() -> None:
    protocol, _ = connected()
    protocol.dataReceived(b"caf\xc3\r\n")
    assert result_of(protocol.next_line()) == "caf\ufffd"


def test_lines_are_sent_with_crlf() -> None:
    protocol, transport = connected()
    protocol.send("12 + 42")
    protocol.send("q")
    assert transport.value() == b"12 + 42\r\nq\r\n"


def test_text_is_sent_as_utf8() -> None:
    protocol, transport = connected()
    protocol.send("José")
    assert transport.value() == b"Jos\xc3\xa9\r\n"


def test_a_line_longer_than_the_limit_aborts_the_connection() -> None:
    protocol, transport = connected()
    protocol.dataReceived(b"x" * (MAX_SERVER_LINE + 1))
    assert transport.disconnected


def test_a_line_at_the_limit_is_accepted() -> None:
    protocol, transport = connected()
    protocol.dataReceived(b"x" * MAX_SERVER_LINE + b"\n")
    assert result_of(protocol.next_line()) == "x" * MAX_SERVER_LINE
    assert not transport.disconnecting


def test_a_server_sending_lines_nobody_asked_for_is_no_longer_read() -> None:
    protocol, transport = connected()
    protocol.dataReceived(b"spam\n" * (MAX_UNREAD_LINES + 10))
    assert transport.producerState == "paused"


def test_reading_resumes_when_the_client_catches_up_and_nothing_is_lost() -> None:
    protocol, transport = connected()
    flood = MAX_UNREAD_LINES + 10
    protocol.dataReceived(b"".join(b"%d\n" % n for n in range(flood)))
    read = [result_of(protocol.next_line()) for _ in range(MAX_UNREAD_LINES // 2 + 1)]
    assert transport.producerState == "producing"
    read += [result_of(protocol.next_line()) for _ in range(flood - len(read))]
    assert read == [str(n) for n in range(flood)]


def test_a_lost_connection_fails_the_line_waited_for() -> None:
    protocol, _ = connected()
    line = protocol.next_line()
    protocol.connectionLost(Failure(error.ConnectionDone()))
    failure_of(line, error.ConnectionDone)


def test_lines_received_before_the_connection_was_lost_still_come() -> None:
    protocol, _ = connected()
    protocol.dataReceived(b"Session ended\r\n")
    protocol.connectionLost(Failure(error.ConnectionDone()))
    assert result_of(protocol.next_line()) == "Session ended"
    failure_of(protocol.next_line(), error.ConnectionDone)


def test_when_lost_fires_when_the_connection_is_lost() -> None:
    protocol, _ = connected()
    lost = protocol.when_lost()
    assert not lost.called
    protocol.connectionLost(Failure(error.ConnectionDone()))
    assert result_of(lost) is None
    assert result_of(protocol.when_lost()) is None


def test_a_cancelled_wait_does_not_swallow_the_next_line() -> None:
    protocol, _ = connected()
    line = protocol.next_line()
    line.cancel()
    line.addErrback(lambda _: None)
    protocol.dataReceived(b"late\r\n")
    assert result_of(protocol.next_line()) == "late"


# ServerConnection


def test_send_writes_one_line() -> None:
    server, _, transport = server_connection()
    server.send("gautamop")
    assert transport.value() == b"gautamop\r\n"


def test_receive_returns_the_next_line() -> None:
    server, _, _ = server_connection()
    answer = receive(server)
    server.protocol.dataReceived(b"54.0\r\n")
    assert result_of(answer) == "54.0"


def test_receive_gives_up_after_the_timeout() -> None:
    server, clock, _ = server_connection(timeout=10)
    answer = receive(server)
    clock.advance(9.99)
    assert not answer.called
    clock.advance(0.01)
    assert failure_of(answer, ClientError).message == f"no answer from {WHERE} within 10 s"


def test_a_fractional_timeout_is_shown_as_given() -> None:
    server, clock, _ = server_connection(timeout=0.5)
    answer = receive(server)
    clock.advance(0.5)
    assert failure_of(answer, ClientError).message == f"no answer from {WHERE} within 0.5 s"


def test_a_timed_out_failure_has_exit_status_1() -> None:
    server, clock, _ = server_connection()
    answer = receive(server)
    clock.advance(10)
    assert failure_of(answer, ClientError).status == 1


def test_an_answer_in_time_leaves_no_timer_behind() -> None:
    server, clock, _ = server_connection()
    answer = receive(server)
    server.protocol.dataReceived(b"54.0\r\n")
    result_of(answer)
    assert clock.getDelayedCalls() == []


def test_a_cancelled_receive_fails_as_cancelled() -> None:
    server, _, _ = server_connection()
    answer = receive(server)
    answer.cancel()
    failure_of(answer, CancelledError)


def test_a_server_hanging_up_while_awaited_is_one_clear_line() -> None:
    server, _, _ = server_connection()
    answer = receive(server)
    server.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert failure_of(answer, ClientError).message == (
        f"lost the connection to {WHERE}: the server closed the connection"
    )


def test_receive_after_the_server_hung_up_fails_at_once() -> None:
    server, _, _ = server_connection()
    server.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert failure_of(receive(server), ClientError).message == (
        f"lost the connection to {WHERE}: the server closed the connection"
    )


def test_send_after_the_server_hung_up_is_one_clear_line() -> None:
    server, _, transport = server_connection()
    server.protocol.connectionLost(Failure(error.ConnectionDone()))
    with pytest.raises(ClientError) as raised:
        server.send("12 + 42")
    assert raised.value.message == (
        f"lost the connection to {WHERE}: the server closed the connection"
    )
    assert transport.value() == b""


def test_a_connection_reset_is_one_plain_line() -> None:
    server, _, _ = server_connection()
    answer = receive(server)
    server.protocol.connectionLost(Failure(error.ConnectionLost("Connection reset by peer")))
    assert failure_of(answer, ClientError).message == (
        f"lost the connection to {WHERE}: the connection was cut off"
    )


def test_a_too_long_server_line_is_the_reason_the_connection_was_lost() -> None:
    server, _, _ = server_connection()
    answer = receive(server)
    server.protocol.dataReceived(b"x" * (MAX_SERVER_LINE + 1))
    server.protocol.connectionLost(Failure(error.ConnectionAborted()))
    assert failure_of(answer, ClientError).message == (
        f"lost the connection to {WHERE}: the server sent a line longer than 65536 bytes"
    )


def test_a_tls_failure_names_openssl_reasons() -> None:
    server, _, _ = server_connection()
    answer = receive(server)
    reasons = [("SSL routines", "", "certificate verify failed")]
    server.protocol.connectionLost(Failure(SSL.Error(reasons)))
    assert failure_of(answer, ClientError).message == (
        f"lost the connection to {WHERE}: TLS failed: certificate verify failed"
    )


def test_a_tls_failure_without_reasons_still_says_tls_failed() -> None:
    server, _, _ = server_connection()
    answer = receive(server)
    server.protocol.connectionLost(Failure(SSL.Error()))
    message = failure_of(answer, ClientError).message
    assert message.startswith(f"lost the connection to {WHERE}: TLS failed: ")


def test_receive_waiting_forever_has_no_timeout() -> None:
    server, clock, _ = server_connection(timeout=10)
    answer = Deferred.fromCoroutine(server.receive(wait_forever=True))
    clock.advance(3600)
    assert not answer.called
    server.protocol.dataReceived(b"<bob> hi\r\n")
    assert result_of(answer) == "<bob> hi"


def test_while_connected_gives_the_result_of_what_it_waits_on() -> None:
    server, _, _ = server_connection()
    typed: Deferred[str] = Deferred()
    waiting = Deferred.fromCoroutine(server.while_connected(typed))
    typed.callback("hello")
    assert result_of(waiting) == "hello"


def test_while_connected_raises_the_failure_of_what_it_waits_on() -> None:
    server, _, _ = server_connection()
    typed: Deferred[str] = Deferred()
    waiting = Deferred.fromCoroutine(server.while_connected(typed))
    typed.errback(OSError("input broken"))
    assert str(failure_of(waiting, OSError)) == "input broken"


def test_while_connected_reports_a_lost_connection_at_once() -> None:
    server, _, _ = server_connection()
    typed: Deferred[str] = Deferred()
    waiting = Deferred.fromCoroutine(server.while_connected(typed))
    server.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert failure_of(waiting, ClientError).message == (
        f"lost the connection to {WHERE}: the server closed the connection"
    )
    assert typed.called  # The wait was cancelled.


def test_close_hangs_up_and_waits_for_the_hang_up() -> None:
    server, _, transport = server_connection()
    closing = Deferred.fromCoroutine(server.close())
    assert transport.disconnecting
    assert not closing.called
    server.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert result_of(closing) is None


def test_close_aborts_a_connection_that_does_not_close_in_time() -> None:
    server, clock, transport = server_connection(timeout=10)
    closing = Deferred.fromCoroutine(server.close())
    clock.advance(10)
    assert result_of(closing) is None
    assert transport.disconnected


def test_a_hang_up_after_close_gave_up_is_harmless() -> None:
    server, clock, _ = server_connection(timeout=10)
    closing = Deferred.fromCoroutine(server.close())
    clock.advance(10)
    result_of(closing)
    server.protocol.connectionLost(Failure(error.ConnectionAborted()))


def test_close_after_the_server_hung_up_returns_at_once() -> None:
    server, clock, transport = server_connection()
    server.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert result_of(Deferred.fromCoroutine(server.close())) is None
    assert not transport.disconnecting
    assert clock.getDelayedCalls() == []


# client_endpoint and the TLS options


def test_tls_options_default_to_plain_tcp() -> None:
    parsed = options()
    assert parsed.tls is False
    assert parsed.ca_file is None


def test_the_ca_file_is_parsed_as_a_path() -> None:
    assert options("--ca-file", "lab.pem").ca_file == Path("lab.pem")


def test_the_answer_timeout_defaults_to_10_seconds() -> None:
    assert options().timeout == 10.0


def test_a_zero_answer_timeout_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as raised:
        options("--timeout", "0")
    assert raised.value.code == 2


def test_an_unreadable_ca_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ClientError) as raised:
        client_endpoint(MemoryReactorClock(), options("--ca-file", str(missing)))
    assert raised.value.status == 2
    assert raised.value.message.startswith(f"cannot read --ca-file {missing}: ")


def test_an_empty_ca_file_is_a_usage_error_that_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    with pytest.raises(ClientError) as raised:
        client_endpoint(MemoryReactorClock(), options("--ca-file", str(empty)))
    assert (raised.value.status, raised.value.message) == (
        2,
        f"cannot read --ca-file {empty}: no certificate in it",
    )


def test_a_ca_file_that_is_no_certificate_is_a_usage_error(tmp_path: Path) -> None:
    not_pem = tmp_path / "lab.pem"
    not_pem.write_text("this is not a certificate\n")
    with pytest.raises(ClientError) as raised:
        client_endpoint(MemoryReactorClock(), options("--ca-file", str(not_pem)))
    assert raised.value.status == 2
    assert raised.value.message.startswith(f"cannot read --ca-file {not_pem}: ")


class Connecting:
    """connect_lines running on a MemoryReactorClock, with its one TCP attempt in view."""

    def __init__(self, *arguments: str, reactor: ShutdownReactor | None = None) -> None:
        self.reactor = reactor or ShutdownReactor()
        self.options = options(*arguments)
        self.result = Deferred.fromCoroutine(connect_lines(self.reactor, self.options))

    def fail(self, reason: BaseException) -> None:
        iosim.ConnectionCompleter(self.reactor).failOnce(Failure(reason))
        self.reactor.advance(NEXT_ATTEMPT)

    def succeed(self) -> StringTransport:
        host, port, factory, _, _ = self.reactor.tcpClients[0]
        transport = StringTransport()
        factory.buildProtocol(IPv4Address("TCP", host, port)).makeConnection(transport)
        return transport

    def meet(self, server_factory: Factory) -> iosim.IOPump:
        """Connect to a server made by server_factory, through an in-memory pump."""
        _, _, factory, _, _ = self.reactor.tcpClients[0]
        client = factory.buildProtocol(None)
        server = server_factory.buildProtocol(None)
        return iosim.connect(
            server,
            iosim.makeFakeServer(server),
            client,
            iosim.makeFakeClient(client),
            clock=self.reactor,
        )


def test_connects_to_host_and_port() -> None:
    connecting = Connecting("--host", "lab.example", "--port", "5000")
    host, port, _, timeout, _ = connecting.reactor.tcpClients[0]
    # MemoryReactorClock resolves every name to 127.0.0.1.
    assert (host, port, timeout) == ("127.0.0.1", 5000, 10.0)


def test_a_connection_gives_a_server_connection_named_for_host_and_port() -> None:
    connecting = Connecting("--host", "lab.example", "--timeout", "2.5")
    transport = connecting.succeed()
    server = result_of(connecting.result)
    assert (server.where, server.timeout) == ("lab.example:43391", 2.5)
    server.send("gautamop")
    assert transport.value() == b"gautamop\r\n"


def test_an_ipv6_server_is_named_in_brackets() -> None:
    connecting = Connecting("--host", "::1")
    connecting.succeed()
    assert result_of(connecting.result).where == "[::1]:43391"


def test_a_plain_connection_sends_nothing_before_the_client_does() -> None:
    connecting = Connecting()
    transport = connecting.succeed()
    result_of(connecting.result)
    assert transport.value() == b""


def test_a_refused_connection_is_one_clear_line() -> None:
    connecting = Connecting()
    connecting.fail(error.ConnectionRefusedError())
    refused = failure_of(connecting.result, ClientError)
    assert (refused.message, refused.status) == (f"no server at {WHERE} (connection refused)", 1)


def test_a_connect_timeout_is_one_clear_line() -> None:
    connecting = Connecting()
    connecting.fail(error.TimeoutError())
    assert failure_of(connecting.result, ClientError).message == (
        f"no server at {WHERE} (timed out connecting)"
    )


def test_another_connect_error_gives_the_system_reason() -> None:
    connecting = Connecting()
    # As the reactor reports it: the errno, and its strerror text.
    unreachable = error.getConnectError((errno.ENETUNREACH, os.strerror(errno.ENETUNREACH)))
    connecting.fail(unreachable)
    assert failure_of(connecting.result, ClientError).message == (
        f"cannot connect to {WHERE}: Network is unreachable"
    )


class NoAddresses:
    """A name resolver that finds no address for any name, as for a name nobody registered."""

    def resolveHostName(self, receiver: Any, host_name: str, *args: Any, **kwargs: Any) -> Any:
        receiver.resolutionBegan(self)
        receiver.resolutionComplete()
        return self


def test_a_host_that_does_not_resolve_is_one_clear_line() -> None:
    reactor = ShutdownReactor()
    reactor.installNameResolver(NoAddresses())  # type: ignore[arg-type]
    connecting = Connecting("--host", "no-such-lab-host", reactor=reactor)
    assert failure_of(connecting.result, ClientError).message == (
        "cannot resolve host no-such-lab-host"
    )


@pytest.mark.parametrize("host", ["a..b", "lab_server"])
def test_a_host_name_twisted_cannot_encode_is_one_clear_line(host: str) -> None:
    connecting = Connecting("--host", host)
    assert host in failure_of(connecting.result, ClientError).message


@pytest.mark.parametrize("arguments", [("--tls",), ("--ca-file", "{ca_file}")])
def test_tls_starts_with_a_handshake_naming_the_host(
    tmp_path: Path, arguments: tuple[str, ...]
) -> None:
    ca_file = tmp_path / "lab.pem"
    ca_file.write_bytes(pem(self_signed("lab.example")[0]))
    connecting = Connecting(
        "--host", "lab.example", *(a.format(ca_file=ca_file) for a in arguments)
    )
    transport = connecting.succeed()
    hello = transport.value()
    assert hello[:1] == b"\x16"  # a TLS handshake record
    assert b"lab.example" in hello  # server name indication


class Greeter(Protocol):
    """A server that greets each client with one line."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(b"Welcome to labcalc. What's your name?\r\n")


def tls_server(host: str, clock: ShutdownReactor) -> tuple[Factory, bytes]:
    """A TLS greeting server with a certificate for host, and that certificate in PEM."""
    certificate, key = self_signed(host)
    options = ssl.CertificateOptions(privateKey=key, certificate=certificate)
    factory = TLSMemoryBIOFactory(options, False, Factory.forProtocol(Greeter), clock=clock)
    return factory, pem(certificate)


def answer_through(connecting: Connecting, server: Factory) -> Deferred[str]:
    """Connect to server and receive its first line."""
    pump = connecting.meet(server)
    connection: ServerConnection = result_of(connecting.result)
    answer = receive(connection)
    pump.flush()  # and run the server's TLS writes, which wait for the next clock tick
    return answer


def test_every_certificate_of_the_ca_file_is_trusted(tmp_path: Path) -> None:
    reactor = ShutdownReactor()
    server, certificate_pem = tls_server("lab.example", reactor)
    ca_file = tmp_path / "lab.pem"
    ca_file.write_bytes(pem(self_signed("other.example")[0]) + certificate_pem)
    connecting = Connecting("--host", "lab.example", "--ca-file", str(ca_file), reactor=reactor)
    assert result_of(answer_through(connecting, server)) == (
        "Welcome to labcalc. What's your name?"
    )


@pytest.mark.parametrize("host", ["lab_server", "."])
def test_a_tls_host_name_that_no_certificate_could_name_is_one_clear_line(host: str) -> None:
    connecting = Connecting("--host", host, "--tls")
    assert failure_of(connecting.result, ClientError).message == (
        f"cannot resolve host {host}: not a valid host name"
    )


def test_a_server_whose_certificate_the_ca_file_vouches_for_is_trusted(tmp_path: Path) -> None:
    reactor = ShutdownReactor()
    server, certificate_pem = tls_server("lab.example", reactor)
    ca_file = tmp_path / "lab.pem"
    ca_file.write_bytes(certificate_pem)
    connecting = Connecting("--host", "lab.example", "--ca-file", str(ca_file), reactor=reactor)
    assert result_of(answer_through(connecting, server)) == (
        "Welcome to labcalc. What's your name?"
    )


def test_a_certificate_the_ca_file_does_not_vouch_for_is_a_tls_failure(tmp_path: Path) -> None:
    reactor = ShutdownReactor()
    server, _ = tls_server("lab.example", reactor)
    ca_file = tmp_path / "other.pem"
    ca_file.write_bytes(pem(self_signed("lab.example")[0]))
    connecting = Connecting("--host", "lab.example", "--ca-file", str(ca_file), reactor=reactor)
    refused = failure_of(answer_through(connecting, server), ClientError)
    assert refused.message == (
        "lost the connection to lab.example:43391: TLS failed: certificate verify failed"
    )


def refused_for_another_host(tmp_path: Path) -> ClientError:
    """What the client says of a trusted certificate that names another host."""
    reactor = ShutdownReactor()
    server, certificate_pem = tls_server("other.example", reactor)
    ca_file = tmp_path / "lab.pem"
    ca_file.write_bytes(certificate_pem)
    connecting = Connecting("--host", "lab.example", "--ca-file", str(ca_file), reactor=reactor)
    refused: ClientError = failure_of(answer_through(connecting, server), ClientError)
    return refused


def test_a_certificate_for_another_host_loses_the_connection(tmp_path: Path) -> None:
    refused = refused_for_another_host(tmp_path)
    assert refused.message.startswith("lost the connection to lab.example:43391: ")
    assert refused.status == 1


def test_a_certificate_for_another_host_is_a_tls_failure(tmp_path: Path) -> None:
    message = refused_for_another_host(tmp_path).message
    assert message.startswith("lost the connection to lab.example:43391: TLS failed: ")
    assert "Error(" not in message


# Ctrl-C: the reactor shuts down while the connection is open


def test_ctrl_c_says_farewell_and_hangs_up() -> None:
    server, reactor, transport = server_connection(farewell="q")
    reactor.begin_shutdown()
    assert transport.value() == b"q\r\n"
    assert transport.disconnecting


def test_ctrl_c_without_a_farewell_only_hangs_up() -> None:
    server, reactor, transport = server_connection()
    reactor.begin_shutdown()
    assert transport.value() == b""
    assert transport.disconnecting


def test_an_answer_awaited_at_ctrl_c_ends_in_interrupted_not_a_failure() -> None:
    server, reactor, _ = server_connection(farewell="q")
    answer = receive(server)
    reactor.begin_shutdown()
    server.protocol.connectionLost(Failure(error.ConnectionDone()))
    failure_of(answer, Interrupted)


def test_shutdown_waits_for_the_hang_up() -> None:
    server, reactor, _ = server_connection(farewell="q")
    stopped: list[None] = []
    reactor.addSystemEventTrigger("during", "shutdown", stopped.append, None)
    reactor.begin_shutdown()
    assert stopped == []
    server.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert stopped == [None]


def test_shutdown_waits_for_the_hang_up_only_so_long() -> None:
    server, reactor, _ = server_connection(farewell="q")
    stopped: list[None] = []
    reactor.addSystemEventTrigger("during", "shutdown", stopped.append, None)
    reactor.begin_shutdown()
    reactor.advance(FAREWELL_TIMEOUT)
    assert stopped == [None]


def test_after_close_ctrl_c_sends_nothing() -> None:
    server, reactor, transport = server_connection(farewell="q")
    closing = Deferred.fromCoroutine(server.close())
    server.protocol.connectionLost(Failure(error.ConnectionDone()))
    result_of(closing)
    transport.clear()
    reactor.begin_shutdown()
    assert transport.value() == b""


@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_closing_after_ctrl_c_ends_quietly() -> None:
    server, reactor, _ = server_connection(farewell="q")

    async def session() -> None:
        try:
            await server.receive()
        finally:
            await server.close()

    done = Deferred.fromCoroutine(session())
    reactor.begin_shutdown()
    server.protocol.connectionLost(Failure(error.ConnectionDone()))
    failure_of(done, Interrupted)


# InputLines


class ThreadCalls:
    """Stands in for the reactor: keeps what the reading thread hands over for the test to run."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[Callable[..., object], tuple[object, ...]]] = queue.Queue()

    def callFromThread(self, function: Callable[..., object], *args: object) -> None:
        self.calls.put((function, args))

    def next_line(self, lines: InputLines) -> str | None:
        """The next line of lines, running what the thread hands over until it comes."""
        line = Deferred.fromCoroutine(lines.next_line())
        while not line.called:
            function, args = self.calls.get(timeout=10)  # a deadline, should the thread hang
            function(*args)
        return result_of(line)  # type: ignore[no-any-return]


@pytest.fixture
def input_file(tmp_path: Path) -> Iterator[Callable[[bytes], int]]:
    """Open files holding the given bytes, as standard input redirected from a file."""
    opened: list[int] = []

    def open_with(data: bytes) -> int:
        path = tmp_path / f"input{len(opened)}.txt"
        path.write_bytes(data)
        opened.append(os.open(path, os.O_RDONLY))
        return opened[-1]

    yield open_with
    for fd in opened:
        os.close(fd)


ReadLines = Callable[[bytes], list[str | None]]


@pytest.fixture
def read_lines(input_file: Callable[[bytes], int]) -> ReadLines:
    """Every line InputLines reads from the given bytes, up to the None that ends them."""

    def read(data: bytes) -> list[str | None]:
        reactor = ThreadCalls()
        lines = InputLines(reactor, input_file(data))
        read: list[str | None] = [reactor.next_line(lines)]
        while read[-1] is not None:
            read.append(reactor.next_line(lines))
        return read

    return read


def test_input_lines_lose_their_lf(read_lines: ReadLines) -> None:
    assert read_lines(b"12 + 42\n4.5 / -6\n") == ["12 + 42", "4.5 / -6", None]


def test_input_lines_lose_their_crlf(read_lines: ReadLines) -> None:
    assert read_lines(b"12 + 42\r\nq\r\n") == ["12 + 42", "q", None]


def test_a_cr_inside_an_input_line_is_kept(read_lines: ReadLines) -> None:
    assert read_lines(b"a\rb\n") == ["a\rb", None]


def test_the_last_input_line_may_have_no_line_end(read_lines: ReadLines) -> None:
    assert read_lines(b"12 + 42\nq") == ["12 + 42", "q", None]


def test_empty_input_lines_are_empty_strings(read_lines: ReadLines) -> None:
    assert read_lines(b"\n\r\nq\n") == ["", "", "q", None]


def test_an_empty_input_ends_at_once(read_lines: ReadLines) -> None:
    assert read_lines(b"") == [None]


def test_the_end_of_the_input_stays_the_end(input_file: Callable[[bytes], int]) -> None:
    reactor = ThreadCalls()
    lines = InputLines(reactor, input_file(b"q\n"))
    read = [reactor.next_line(lines) for _ in range(4)]
    assert read == ["q", None, None, None]


def test_invalid_utf8_input_becomes_replacement_characters(read_lines: ReadLines) -> None:
    assert read_lines(b"caf\xc3\nq\n") == ["caf\ufffd", "q", None]


def test_an_input_line_across_two_reads_comes_whole(read_lines: ReadLines) -> None:
    first = b"1" * (READ_SIZE - 4)
    assert read_lines(first + b"\n12 + 42\n")[1:] == ["12 + 42", None]


def test_an_input_line_over_the_limit_comes_back_cut_and_marked(read_lines: ReadLines) -> None:
    line, end = read_lines(b"x" * (MAX_INPUT_LINE + 10) + b"\n")
    assert isinstance(line, LineTooLong)
    assert line == "x" * MAX_INPUT_LINE
    assert end is None


def test_a_line_many_reads_long_is_cut_to_the_limit(read_lines: ReadLines) -> None:
    line, end = read_lines(b"x" * (5 * READ_SIZE + 7) + b"\n")
    assert isinstance(line, LineTooLong)
    assert line == "x" * MAX_INPUT_LINE
    assert end is None


def test_the_line_after_a_too_long_one_is_intact(read_lines: ReadLines) -> None:
    too_long = b"x" * (3 * MAX_INPUT_LINE + 5) + b"\n"
    assert read_lines(too_long + b"12 + 42\n")[1:] == ["12 + 42", None]


def test_a_too_long_last_line_without_line_end_is_cut_and_ends_the_input(
    read_lines: ReadLines,
) -> None:
    line, end = read_lines(b"x" * (MAX_INPUT_LINE + 1))
    assert isinstance(line, LineTooLong)
    assert end is None


def test_an_input_line_at_the_limit_is_not_cut(read_lines: ReadLines) -> None:
    line, _ = read_lines(b"x" * MAX_INPUT_LINE + b"\n")
    assert not isinstance(line, LineTooLong)
    assert line == "x" * MAX_INPUT_LINE


def test_an_input_line_at_the_limit_is_not_cut_with_crlf_either(read_lines: ReadLines) -> None:
    line, _ = read_lines(b"x" * MAX_INPUT_LINE + b"\r\n")
    assert not isinstance(line, LineTooLong)
    assert line == "x" * MAX_INPUT_LINE


def test_an_input_line_at_the_limit_is_not_cut_when_a_read_ends_after_its_cr(
    read_lines: ReadLines,
) -> None:
    # The first read ends with the line's first x; the second with its CR.
    before = b"y" * (READ_SIZE - 2) + b"\n"
    line = read_lines(before + b"x" * MAX_INPUT_LINE + b"\r\n")[1]
    assert not isinstance(line, LineTooLong)


def test_an_unreadable_input_ends_like_an_ended_one(tmp_path: Path) -> None:
    directory = os.open(tmp_path, os.O_RDONLY)  # reading it fails with EISDIR
    try:
        reactor = ThreadCalls()
        assert reactor.next_line(InputLines(reactor, directory)) is None
    finally:
        os.close(directory)
