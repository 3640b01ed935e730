"""The Wireshark/tshark commands the docs give, run for real on a chat and an echo exchange.

Everything happens on the two private computers of support.netns, whose
links carry nothing but the test's own traffic: the chat goes from the
client computer (192.0.2.2) to labchat on the server computer (192.0.2.1)
and is captured on the server's end of the link, as a lab captures on its
network interface; the echo exchange stays on the server computer and is
captured on its loopback, with the docs' command as it is (``-i lo``).
The captures use the docs' capture filters; the files are then read with
the docs' display filters and commands, and the test checks that they show
what the docs say they show.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import system
from support.chat import PROMPT
from support.netns import TwoHosts
from support.processes import DEADLINE, LABPROTO, ServerProcess, poll_until

MESSAGE = "hello over the wire"
DATAGRAM = "hello udp"
# tshark draws an arrow between addresses and between ports: -> without UTF-8.
ARROW = "(?:→|->)"


@pytest.fixture(scope="module")
def tshark() -> str:
    """The tshark command."""
    return system.tshark()


@pytest.fixture
def started(hosts: TwoHosts) -> Iterator[list[ServerProcess]]:
    """Processes a test starts on the server computer; each is stopped when it ends."""
    processes: list[ServerProcess] = []
    yield processes
    for process in processes:
        process.stop()


def capture(
    hosts: TwoHosts, tshark: str, interface: str, capture_filter: str, file: Path
) -> ServerProcess:
    """Start the docs' capture command on the server computer: tshark -i -f -w.

    -P -l also print each packet as it is written, which tells the test
    when the packets it waits for are in the file (a capture stopped at
    once may not have written the last ones yet).
    """
    return hosts.start_on_server(
        [tshark, "-i", interface, "-f", capture_filter, "-w", str(file), "-P", "-l"], file.parent
    )


def packet_sockets(pid: int) -> int:
    """How many packet sockets (captures) are open in the network namespace of process pid."""
    table = Path(f"/proc/{pid}/net/packet").read_text().splitlines()
    return len(table) - 1


def read(tshark: str, *arguments: str) -> list[str]:
    """Run a tshark command that reads a capture file; the lines it prints."""
    result = subprocess.run(
        [tshark, *arguments], capture_output=True, text=True, timeout=DEADLINE, check=False
    )
    assert result.returncode == 0, result
    return result.stdout.splitlines()


def test_the_docs_tshark_commands_show_the_handshake_the_chat_and_the_datagram(
    hosts: TwoHosts, tshark: str, started: list[ServerProcess], tmp_path: Path
) -> None:
    chat_file, udp_file = tmp_path / "chat.pcapng", tmp_path / "udp.pcapng"
    chat = hosts.start_twistd("labchat", cwd=tmp_path)
    echo = hosts.start_twistd("udpecho", cwd=tmp_path)
    started += [chat, echo]
    tcp_capture = capture(hosts, tshark, hosts.server_interface, "tcp port 43389", chat_file)
    udp_capture = capture(hosts, tshark, "lo", "udp port 43387", udp_file)
    started += [tcp_capture, udp_capture]
    for process, ready in (
        (chat, r"labchat listening on TCP 0\.0\.0\.0:43389$"),
        (echo, r"udpecho listening on UDP 0\.0\.0\.0:43387$"),
        (tcp_capture, rf"^Capturing on '{hosts.server_interface}'"),
        (udp_capture, r"^Capturing on '(Loopback: )?lo'"),
    ):
        process.wait_for(ready)
    # tshark says "Capturing on" before its capturer has a socket on the
    # interface: a packet sent in between is missed (2 runs in 20 were, in
    # a trial). Each capture is one packet socket in the server's namespace.
    poll_until(lambda: packet_sockets(tcp_capture.process.pid) >= 2 or None)

    chatted = hosts.run_labproto(
        "chat", "--host", "192.0.2.1", "--name", "alice", input=MESSAGE + "\n"
    )
    assert (chatted.returncode, chatted.stderr) == (0, ""), chatted
    echoed = subprocess.run(
        # A long first wait: a resent datagram would be a third line of the field command.
        hosts.on_server(LABPROTO, "echo", "--timeout", "10", DATAGRAM),
        capture_output=True, text=True, timeout=DEADLINE, check=False,
    )
    assert (echoed.returncode, echoed.stderr) == (0, ""), echoed

    # The last packets the checks need: both FINs, and the echo's answer.
    tcp_capture.wait_for(rf"192\.0\.2\.1 {ARROW} 192\.0\.2\.2 .*\[FIN")
    tcp_capture.wait_for(rf"192\.0\.2\.2 {ARROW} 192\.0\.2\.1 .*\[FIN")
    udp_capture.wait_for(rf"UDP \d+ 43387 {ARROW} \d+ Len=2$")
    for process in (tcp_capture, udp_capture):
        # Ctrl-C ends a capture: tshark closes the file and says how many packets it took.
        assert process.stop() in (0, -signal.SIGINT), process.output()
        process.wait_for(r"^\d+ packets? captured$")

    # tshark -r chat.pcapng -Y 'tcp.flags.syn == 1': the SYN, then the SYN/ACK.
    syn, syn_ack = read(tshark, "-r", str(chat_file), "-Y", "tcp.flags.syn == 1")
    client_port = re.search(
        rf" 192\.0\.2\.2 {ARROW} 192\.0\.2\.1 +TCP \d+ (\d+) {ARROW} 43389 \[SYN\] ", syn
    )
    assert client_port, syn
    assert re.search(
        rf" 192\.0\.2\.1 {ARROW} 192\.0\.2\.2 +TCP \d+ 43389 {ARROW} {client_port[1]} "
        r"\[SYN, ACK\] ",
        syn_ack,
    ), syn_ack
    # The longer display filters of the docs pick out the same handshake, and the data.
    handshake = read(tshark, "-r", str(chat_file), "-Y", "tcp.port == 43389 && tcp.flags.syn == 1")
    assert handshake == [syn, syn_ack]
    data = read(tshark, "-r", str(chat_file), "-Y", "tcp.port == 43389 && tcp.len > 0")
    assert all(re.search(r" Len=[1-9]\d* ", line) for line in data), data
    # Both ways: what alice typed, and what the room sent her.
    for way in (rf"{ARROW} 43389 ", rf" 43389 {ARROW} "):
        assert any(re.search(way, line) for line in data), data

    # tshark -r chat.pcapng -q -z follow,tcp,ascii,0: the conversation as text.
    conversation = read(tshark, "-r", str(chat_file), "-q", "-z", "follow,tcp,ascii,0")
    assert "Follow: tcp,ascii" in conversation
    assert f"Node 0: 192.0.2.2:{client_port[1]}" in conversation
    assert "Node 1: 192.0.2.1:43389" in conversation
    for line in (PROMPT, "alice", MESSAGE, f"<alice> {MESSAGE}", "Bye alice!"):
        assert line in conversation, conversation

    # The docs' field command: who sent each datagram, and its text.
    fields = read(
        tshark, "-r", str(udp_file), "-Y", "udp.port == 43387", "-T", "fields",
        "-e", "ip.src", "-e", "udp.srcport", "-e", "data.text", "-o", "data.show_as_text:TRUE",
    )
    assert len(fields) == 2, fields
    assert re.fullmatch(rf"127\.0\.0\.1\t\d+\t{DATAGRAM}", fields[0]), fields
    assert fields[1] == "127.0.0.1\t43387\tOk"
