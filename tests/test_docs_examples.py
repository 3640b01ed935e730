"""Every scripted session in docs/*.rst and README.rst, run for real against real servers.

A literal block line of the form ``$ printf '...' | nc ... HOST PORT`` or
``$ printf '...' | labproto SUBCOMMAND ...`` (``echo`` works in place of
``printf``) is an example: the test runs it with bash, against a twistd
server of the service on a free port of 127.0.0.1, and compares what it
prints with the lines that follow it in the doc, up to a blank line or the
next ``$`` line. So a server string changed without its docs fails here.
An example that shows no output (the page shows the server's log instead)
must still run and exit with status 0.

udptime's answers are the date and the time, which change: for its
examples a ``DD/DD/DD`` or ``DD:DD:DD`` in the doc matches any such date or
time, and everything else in the line must match exactly. Nothing else in
the examples varies.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.processes import (
    BIN,
    DEADLINE,
    LABPROTO,
    TCP_LISTENING,
    ServerProcess,
    child_environment,
    start_twistd,
)
from support.system import openbsd_nc

DOCS = Path(__file__).resolve().parent.parent / "docs"

# Which service an example talks to: by its port for nc, by its subcommand for labproto.
SERVICE_OF_PORT = {
    "43387": "udpecho",
    "43388": "udptime",
    "43389": "labchat",
    "43390": "knockknock",
    "43391": "labcalc",
}
SERVICE_OF_SUBCOMMAND = {
    "echo": "udpecho",
    "time": "udptime",
    "chat": "labchat",
    "knock": "knockknock",
    "calc": "labcalc",
}
UDP_SERVICES = {"udpecho", "udptime"}
UDP_LISTENING = r"listening on UDP \S+:(\d+)$"

# A doc's example command line: a prompt, then input piped into nc or labproto.
COMMAND = re.compile(r"^(?P<indent>\s*)\$ (?P<command>(?:printf|echo) .*\| *(?:nc|labproto) .*)$")
# What changes from one run of udptime to the next: its default date and time.
CLOCK = re.compile(r"\d\d/\d\d/\d\d|\d\d:\d\d:\d\d")


@dataclass(frozen=True)
class Example:
    """One scripted session of a doc: where it is, its command, and the output the doc shows."""

    where: str
    command: str
    expected: tuple[str, ...]

    @property
    def program(self) -> list[str]:
        """The words of the command that the input is piped into: nc ... or labproto ..."""
        return shlex.split(self.command.rsplit("|", 1)[1])

    @property
    def service(self) -> str:
        words = self.program
        if words[0] == "nc":
            return SERVICE_OF_PORT[words[-1]]
        return SERVICE_OF_SUBCOMMAND[words[1]]


def read_examples(path: Path) -> Iterator[Example]:
    """The examples in one doc, in the order they appear."""
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = COMMAND.match(lines[index])
        start = index
        index += 1
        if match is None:
            continue
        command = match["command"]
        while command.endswith("\\") and index < len(lines):
            command = command[:-1] + lines[index].strip()
            index += 1
        indent = match["indent"]
        expected = []
        # The output: the lines after the command, up to a blank line, a
        # line outside the block, or the next command.
        while index < len(lines):
            line = lines[index]
            if not line.strip() or not line.startswith(indent) or line.strip().startswith("$ "):
                break
            expected.append(line[len(indent) :])
            index += 1
        yield Example(f"{path.name}:{start + 1}", command, tuple(expected))


README = DOCS.parent / "README.rst"


def all_examples() -> list[Example]:
    """Every example in docs/*.rst and in the README."""
    pages = [*sorted(DOCS.glob("*.rst")), README]
    return [example for path in pages for example in read_examples(path)]


EXAMPLES = all_examples()


def test_the_docs_show_a_session_of_every_service() -> None:
    # Guards the parser: a change that finds no examples must not pass quietly.
    shown = {example.service for example in EXAMPLES if example.expected}
    assert shown == set(SERVICE_OF_PORT.values())


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], int]]:
    """The port of a real server of each service, started the first time a test asks."""
    started: dict[str, tuple[ServerProcess, int]] = {}
    cwd = tmp_path_factory.mktemp("docs-servers")

    def port_of(service: str) -> int:
        if service not in started:
            if service in UDP_SERVICES:
                options = ("--port", "0", "--interface", "127.0.0.1")
                listening = UDP_LISTENING
            else:
                options = ("--port", "tcp:0:interface=127.0.0.1")
                listening = TCP_LISTENING
            server = start_twistd(service, *options, cwd=cwd)
            try:
                port = int(server.wait_for(listening).group(1))
            except AssertionError:
                server.stop()
                raise
            started[service] = (server, port)
        return started[service][1]

    yield port_of
    for server, _ in started.values():
        server.stop()


def localized(example: Example, port: int) -> str:
    """The example's command, aimed at the test's server: 127.0.0.1 and the port it took."""
    given, program = example.command.rsplit("|", 1)
    words = shlex.split(program)
    if words[0] == "nc":
        words[-2:] = ["127.0.0.1", str(port)]
    else:
        if "--host" in words:
            words[words.index("--host") + 1] = "127.0.0.1"
        words[:2] = [LABPROTO, words[1], "--port", str(port)]
    return f"{given}| {shlex.join(words)}"


def line_pattern(line: str, service: str) -> re.Pattern[str]:
    """The doc's line as a pattern: exact, but for udptime's date and time."""
    if service != "udptime":
        return re.compile(re.escape(line))
    literal = [re.escape(part) for part in CLOCK.split(line)]
    clocks = [r"\d\d/\d\d/\d\d" if "/" in c else r"\d\d:\d\d:\d\d" for c in CLOCK.findall(line)]
    pieces = [literal[0]]
    for clock, text in zip(clocks, literal[1:], strict=True):
        pieces += [clock, text]
    return re.compile("".join(pieces))


def matches(actual: list[str], expected: tuple[str, ...], service: str) -> bool:
    """Whether the lines printed are the lines the doc shows, one for one."""
    if len(actual) != len(expected):
        return False
    pairs = zip(actual, expected, strict=True)
    return all(line_pattern(want, service).fullmatch(got) for got, want in pairs)


def printed_lines(text: str) -> list[str]:
    # The TCP servers end their lines with CRLF, which nc passes on; a page shows lines.
    return [line.rstrip("\r") for line in text.splitlines()]


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.where for example in EXAMPLES])
def test_doc_example_prints_what_the_doc_shows(
    example: Example, ports: Callable[[str], int]
) -> None:
    if example.program[0] == "nc":
        # The docs use OpenBSD netcat, Debian's netcat-openbsd.
        openbsd_nc()
    command = localized(example, ports(example.service))
    environment = {**child_environment(), "PATH": f"{BIN}:{child_environment()['PATH']}"}
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    report = (
        f"{example.where}: {command}\nexit status {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
        "the doc shows:\n" + "\n".join(example.expected)
    )
    assert result.returncode == 0, report
    if not example.expected:
        return
    stdout, stderr = printed_lines(result.stdout), printed_lines(result.stderr)
    if example.program[0] == "nc":
        assert stderr == [], report
        assert matches(stdout, example.expected, example.service), report
    else:
        # A page shows a terminal, where labproto's warnings (standard error)
        # mix with its output: the output must come in the page's order, and
        # together they must be exactly the page's lines.
        shown_on_stdout = tuple(line for line in example.expected if line not in stderr)
        assert matches(stdout, shown_on_stdout, example.service), report
        assert Counter(stdout + stderr) == Counter(example.expected), report
