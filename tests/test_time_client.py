"""The time client's rounds, tokens, timeouts and late answers, on a task.Clock."""

from __future__ import annotations

import io

from support.deferreds import failure_of, result_of
from support.fakes import DatagramPort
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from labproto.clients.common import Console
from labproto.clients.time import TimeClientProtocol, ask_rounds
from labproto.clients.udp import ServerUnreachable

SERVER = ("127.0.0.1", 43388)


class ScriptedRandom:
    """Chooses the commands it is given, in turn, and records each delay range asked for."""

    def __init__(self, *commands: str, delay: float = 1.5) -> None:
        self.commands = list(commands)
        self.delay = delay
        self.delay_ranges: list[tuple[float, float]] = []

    def choice(self, options: tuple[str, ...]) -> str:
        command = self.commands.pop(0)
        assert command in options
        return command

    def uniform(self, low: float, high: float) -> float:
        self.delay_ranges.append((low, high))
        return self.delay


class Session:
    """A time client on a fake port, running ask_rounds on a Clock."""

    def __init__(self, *commands: str, rounds: int | None, timeout: float = 1.0) -> None:
        self.clock = Clock()
        self.protocol = TimeClientProtocol(self.clock)
        self.port = DatagramPort().attach(self.protocol)
        self.out, self.err = io.StringIO(), io.StringIO()
        self.random = ScriptedRandom(*commands)
        self.done = Deferred.fromCoroutine(
            ask_rounds(
                self.clock,
                self.protocol,
                Console(self.out, self.err),
                self.random,  # type: ignore[arg-type]
                rounds=rounds,
                timeout=timeout,
                min_delay=1.0,
                max_delay=2.0,
            )
        )

    def answer(self, datagram: bytes) -> None:
        self.protocol.datagramReceived(datagram, SERVER)


def test_each_request_carries_a_fresh_token_and_is_padded_to_64_bytes() -> None:
    session = Session("SEND_DATE", "SEND_TIME", rounds=2)
    session.answer(b"1 02/02/23")
    session.clock.advance(1.5)
    assert session.port.sent() == [b"SEND_DATE 1".ljust(64), b"SEND_TIME 2".ljust(64)]


def test_answers_are_printed_without_their_token() -> None:
    session = Session("SEND_TIME", rounds=1)
    session.answer(b"1 04:06:21")
    assert result_of(session.done) == 1
    assert session.out.getvalue() == (
        "Client received MESSAGE = 04:06:21 from ADDR = ('127.0.0.1', 43388)\n"
    )


def test_a_round_without_an_answer_says_so_and_the_loop_goes_on() -> None:
    session = Session("SEND_TIME", "SEND_DATE", rounds=2)
    session.clock.advance(1.0)
    assert session.err.getvalue() == "no reply to SEND_TIME (timed out)\n"
    session.clock.advance(1.5)
    session.answer(b"2 02/02/23")
    assert result_of(session.done) == 1
    assert "MESSAGE = 02/02/23" in session.out.getvalue()


def test_a_late_answer_is_never_taken_for_the_current_one() -> None:
    session = Session("SEND_TIME", "SEND_DATE", rounds=2)
    session.clock.advance(1.0)  # round 1 times out
    session.clock.advance(1.5)  # round 2 is sent
    session.answer(b"1 04:06:21")  # round 1's answer, late
    assert session.out.getvalue() == ""
    session.answer(b"2 02/02/23")
    assert session.out.getvalue() == (
        "Client received MESSAGE = 02/02/23 from ADDR = ('127.0.0.1', 43388)\n"
    )


def test_an_answer_after_its_timeout_is_dropped() -> None:
    session = Session("SEND_TIME", "SEND_TIME", rounds=2)
    session.clock.advance(1.0)
    session.answer(b"1 04:06:21")
    assert session.out.getvalue() == ""


def test_an_error_answer_is_printed_as_received() -> None:
    session = Session("SEND_DATE", rounds=1)
    session.answer(b"ERROR")
    assert result_of(session.done) == 1
    assert session.out.getvalue().startswith("Client received MESSAGE = ERROR from")


def test_rounds_pause_by_a_random_delay_and_not_after_the_last() -> None:
    session = Session("SEND_DATE", "SEND_TIME", rounds=2)
    session.answer(b"1 02/02/23")
    session.clock.advance(1.49)
    assert len(session.port.sent()) == 1
    session.clock.advance(0.01)
    assert len(session.port.sent()) == 2
    session.answer(b"2 04:06:21")
    assert result_of(session.done) == 2
    assert session.random.delay_ranges == [(1.0, 2.0)]
    assert session.clock.getDelayedCalls() == []


def test_without_a_count_the_rounds_go_on() -> None:
    session = Session(*["SEND_TIME"] * 50, rounds=None)
    for number in range(1, 50):
        session.answer(f"{number} 04:06:21".encode())
        session.clock.advance(1.5)
    assert len(session.port.sent()) == 50
    assert not session.done.called
    session.done.cancel()
    session.done.addErrback(lambda _: None)


def test_an_unreachable_server_ends_the_rounds() -> None:
    session = Session("SEND_TIME", rounds=3)
    session.port.lose_to_socket_error()
    assert failure_of(session.done, ServerUnreachable).reason == "connection refused"
    assert session.clock.getDelayedCalls() == []


def test_an_error_answer_after_a_timeout_is_not_taken_for_the_current_one() -> None:
    session = Session("SEND_TIME", "SEND_DATE", rounds=2)
    session.clock.advance(1.0)  # round 1 times out; its ERROR may still come
    session.clock.advance(1.5)
    session.answer(b"ERROR")
    assert session.out.getvalue() == ""
    session.answer(b"2 02/02/23")
    assert "MESSAGE = 02/02/23" in session.out.getvalue()


def test_once_the_late_answer_came_an_error_is_the_current_answer_again() -> None:
    session = Session("SEND_TIME", "SEND_DATE", rounds=2)
    session.clock.advance(1.0)
    session.clock.advance(1.5)
    session.answer(b"1 04:06:21")  # round 1's late answer: nothing else is due
    session.answer(b"ERROR")
    assert result_of(session.done) == 1
    assert "MESSAGE = ERROR" in session.out.getvalue()


def test_timed_out_requests_are_remembered_only_so_long() -> None:
    limit = TimeClientProtocol.LATE_MEMORY
    session = Session(*["SEND_TIME"] * (limit + 2), rounds=limit + 2)
    for _ in range(limit + 1):
        session.clock.advance(1.0)
        session.clock.advance(1.5)
    assert len(session.protocol._timed_out) == limit


def test_control_characters_in_an_answer_are_printed_escaped() -> None:
    session = Session("SEND_TIME", rounds=1)
    session.answer(b"1 \x1b[2J\xff")
    assert "MESSAGE = \\x1b[2J\ufffd from" in session.out.getvalue()


def test_a_reactor_shutdown_while_waiting_is_not_a_failure() -> None:
    session = Session("SEND_TIME", rounds=3)
    session.port.stopListening()  # Ctrl-C: the reactor closes every port
    assert not session.done.called
    session.done.cancel()
    session.done.addErrback(lambda _: None)
