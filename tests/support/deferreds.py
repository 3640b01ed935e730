"""Reading the outcome of a Deferred that should already have fired, as trial's helpers do."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure


def result_of(deferred: Deferred[Any]) -> Any:
    """The result deferred has already succeeded with."""
    outcome: list[Any] = []
    deferred.addBoth(outcome.append)
    assert outcome, "the Deferred has not fired"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


def failure_of(deferred: Deferred[Any], kind: type[BaseException]) -> Any:
    """The exception, of type kind, that deferred has already failed with."""
    outcome: list[Any] = []
    deferred.addBoth(outcome.append)
    assert outcome, "the Deferred has not fired"
    assert isinstance(outcome[0], Failure), f"the Deferred succeeded with {outcome[0]!r}"
    assert outcome[0].check(kind), f"the Deferred failed with {outcome[0]!r}"
    return outcome[0].value

