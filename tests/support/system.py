"""The system programs some tests use, and what a test does when one is missing.

Run by hand, a test whose program is missing skips and says why. CI sets
LABPROTO_REQUIRE_SYSTEM_TESTS=1 (in .ci/run), after tests/run.sh has
installed the programs as root: there a missing one fails the test instead,
so that a CI run never goes green with the two-host and capture tests
quietly skipped.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from typing import NoReturn

import pytest

from support.processes import DEADLINE

REQUIRED = "LABPROTO_REQUIRE_SYSTEM_TESTS"


def missing(reason: str) -> NoReturn:
    """Skip the test for want of a system part, or fail it where CI requires the part."""
    if os.environ.get(REQUIRED) == "1":
        pytest.fail(f"{reason}; {REQUIRED}=1 requires it", pytrace=False)
    pytest.skip(reason)


@functools.cache
def _openbsd_nc() -> str | None:
    path = shutil.which("nc")
    if path is None:
        return None
    usage = subprocess.run([path, "-h"], capture_output=True, text=True, check=False)
    # -N (shut down the sending side at the end of input) is OpenBSD netcat's.
    if not re.search(r"^\s*-N\s", usage.stdout + usage.stderr, re.MULTILINE):
        return None
    return path


def openbsd_nc() -> str:
    """The path of OpenBSD netcat, whose -N the docs use; skips (or fails) the test without it."""
    path = _openbsd_nc()
    if path is None:
        missing("OpenBSD netcat (nc with -N) is not installed: apt-get install netcat-openbsd")
    return path


def nc_lines(port: int, typed: str) -> list[str]:
    """``printf TYPED | nc -N 127.0.0.1 PORT``: the lines nc prints, without their CRs."""
    result = subprocess.run(
        [openbsd_nc(), "-N", "127.0.0.1", str(port)],
        input=typed,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, ""), result
    return [line.rstrip("\r") for line in result.stdout.splitlines()]


def ss() -> str:
    """The path of iproute2's ss; skips (or fails) the test without it."""
    path = shutil.which("ss") or shutil.which("ss", path="/usr/sbin:/sbin")
    if path is None:
        missing("ss is not installed: apt-get install iproute2")
    return path


def tshark() -> str:
    """The path of tshark; skips (or fails) the test without it."""
    path = shutil.which("tshark")
    if path is None:
        missing("tshark is not installed: apt-get install tshark")
    return path
