"""The udpecho server: every datagram is logged and acknowledged with ``Ok``."""

from __future__ import annotations

from labproto.text import format_address, loggable
from labproto.udpserver import UDPServerProtocol

ACK = b"Ok"


class EchoServerProtocol(UDPServerProtocol):
    """Log each datagram as the lab's server prints it and answer ``Ok``.

    A datagram shorter than the answer is logged but not answered, so that
    the service never sends more bytes than it received and cannot be used
    to amplify traffic towards a forged sender address.
    """

    service_name = "udpecho"

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
