"""twistd wiring for knockknock: ``twistd -n knockknock [--port ENDPOINT] [--max-line N]``."""

from __future__ import annotations

from twisted.application.service import MultiService

from labproto import ports
from labproto.knock.protocol import KnockKnockFactory
from labproto.tcpserver import TCPServerOptions, listening_parameters, tcp_service


class Options(TCPServerOptions):
    """Options of the knockknock server."""

    synopsis = "[--port N|ENDPOINT] [--max-line N] [--trace]"
    longdesc = (
        "The lab's TCP knock-knock server: it plays the audience of a knock-knock "
        "joke, one joke after another on each connection. Try it with: "
        "labproto knock --host THIS-HOST --joke Lettuce \"Lettuce in, it's cold out here!\""
    )
    optParameters = listening_parameters(ports.KNOCKKNOCK)


def makeService(options: Options) -> MultiService:
    """Serve knockknock on the endpoint of options."""
    return tcp_service(options, KnockKnockFactory(options["max-line"]), "knockknock")
