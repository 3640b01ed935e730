"""Shipping twisted/plugins: twistd must find every plugin, installed or in a checkout.

The known pitfalls: an installed twisted/__init__.py or twisted/plugins/__init__.py
would replace Twisted's own and hide every other plugin; a shipped dropin.cache
would overwrite Twisted's plugin cache; a cache written before the install must
not hide the new plugins; and an uninstall must leave twistd working.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from support.processes import TWISTD, child_environment

CHECKOUT = Path(__file__).resolve().parent.parent
PLUGINS = {
    "udpecho": "The lab's UDP message/ack server (UDP port 43387).",
    "udptime": "The lab's UDP date/time server (UDP port 43388).",
    "knockknock": "The lab's TCP knock-knock server (TCP port 43390).",
    "labcalc": "The lab's TCP calculator server (TCP port 43391).",
    "labchat": "The lab's multi-user TCP chat room (TCP port 43389).",
    "labsuite": "All five lab services in one process (ports 43387-43391).",
}
PLUGIN_FILES = {f"twisted/plugins/labproto_{name}.py" for name in PLUGINS}


def twistd_commands(twistd: str) -> dict[str, str]:
    """The plugins ``twistd --help`` lists, with their descriptions.

    A description too long for its column goes on over the next lines:
    another package's plugin with a longer name (autobahn's
    ``endpointforward``) narrows the column.
    """
    result = subprocess.run(
        [twistd, "--help"], capture_output=True, text=True, check=True, env=child_environment()
    )
    listing = result.stdout.split("\nCommands:\n", 1)[1]
    commands: dict[str, str] = {}
    name = ""
    for line in listing.splitlines():
        if line.startswith("     ") and name:
            commands[name] += " " + line.strip()
        elif line.startswith("    "):
            name, _, description = line.strip().partition(" ")
            commands[name] = description.strip()
    return commands


def test_twistd_in_this_environment_lists_every_plugin() -> None:
    commands = twistd_commands(TWISTD)
    for name, description in PLUGINS.items():
        assert commands.get(name) == description


def test_plugin_files_do_not_import_the_services() -> None:
    # twistd --help imports every plugin file; the services load only when run.
    check = (
        "import sys;"
        + "".join(f"import twisted.plugins.labproto_{name};" for name in PLUGINS)
        + "print(sorted(m for m in sys.modules if m.startswith('labproto')))"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.stdout == "[]\n", result.stderr


def test_the_checkout_has_no_init_in_the_twisted_namespace() -> None:
    assert not (CHECKOUT / "twisted" / "__init__.py").exists()
    assert not (CHECKOUT / "twisted" / "plugins" / "__init__.py").exists()


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in argv], cwd=cwd, capture_output=True, text=True,
        env=child_environment(),
    )
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv_makes_twistd_list_every_plugin(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(
        CHECKOUT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
            ".hypothesis", "dropin.cache",
        ),
    )
    # A development checkout where twistd has run holds a plugin cache of its own.
    (source / "twisted" / "plugins" / "dropin.cache").write_bytes(b"stale, never to be shipped")

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    twistd = str(bin_dir / "twistd")

    # Twisted first, and a plugin cache written before labproto exists.
    run(bin_dir / "python", "-m", "pip", "install", "--quiet", "Twisted")
    before = twistd_commands(twistd)
    assert "web" in before and "udpecho" not in before

    run(bin_dir / "python", "-m", "pip", "install", "--quiet", ".", cwd=source)
    after = twistd_commands(twistd)
    for name, description in PLUGINS.items():
        assert after.get(name) == description
    assert set(before) <= set(after), "installing labproto hid other plugins"

    site = Path(run(bin_dir / "python", "-c", "import twisted, os; print(twisted.__file__)")
                .strip()).parent.parent
    record = (next(site.glob("labproto-*.dist-info")) / "RECORD").read_text()
    installed = {line.split(",")[0] for line in record.splitlines()}
    assert PLUGIN_FILES <= installed
    assert not installed & {
        "twisted/__init__.py", "twisted/plugins/__init__.py", "twisted/plugins/dropin.cache"
    }

    # The services run from the installed package, not from the source tree.
    shutil.rmtree(source)
    result = subprocess.run(
        [twistd, "--nodaemon", "--pidfile=", "udptime", "--help"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert "--date-format" in result.stdout, result.stderr

    run(bin_dir / "python", "-m", "pip", "uninstall", "--yes", "--quiet", "labproto")
    gone = twistd_commands(twistd)
    # Exactly labproto's own plugins go; its dependencies' (autobahn's) stay.
    assert gone == {name: text for name, text in after.items() if name not in PLUGINS}
    assert set(before) <= set(gone)
