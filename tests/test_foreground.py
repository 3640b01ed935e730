"""twistd's pid file and labproto's plugins: none in the foreground unless asked for.

Parsed by twistd's own ServerOptions, which finds the plugins and runs each
one's postOptions before its own, as ``twistd`` does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from twisted.scripts._twistd_unix import ServerOptions

PLUGINS = ["udpecho", "udptime", "knockknock", "labcalc", "labchat", "labsuite"]


def twistd_options(*argv: str) -> ServerOptions:
    """twistd's options once it has parsed argv, plugin options included."""
    options = ServerOptions()
    options.parseOptions(list(argv))
    return options


@pytest.mark.parametrize("plugin", PLUGINS)
def test_in_the_foreground_a_plugin_writes_no_pid_file(plugin: str) -> None:
    assert twistd_options("-n", plugin)["pidfile"] == ""


@pytest.mark.parametrize("plugin", PLUGINS)
def test_in_the_foreground_a_pid_file_asked_for_is_kept(plugin: str, tmp_path: Path) -> None:
    asked = tmp_path / "udp.pid"
    assert twistd_options("-n", "--pidfile", str(asked), plugin)["pidfile"] == str(asked)


def test_the_default_pid_file_is_kept_when_named_as_a_path() -> None:
    options = twistd_options("-n", "--pidfile", "./twistd.pid", "udpecho")
    assert options["pidfile"] == os.path.abspath("twistd.pid")


@pytest.mark.parametrize("plugin", PLUGINS)
def test_a_daemon_keeps_the_pid_file_it_is_stopped_by(plugin: str) -> None:
    assert twistd_options(plugin)["pidfile"] == os.path.abspath("twistd.pid")
