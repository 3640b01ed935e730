"""The calculator's language: the examples and refusals of the wire contract, and its properties."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labproto.calc.parser import (
    BAD_FORMAT,
    DIVISION_BY_ZERO,
    OUT_OF_RANGE,
    Expression,
    answer,
    answer_in_full,
    format_result,
    number_too_long,
    parse_expression,
)


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("15 + 35", "50.0"),
        ("3.24 - 45", "-41.76"),
        ("0.1 + 0.2", "0.3"),
        ("4.5 / -6", "-0.75"),
        ("12 + 42", "54.0"),
        ("1e20 * 1", "1e+20"),
        ("-0.0 * 1", "-0.0"),
    ],
)
def test_the_examples_of_the_wire_contract(expression: str, result: str) -> None:
    assert answer(expression) == result


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("2+3", "5.0"),
        ("12+42", "54.0"),
        ("12 +42", "54.0"),
        ("12+ 42", "54.0"),
        ("4.5/-6", "-0.75"),
        ("3.24-45", "-41.76"),
        ("-2*-3", "6.0"),
        ("+7--1", "8.0"),
        ("2-+3", "-1.0"),
        ("1e3-2", "998.0"),
        ("1e-3+1", "1.001"),
        ("1E+2*2", "200.0"),
        ("7%2", "1.0"),
        ("\t2+3 ", "5.0"),
    ],
)
def test_white_space_between_the_words_is_optional(expression: str, result: str) -> None:
    assert answer(expression) == answer_in_full(expression) == result


def test_minus_zero_is_formatted_as_minus_zero_point_zero() -> None:
    assert format_result(-0.0) == "-0.0"


def test_results_keep_at_most_15_significant_digits() -> None:
    assert answer("1 / 3") == "0.333333333333333"


def test_a_whole_number_too_big_for_15_digits_is_formatted_with_an_exponent() -> None:
    assert answer("1e15 * 1") == "1e+15"


def test_the_largest_15_digit_whole_number_keeps_its_point_zero() -> None:
    assert answer("999999999999999 + 0") == "999999999999999.0"


@pytest.mark.parametrize(
    ("expression", "result"),
    [("7 % 3", "1.0"), ("-7 % 3", "2.0"), ("7.5 % -2", "-0.5")],
)
def test_modulo_takes_the_sign_of_the_divisor_as_in_python(expression: str, result: str) -> None:
    assert answer(expression) == result


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", 12.0),
        ("-4.5", -4.5),
        ("3.24", 3.24),
        ("+7", 7.0),
        ("1e3", 1000.0),
        ("1E3", 1000.0),
        ("1e-3", 0.001),
        ("1e+3", 1000.0),
        (".5", 0.5),
        ("3.", 3.0),
        ("007", 7.0),
    ],
)
def test_every_form_of_decimal_number_is_accepted(text: str, value: float) -> None:
    assert parse_expression(f"{text} + 0") == Expression(value, "+", 0.0)


def test_the_words_may_be_separated_by_several_spaces_and_tabs() -> None:
    assert parse_expression(" \t12 \t *\t\t-4.5\t ") == Expression(12.0, "*", -4.5)


def test_a_64_digit_number_is_accepted() -> None:
    assert answer("9" * 64 + " + 0") == "1e+64"


def test_a_64_character_number_with_a_sign_is_accepted() -> None:
    assert answer("1 + -" + "0" * 62 + "5") == "-4.0"


@pytest.mark.parametrize(
    "expression",
    ["1" * 65 + " + 1", "1 + " + "1" * 65, "1 + -" + "1" * 64, "0." + "0" * 62 + "1 * 1"],
)
def test_a_65_character_number_is_refused_as_too_long(expression: str) -> None:
    too_long = [word for word in expression.split() if len(word) == 65]
    assert answer(expression) == number_too_long(too_long[0])


def test_the_number_too_long_line_quotes_the_start_of_the_number() -> None:
    assert answer("1234567890" * 7 + " + 1") == (
        "ERROR number too long: 1234567890123456... (at most 64 characters)"
    )


def test_a_bad_format_wins_over_a_number_too_long() -> None:
    assert answer("1" * 65 + " + abc") == BAD_FORMAT


@pytest.mark.parametrize("expression", ["1e999 * 1", "1e308 * 10", "-1e308 - 1e308", "1 * -1e999"])
def test_a_result_outside_the_float_range_is_refused(expression: str) -> None:
    assert answer(expression) == "ERROR result out of range"


def test_a_division_that_overflows_is_refused_as_out_of_range() -> None:
    assert answer("1e308 / 1e-10") == OUT_OF_RANGE


def test_a_result_that_underflows_is_zero() -> None:
    assert answer("1e-400 * 1") == "0.0"


@pytest.mark.parametrize("expression", ["1 / 0", "5 % 0", "0 / 0", "1 / -0.0", "1 / 0e5"])
def test_a_division_by_zero_is_refused(expression: str) -> None:
    assert answer(expression) == "ERROR division by zero"


@pytest.mark.parametrize(
    "expression",
    [
        "nan + 1",
        "1 + NaN",
        "inf * 2",
        "-inf - 1",
        "infinity + 1",
        "0x10 + 1",
        "1 + 0x10",
        "1_000 + 1",
        "5 // 2",
        "5 ^ 2",
        "5 ** 2",
        "5 x 2",
        "1 + 2 + 3",
        "1 + 2 3",
        "12 +",
        "+ 12",
        "12",
        "",
        "   ",
        "12 + ",
        "12+",
        "+12",
        "1e+5",
        "1 -- -2",
        "1+-+2",
        "2 * * 3",
        "0x1f+1",
        "1_0+1",
        "nan+1",
        "1+inf",
        "1 2",
        "1e + 1",
        "e3 + 1",
        "1.2.3 + 1",
        "- + 1",
        ". + 1",
        "\u0661\u0662 + 1",
        "12 + 42\n",
        "1\x1c+\x1c2",
    ],
)
def test_anything_but_number_op_number_is_refused_with_the_example(expression: str) -> None:
    assert answer(expression) == "ERROR expected NUMBER OP NUMBER, e.g. 12 + 42"


PYTHON: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: a % b,
}
WRITTEN: list[Callable[[float], str]] = [repr, lambda x: f"{x:.17g}", lambda x: f"{x:.17e}"]
FINITE = st.floats(allow_nan=False, allow_infinity=False)


def python_answer(a: float, op: str, b: float) -> str:
    """What the contract says the answer is: Python's own result, formatted, or the ERROR."""
    try:
        result = PYTHON[op](a, b)
    except ZeroDivisionError:
        return DIVISION_BY_ZERO
    # An answer must read back as a float: the few largest floats would not.
    if math.isinf(result) or math.isinf(float(format_result(result))):
        return OUT_OF_RANGE
    return format_result(result)


@given(a=FINITE, op=st.sampled_from(sorted(PYTHON)), b=FINITE, write=st.sampled_from(WRITTEN))
def test_any_finite_floats_are_calculated_as_python_does(
    a: float, op: str, b: float, write: Callable[[float], str]
) -> None:
    assert answer(f"{write(a)} {op} {write(b)}") == python_answer(a, op, b)


def is_formatted_number(text: str) -> bool:
    try:
        number = float(text)
    except ValueError:
        return False
    return math.isfinite(number) and format_result(number) == text


def assert_is_an_answer(result: str) -> None:
    assert isinstance(result, str)
    assert "\n" not in result and "\r" not in result
    assert result.startswith("ERROR ") or is_formatted_number(result), result


@given(st.text())
def test_any_text_gets_a_number_or_an_error_line(text: str) -> None:
    assert_is_an_answer(answer(text))


WORD = st.text(alphabet="0123456789.eE+-xnaif_ ", max_size=70)


@given(WORD, st.sampled_from(["+", "-", "*", "/", "%", "//", "^", "x", ""]), WORD)
def test_any_number_like_words_get_a_number_or_an_error_line(
    left: str, op: str, right: str
) -> None:
    assert_is_an_answer(answer(f"{left} {op} {right}"))


# The largest floats round up, at 15 digits, past the largest float: see
# test_a_result_whose_answer_would_read_back_as_infinity_is_out_of_range.
BELOW_THE_TOP = st.floats(min_value=-1.797693134862315e308, max_value=1.797693134862315e308)


@given(BELOW_THE_TOP)
def test_a_formatted_result_reads_back_within_15_significant_digits(number: float) -> None:
    text = format_result(number)
    assert f"{float(text):.15g}" == f"{number:.15g}"
    assert math.isclose(float(text), number, rel_tol=1e-14)


@pytest.mark.parametrize("top", ["1.7976931348623157e308", "1.7976931348623151e308"])
def test_a_result_whose_answer_would_read_back_as_infinity_is_out_of_range(top: str) -> None:
    # %.15g rounds these up to 1.79769313486232e+308, which no float holds.
    assert answer(f"{top} * 1") == OUT_OF_RANGE


def test_the_largest_result_that_reads_back_is_answered() -> None:
    assert answer("1.797693134862315e308 * 1") == "1.79769313486231e+308"


@given(FINITE)
def test_a_formatted_result_always_shows_it_is_a_float(number: float) -> None:
    text = format_result(number)
    assert any(mark in text for mark in ".en"), text


# answer()'s fast path against the general path (answer_in_full), which the
# tests above hold to the wire contract.


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("1 / 1e999", OUT_OF_RANGE),  # a finite result from a number no float holds
        ("1e999 * 0", OUT_OF_RANGE),
        ("1e999 - 1e999", OUT_OF_RANGE),
        ("1e308 * 1", "1e+308"),  # results from 1e308 on take the general path
        ("-1e308 - 0", "-1e+308"),
        ("9.99999999999999e307 * 1", "9.99999999999999e+307"),
        ("0 / 0", DIVISION_BY_ZERO),
        ("5 % -0.0", DIVISION_BY_ZERO),
        ("1" * 64 + " + 0", "1.11111111111111e+63"),
        ("1" * 65 + " + 0", number_too_long("1" * 65)),
        ("\t 12\t+\t 42 \t", "54.0"),
    ],
)
def test_answers_at_the_edges_of_the_fast_path(expression: str, result: str) -> None:
    assert answer(expression) == answer_in_full(expression) == result


SEPARATORS = st.sampled_from([" ", "  ", "\t", " \t ", "", "\u00a0", "\x1c", "\n"])
EDGES = st.sampled_from(["", " ", "\t", "\n", "\u3000"])
# Numbers near the fast path's bounds: the float range, 64 characters, zero.
NUMBERS = st.one_of(
    st.floats(allow_nan=False).map(repr),
    st.floats(min_value=1e307, max_value=1.8e308).map(lambda x: f"{x:.17g}"),
    st.integers(min_value=0, max_value=10**70).map(str),
    st.sampled_from(["0", "-0.0", "0e5", ".0", "1e999", "-1e999", "1e-400", "nan", "1_0"]),
    WORD,
)


@given(
    EDGES,
    NUMBERS,
    SEPARATORS,
    st.sampled_from(["+", "-", "*", "/", "%", "//", "^", "x"]),
    SEPARATORS,
    NUMBERS,
    EDGES,
)
def test_the_fast_path_answers_any_expression_as_the_general_path(
    before: str, left: str, gap: str, op: str, gap2: str, right: str, after: str
) -> None:
    text = f"{before}{left}{gap}{op}{gap2}{right}{after}"
    assert answer(text) == answer_in_full(text)


@given(st.text())
def test_the_fast_path_answers_any_text_as_the_general_path(text: str) -> None:
    assert answer(text) == answer_in_full(text)


@pytest.mark.parametrize(
    ("number", "text"), [(math.inf, "inf"), (-math.inf, "-inf"), (math.nan, "nan")]
)
def test_a_result_with_no_digits_gets_no_point_zero(number: float, text: str) -> None:
    # No answer shows these (calculate() refuses them), but the rule covers every float.
    assert format_result(number) == text
