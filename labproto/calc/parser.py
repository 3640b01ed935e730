"""The calculator's language: parsing ``NUMBER OP NUMBER`` and formatting its result.

Pure functions, shared by the server and the client (which checks a line
before it sends it). Nothing here uses ``eval``, and ``float()`` only ever
sees text that the number grammar below has accepted, so ``nan``, ``inf``,
``0x10`` and ``1_000`` (which ``float()`` or ``int()`` would take) are refused.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_NUMBER_LENGTH = 64
EXAMPLE = "12 + 42"

# A decimal with optional sign, fraction and exponent: 12, -4.5, .5, 3., +7, 1e3.
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"

OPERATIONS: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
}

# NUMBER OP NUMBER, with spaces or tabs around each word or none (12+42,
# 3.24-45, 4.5/-6), and nothing else: Python's str.split() would also split
# on characters such as U+001C that nobody types as a separator. The first
# operator after the first number is the operator, and a + or - right after
# it is the second number's sign: a number holds a + or - only at its start
# or after its e, so the text splits into the three words one way at most.
_EXPRESSION = re.compile(
    rf"[ \t]*({_NUMBER})[ \t]*([{re.escape(''.join(OPERATIONS))}])[ \t]*({_NUMBER})[ \t]*"
)
# Any result strictly within these bounds is finite and still reads back as a
# finite float once rounded to 15 significant digits (calculate()'s checks).
_SAFE_MAGNITUDE = 1e308


class CalculationError(Exception):
    """A line the calculator refuses, with the ERROR line that tells the client why."""

    def __init__(self, answer: str) -> None:
        super().__init__(answer)
        self.answer = answer


BAD_FORMAT = f"ERROR expected NUMBER OP NUMBER, e.g. {EXAMPLE}"
DIVISION_BY_ZERO = "ERROR division by zero"
OUT_OF_RANGE = "ERROR result out of range"


def number_too_long(word: str) -> str:
    """The refusal of a number longer than MAX_NUMBER_LENGTH characters."""
    return f"ERROR number too long: {word[:16]}... (at most {MAX_NUMBER_LENGTH} characters)"


@dataclass(frozen=True)
class Expression:
    """One calculation the client asked for: two numbers and the operator between them."""

    left: float
    operator: str
    right: float


def split_expression(text: str) -> tuple[str, str, str]:
    """Check that text has the form ``NUMBER OP NUMBER`` and return its three words.

    Raises CalculationError for a text of any other form. The client uses
    this to refuse such a line before sending it.
    """
    words = _EXPRESSION.fullmatch(text)
    if words is None:
        raise CalculationError(BAD_FORMAT)
    left, op, right = words.groups()
    # Both numbers have their form by now, so "12 + abc" gets the same
    # answer however long 12 is.
    for word in (left, right):
        if len(word) > MAX_NUMBER_LENGTH:
            raise CalculationError(number_too_long(word))
    return left, op, right


def _number_value(word: str) -> float:
    # word has matched _NUMBER, so float() takes it as the decimal it reads as.
    number = float(word)
    if math.isinf(number):
        # 1e999 is a NUMBER by the grammar, but no float holds it, nor any
        # result computed from it.
        raise CalculationError(OUT_OF_RANGE)
    return number


def parse_expression(text: str) -> Expression:
    """Parse ``NUMBER OP NUMBER`` (spaces or tabs between optional), or raise CalculationError."""
    left, op, right = split_expression(text)
    return Expression(_number_value(left), op, _number_value(right))


def calculate(expression: Expression) -> float:
    """The result of expression, or CalculationError when it has none a float can hold."""
    try:
        result = OPERATIONS[expression.operator](expression.left, expression.right)
    except ZeroDivisionError:
        raise CalculationError(DIVISION_BY_ZERO) from None
    # The largest floats round up, at 15 digits, to text that no float holds
    # (1.79769313486232e+308): they are out of the range an answer can show.
    if math.isinf(result) or math.isinf(float(format_result(result))):
        raise CalculationError(OUT_OF_RANGE)
    return result


def format_result(number: float) -> str:
    """Format a result as the lab does: at most 15 significant digits, whole numbers with ``.0``."""
    text = f"{number:.15g}"
    # A point, an exponent, or the n of nan and inf: it shows it is no integer.
    if "." not in text and "e" not in text and "n" not in text:
        text += ".0"
    return text


def answer(text: str) -> str:
    """The calculator's answer to one line: its result, or the ERROR line that refuses it.

    This is answer_in_full(text), made faster for the lines a server gets
    most: a fast path, with one regex and no Expression, answers a
    well-formed expression whose numbers are finite and short enough and
    whose result is finite and short of the float range (what calculate()
    would accept); every other line, and so every ERROR, goes to
    answer_in_full, which words the refusal. The tests hold the two to the
    same answers on arbitrary text.
    """
    match = _EXPRESSION.fullmatch(text)
    if match is not None:
        left, op, right = match.groups()
        if len(left) <= MAX_NUMBER_LENGTH and len(right) <= MAX_NUMBER_LENGTH:
            a, b = float(left), float(right)
            if not (math.isinf(a) or math.isinf(b)):
                try:
                    result = OPERATIONS[op](a, b)
                except ZeroDivisionError:
                    pass
                else:
                    if -_SAFE_MAGNITUDE < result < _SAFE_MAGNITUDE:
                        return format_result(result)
    return answer_in_full(text)


def answer_in_full(text: str) -> str:
    """The answer to one line by the general path: each rule checked in turn, refusals worded."""
    try:
        return format_result(calculate(parse_expression(text)))
    except CalculationError as e:
        return e.answer
