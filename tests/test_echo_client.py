"""The echo client's resends, timeouts and failures, on a task.Clock: no real waiting."""

from __future__ import annotations

import errno

from support.deferreds import failure_of, result_of
from support.fakes import DatagramPort
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from labproto.clients.echo import EchoClientProtocol, NoReply, retry_notice
from labproto.clients.udp import ServerUnreachable

SERVER = ("127.0.0.1", 43387)


def client(retries: int = 3, timeout: float = 1.0, retrying=lambda *told: None):
    clock = Clock()
    protocol = EchoClientProtocol(clock, b"hello", timeout, retries, retrying)
    port = DatagramPort().attach(protocol)
    return clock, protocol, port


def test_the_message_is_sent_at_once() -> None:
    _, protocol, port = client()
    protocol.start()
    assert port.sent() == [b"hello"]


def test_resends_wait_twice_as_long_each_time() -> None:
    clock, protocol, port = client()
    protocol.start()
    sends_at = {}
    for second in range(1, 16):
        clock.advance(1)
        sends_at[second] = len(port.sent())
    # Sent at 0, then after waits of 1, 2 and 4 s: at 1, 3 and 7 s.
    assert [sends_at[s] for s in (1, 2, 3, 6, 7, 14)] == [2, 2, 3, 3, 4, 4]


def test_gives_up_after_retries_plus_one_tries_and_the_last_wait() -> None:
    clock, protocol, port = client()
    result = protocol.start()
    clock.pump([1] * 14)
    assert not result.called
    clock.advance(1)  # the 8 s wait after the fourth try ends at 15 s
    assert failure_of(result, NoReply).tries == 4
    assert len(port.sent()) == 4


def test_timeout_and_retries_are_configurable() -> None:
    clock, protocol, port = client(retries=0, timeout=0.25)
    result = protocol.start()
    clock.advance(0.25)
    assert failure_of(result, NoReply).tries == 1
    assert len(port.sent()) == 1


def test_a_reply_ends_the_resending() -> None:
    clock, protocol, port = client()
    result = protocol.start()
    clock.advance(1)
    protocol.datagramReceived(b"Ok", SERVER)
    assert result_of(result) == (b"Ok", SERVER)
    clock.advance(60)
    assert len(port.sent()) == 2
    assert clock.getDelayedCalls() == []


def test_a_second_late_reply_is_ignored() -> None:
    _, protocol, _ = client()
    result = protocol.start()
    protocol.datagramReceived(b"Ok", SERVER)
    protocol.datagramReceived(b"Ok again", SERVER)
    assert result_of(result) == (b"Ok", SERVER)


def test_connection_refused_fails_at_once() -> None:
    clock, protocol, _ = client()
    result = protocol.start()
    protocol.connectionRefused()
    assert clock.getDelayedCalls() == []
    assert failure_of(result, ServerUnreachable).reason == "connection refused"


def test_a_port_closed_by_an_icmp_error_fails_with_that_error() -> None:
    clock, protocol, port = client()
    result = protocol.start()
    port.lose_to_socket_error(errno.EHOSTUNREACH)
    assert clock.getDelayedCalls() == []
    assert failure_of(result, ServerUnreachable).reason == "no route to host"


def test_a_send_error_fails_at_once() -> None:
    clock, protocol, port = client()
    port.send_error = OSError(errno.ENETUNREACH, "Network is unreachable")
    result = protocol.start()
    assert clock.getDelayedCalls() == []
    assert failure_of(result, ServerUnreachable).reason == "network is unreachable"


def test_closing_on_purpose_is_not_a_failure() -> None:
    _, protocol, port = client()
    result = protocol.start()
    protocol.datagramReceived(b"Ok", SERVER)
    result_of(Deferred.fromCoroutine(protocol.close()))
    assert result_of(result) == (b"Ok", SERVER)
    assert port.protocol.transport is None


def test_each_resend_is_told_with_its_number_and_wait_as_it_goes() -> None:
    told: list[tuple[float, str]] = []
    clock, protocol, port = client(
        retrying=lambda *retry: told.append((clock.seconds(), retry_notice(*retry)))
    )
    protocol.start()
    clock.pump([1] * 15)
    assert told == [
        (1, "no reply yet, retrying in 2 s (2/4)"),
        (3, "no reply yet, retrying in 4 s (3/4)"),
        (7, "no reply yet, retrying in 8 s (4/4)"),
    ]


def test_an_answered_message_tells_no_resend() -> None:
    told: list[tuple[int, int, float]] = []
    clock, protocol, _ = client(retrying=lambda *retry: told.append(retry))
    protocol.start()
    protocol.datagramReceived(b"Ok", SERVER)
    clock.advance(60)
    assert told == []
