"""Argument types and options that several ``labproto`` subcommands share."""

from __future__ import annotations

import argparse
from typing import NoReturn

from labproto.clients.common import EXIT_USAGE


class UsageParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on standard error, status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _number(text: str, kind: type[int] | type[float], what: str) -> float:
    try:
        number = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return number


def positive_float(text: str) -> float:
    """A number of seconds greater than zero."""
    number = _number(text, float, "a number greater than 0")
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number greater than 0")
    return number


def non_negative_float(text: str) -> float:
    """A number of seconds, zero or more."""
    number = _number(text, float, "a number of 0 or more")
    if number < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of 0 or more")
    return number


def count_from_zero(text: str) -> int:
    """A whole number, zero or more."""
    number = int(_number(text, int, "a whole number of 0 or more"))
    if number < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return number


def count_from_one(text: str) -> int:
    """A whole number, one or more."""
    number = int(_number(text, int, "a whole number of 1 or more"))
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return number


def port_number(text: str) -> int:
    """A server's port number, 1 to 65535."""
    number = int(_number(text, int, "a port number from 1 to 65535"))
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number from 1 to 65535")
    return number


def add_server_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    """Add --host and --port, the two options by which every client finds its server."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the server's name or address; another computer's works too (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=default_port,
        help=f"the server's port (default: {default_port})",
    )
