"""What the two UDP services share in their twistd wiring: the listening options."""

from __future__ import annotations

from twisted.application import internet, service
from twisted.internet import abstract
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python import usage

from labproto.ports import parse_port_number
from labproto.trace import TRACE_FLAG, TRACE_HELP, TracingDatagramProtocol

# The largest payload a UDP datagram can carry: read whole datagrams, so that
# an oversized one is logged at its true size rather than cut at Twisted's
# default 8 KiB buffer.
MAX_DATAGRAM = 65535


def listening_parameters(default_port: int) -> list[list[object]]:
    """The optParameters of a UDP server listening by default on default_port."""
    return [
        [
            "port",
            "p",
            str(default_port),
            "UDP port to listen on; 0 takes any free port and logs which.",
        ],
        [
            "interface",
            "i",
            "",
            "Local address to listen on: empty for every IPv4 interface, :: for IPv6 and IPv4.",
        ],
    ]


class UDPServerOptions(usage.Options):
    """The options every UDP server takes: where to listen (see listening_parameters), --trace."""

    # usage.Options gathers optFlags from every class of a subclass's MRO, so
    # a service's Options that has flags of its own still takes --trace.
    optFlags = [[TRACE_FLAG, None, TRACE_HELP]]

    def postOptions(self) -> None:
        self["port"] = parse_port_number(self["port"], "UDP")
        interface = self["interface"]
        if interface and not (
            abstract.isIPAddress(interface) or abstract.isIPv6Address(interface)
        ):
            raise usage.UsageError(
                f"--interface must be a local IPv4 or IPv6 address, not {interface!r}"
            )


class UDPServerProtocol(DatagramProtocol):
    """What every labproto UDP server does when it starts: say where it listens."""

    service_name: str
    log = Logger()
    # Twisted's "Starting protocol <... object at 0x...>" tells a reader
    # nothing that the line below does not.
    noisy = False

    def startProtocol(self) -> None:
        assert self.transport is not None
        where = self.transport.getHost()
        self.log.info(
            "{service} listening on UDP {host}:{port}",
            service=self.service_name,
            host=where.host,
            port=where.port,
        )


class UDPServer(internet.UDPServer):
    """A UDPServer that reports a port it cannot take in one log line, not a traceback."""

    log = Logger()

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            self.log.critical(
                "Cannot listen on UDP port {port} of {interface}: {reason}",
                port=e.port,
                interface=e.interface or "every interface",
                reason=e.socketError,
            )
            # twistd turns SystemExit into its exit status without a traceback.
            raise SystemExit(1) from None


def udp_service(options: UDPServerOptions, protocol: DatagramProtocol) -> service.MultiService:
    """Build the service that serves protocol on the UDP port and interface of options.

    With --trace, every datagram in and out is logged under the protocol's
    service_name (see labproto.trace).
    """
    if options["trace"]:
        protocol = TracingDatagramProtocol(protocol)
    top = service.MultiService()
    server = UDPServer(
        options["port"],
        protocol,
        interface=options["interface"],
        maxPacketSize=MAX_DATAGRAM,
    )
    server.setServiceParent(top)
    return top
