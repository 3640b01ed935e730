"""twistd wiring for labsuite: ``twistd -n labsuite [--chat-port ENDPOINT] ... [--trace]``.

Each service is configured by its own Options class from the arguments it
would get on its own (``--port``, ``--interface``, ``--trace``), so a port
given to labsuite is checked exactly as the service alone checks it, and
the services are the very ones ``twistd -n labchat`` and the others run.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from twisted.application.service import MultiService
from twisted.python import usage

from labproto import ports
from labproto.calc import tap as calc_tap
from labproto.chat import tap as chat_tap
from labproto.foreground import under_twistd
from labproto.knock import tap as knock_tap
from labproto.udpecho import tap as udpecho_tap
from labproto.udptime import tap as udptime_tap


@dataclass(frozen=True)
class Part:
    """One service of the suite: its plugin name, labsuite's option for its port, and its tap."""

    name: str
    option: str
    default_port: int
    udp: bool
    # The service's own twistd wiring: its Options class and makeService().
    tap: ModuleType

    def port_help(self) -> str:
        """The --help text of this service's port option."""
        if self.udp:
            return f"UDP port of {self.name}; 0 takes any free port."
        return f"Port number or endpoint description (tcp:N, ssl:...) of {self.name}."


PARTS = (
    Part("udpecho", "echo-port", ports.UDPECHO, True, udpecho_tap),
    Part("udptime", "time-port", ports.UDPTIME, True, udptime_tap),
    Part("labchat", "chat-port", ports.LABCHAT, False, chat_tap),
    Part("knockknock", "knock-port", ports.KNOCKKNOCK, False, knock_tap),
    Part("labcalc", "calc-port", ports.LABCALC, False, calc_tap),
)


class Options(usage.Options):
    """Options of labsuite: where each service listens, and whether they all trace."""

    synopsis = (
        "[--echo-port N] [--time-port N] [--chat-port N|ENDPOINT] [--knock-port N|ENDPOINT]"
        " [--calc-port N|ENDPOINT] [--interface ADDR] [--web ENDPOINT] [--redis URL] [--trace]"
    )
    longdesc = (
        "All five lab services in one process, each on its own default port: udpecho "
        f"(UDP {ports.UDPECHO}), udptime (UDP {ports.UDPTIME}), labchat (TCP {ports.LABCHAT}), "
        f"knockknock (TCP {ports.KNOCKKNOCK}) and labcalc (TCP {ports.LABCALC}). Each service "
        "keeps its own defaults; for its other options, run it on its own "
        "(twistd -n labchat --help)."
    )
    optFlags = [["trace", None, "Log every chunk of bytes each service receives and sends."]]
    optParameters = [
        [part.option, None, str(part.default_port), part.port_help()] for part in PARTS
    ] + [
        [
            "interface",
            "i",
            "",
            "Local address of the UDP services: empty for every IPv4 interface, "
            ":: for IPv6 and IPv4. (A TCP port takes tcp:N:interface=ADDR.)",
        ],
        [
            "web",
            None,
            None,
            "Also serve labchat's web page, its WebSocket and /metrics on this port "
            "or endpoint (tcp:8080); off unless given.",
        ],
        [
            "redis",
            None,
            None,
            "Share labchat's room, lobby, with every other labchat on this Redis "
            "(redis://HOST:6379/0); off unless given.",
        ],
    ]

    def postOptions(self) -> None:
        under_twistd(self)
        self.service_options: dict[str, usage.Options] = {}
        for part in PARTS:
            arguments = ["--port", self[part.option]]
            if part.udp and self["interface"]:
                arguments += ["--interface", self["interface"]]
            if self["trace"]:
                arguments.append("--trace")
            if part.name == "labchat":
                for shared in ("web", "redis"):
                    if self[shared] is not None:
                        arguments += [f"--{shared}", self[shared]]
            service_options = part.tap.Options()
            try:
                service_options.parseOptions(arguments)
            except usage.UsageError as e:
                # The service names its own option; say which of ours it was.
                message = str(e).replace("--port", f"--{part.option}")
                raise usage.UsageError(message) from None
            self.service_options[part.name] = service_options


def makeService(options: Options) -> MultiService:
    """Serve all five services, each as its own plugin would."""
    top = MultiService()
    for part in PARTS:
        part.tap.makeService(options.service_options[part.name]).setServiceParent(top)
    return top
