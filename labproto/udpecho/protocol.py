"""The udpecho server: every datagram is logged and acknowledged with ``Ok``."""

from __future__ import annotations

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from labproto.text import format_address, loggable

ACK = b"Ok"


class EchoServerProtocol(DatagramProtocol):
    """Log each datagram as the lab's server prints it and answer ``Ok``.

    A datagram shorter than the answer is logged but not answered, so that
    the service never sends more bytes than it received and cannot be used
    to amplify traffic towards a forged sender address.
    """

    log = Logger()
    # Our own start line names the service and its address; Twisted's would
    # only print the object's repr.
    noisy = False

    def startProtocol(self) -> None:
        assert self.transport is not None
        where = self.transport.getHost()
        self.log.info(
            "udpecho listening on UDP {host}:{port}", host=where.host, port=where.port
        )

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        sender = format_address(*addr)
        self.log.info(
            "Server received MESSAGE= {text} from ADDR= {sender}",
            text=loggable(datagram),
            sender=sender,
        )
        if len(datagram) < len(ACK):
            self.log.info(
                "Not answering {sender}: a {size}-byte datagram is shorter than the answer",
                sender=sender,
                size=len(datagram),
            )
            return
        assert self.transport is not None
        self.transport.write(ACK, addr)
