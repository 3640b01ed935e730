"""Running the benchmarks' generators and baselines from tests, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.processes import DEADLINE, ServerProcess, child_environment

ROOT = Path(__file__).parents[2]
BASELINE_LISTENING = r"^listening on (\d+)$"


def start_baseline(name: str) -> tuple[ServerProcess, int]:
    """Start benchmarks.baselines.NAME on a free port; return it and the port."""
    server = ServerProcess(
        [sys.executable, "-m", f"benchmarks.baselines.{name}", "--port", "0"], ROOT
    )
    return server, int(server.wait_for(BASELINE_LISTENING).group(1))


def generate(module: str, *arguments: str, timeout: float = DEADLINE + 10) -> (
    subprocess.CompletedProcess[str]
):
    """Run ``python -m benchmarks.MODULE arguments`` from the checkout, to its end."""
    return subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *arguments],
        cwd=ROOT,
        env=child_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def measured(generator: str, *arguments: str) -> dict[str, Any]:
    """Run a generator that must succeed, and return its one JSON line."""
    result = generate(generator, *arguments)
    assert (result.returncode, result.stderr) == (0, ""), result
    (line,) = result.stdout.splitlines()
    figures: dict[str, Any] = json.loads(line)
    assert "error" not in figures
    return figures


def assert_failed(result: subprocess.CompletedProcess[str], message: str) -> dict[str, Any]:
    """Check a run that failed: status 1, one error line on stderr, and the JSON saying it."""
    assert result.returncode == 1, result
    assert result.stderr.splitlines() == [f"error: {message}"], result.stderr
    (line,) = result.stdout.splitlines()
    figures: dict[str, Any] = json.loads(line)
    assert figures["error"] == message
    return figures
