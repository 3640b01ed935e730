"""Argument types and options that several ``labproto`` subcommands share."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import NoReturn, TypeVar

from labproto.clients.common import EXIT_USAGE
from labproto.text import printable

_Number = TypeVar("_Number", int, float)


class UsageParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on standard error, status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


# Plain decimal digits only: int() and float() would also take "+5", "1_000",
# "1e3", "nan" and "inf", none of which a user means for a port or a delay.
_WHOLE = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def _number_type(
    pattern: re.Pattern[str],
    convert: Callable[[str], _Number],
    in_range: Callable[[_Number], bool],
    what: str,
) -> Callable[[str], _Number]:
    """An argparse type accepting text that matches pattern and converts to a number in range."""

    def parse(text: str) -> _Number:
        if pattern.fullmatch(text):
            number = convert(text)
            if in_range(number):
                return number
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")

    return parse


positive_float = _number_type(_DECIMAL, float, lambda n: n > 0, "a number greater than 0")
non_negative_float = _number_type(_DECIMAL, float, lambda n: n >= 0, "a number of 0 or more")
count_from_zero = _number_type(_WHOLE, int, lambda n: n >= 0, "a whole number of 0 or more")
count_from_one = _number_type(_WHOLE, int, lambda n: n >= 1, "a whole number of 1 or more")
port_number = _number_type(
    _WHOLE, int, lambda n: 1 <= n <= 65535, "a port number from 1 to 65535"
)


def host_name(text: str) -> str:
    """A host name or address: not empty, no white space."""
    if not text or any(char.isspace() for char in text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a host name or address")
    return text


def add_server_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    """Add --host and --port, the two options by which every client finds its server."""
    parser.add_argument(
        "--host",
        type=host_name,
        default="127.0.0.1",
        help="the server's name or address; another computer's works too (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=default_port,
        help=f"the server's port (default: {default_port})",
    )


def name_type(parse_name: Callable[[str], str | None], rule: str) -> Callable[[str], str]:
    """An argparse type for --name: what parse_name accepts, or a usage error that says rule."""

    def parse(text: str) -> str:
        name = parse_name(text)
        if name is None:
            raise argparse.ArgumentTypeError(f"{printable(text)!r} is not a name: {rule}")
        return name

    return parse
