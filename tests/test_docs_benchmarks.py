"""docs/benchmarks.rst: the results it shows come with their machine and command, and the
command it gives is the README's."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parents[1]
PAGE = (ROOT / "docs" / "benchmarks.rst").read_text()
SUMMARY = (ROOT / "docs" / "benchmarks" / "summary.txt").read_text()
COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -e '.[bench]' && .venv/bin/python -m benchmarks"
)


def test_the_page_and_the_readme_give_the_same_command() -> None:
    assert f"    {COMMAND}\n" in PAGE
    assert f"    {COMMAND}\n" in (ROOT / "README.rst").read_text()


def test_the_results_name_their_machine_command_and_method() -> None:
    lines = SUMMARY.splitlines()
    assert lines[0].startswith("labproto benchmarks, ")
    assert lines[1].startswith("machine: ") and "2 cores" in lines[1]
    assert lines[2] == "command: python -m benchmarks"
    assert lines[3] == (
        "5 interleaved rounds, 2 s of load each, server on core 0, generator on core 1"
    )


def test_the_results_shown_lost_nothing_and_met_every_target_as_the_page_says() -> None:
    assert "Lines lost or out of order: none in" in SUMMARY
    assert "FAILED" not in SUMMARY
    targets = SUMMARY.split("Targets (median of the per-round ratios)\n")[1].splitlines()
    assert len(targets) == 10
    assert all(row.endswith("  met") for row in targets), targets
    assert "Every target was met" in PAGE


def test_the_page_shows_the_plot_it_names() -> None:
    assert ".. image:: benchmarks/chat-fanout.png" in PAGE
    assert (ROOT / "docs" / "benchmarks" / "chat-fanout.png").read_bytes().startswith(b"\x89PNG")
