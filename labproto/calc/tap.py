"""twistd wiring for labcalc: ``twistd -n labcalc [--port ENDPOINT] [--max-line N] [--quiet]``."""

from __future__ import annotations

from twisted.application.service import MultiService

from labproto import ports
from labproto.calc.protocol import CalculatorFactory
from labproto.tcpserver import TCPServerOptions, listening_parameters, tcp_service


class Options(TCPServerOptions):
    """Options of the labcalc server."""

    synopsis = "[--port N|ENDPOINT] [--max-line N] [--quiet] [--trace]"
    longdesc = (
        "The lab's TCP calculator: it asks each client's name, remembers it for the "
        "whole session, and answers expressions like 12 + 42 until the client sends q. "
        "Try it with: labproto calc --host THIS-HOST"
    )
    optFlags = [
        [
            "quiet",
            "q",
            "Do not log each request (connections and session ends still are), so that "
            "a benchmark measures the service, not its log.",
        ]
    ]
    optParameters = listening_parameters(ports.LABCALC)


def makeService(options: Options) -> MultiService:
    """Serve labcalc on the endpoint of options."""
    factory = CalculatorFactory(options["max-line"], quiet=bool(options["quiet"]))
    return tcp_service(options, factory, "labcalc")
