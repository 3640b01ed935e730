"""twistd wiring for udpecho: ``twistd -n udpecho [--port N] [--interface ADDR]``."""

from __future__ import annotations

from twisted.application.service import MultiService

from labproto import ports
from labproto.udpecho.protocol import EchoServerProtocol
from labproto.udpserver import UDPServerOptions, listening_parameters, udp_service


class Options(UDPServerOptions):
    """Options of the udpecho server."""

    synopsis = "[--port N] [--interface ADDR] [--trace]"
    longdesc = (
        "The lab's UDP message/ack server: logs every datagram with its sender "
        "and answers Ok. Try it with: labproto echo --host THIS-HOST"
    )
    optParameters = listening_parameters(ports.UDPECHO)


def makeService(options: Options) -> MultiService:
    """Serve udpecho on the port and interface of options."""
    return udp_service(options, EchoServerProtocol())
