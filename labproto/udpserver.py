"""What the two UDP services share in their twistd wiring: the listening options."""

from __future__ import annotations

from errno import ECONNREFUSED, EINTR, EMSGSIZE
from typing import Any

from twisted.application import internet, service
from twisted.internet import abstract, error, udp
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python import usage

from labproto.foreground import under_twistd
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
    """The options every UDP server takes: where to listen (see listening_parameters), --trace.

    Under ``twistd -n`` they also keep twistd from writing a pid file (see
    labproto.foreground), so that several servers run from one folder, and
    stop on SIGHUP (a closed terminal) as on SIGTERM.
    """

    # usage.Options gathers optFlags from every class of a subclass's MRO, so
    # a service's Options that has flags of its own still takes --trace.
    optFlags = [[TRACE_FLAG, None, TRACE_HELP]]

    def postOptions(self) -> None:
        under_twistd(self)
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


class AnsweringPort(udp.Port):
    """Twisted's UDP port, without checking again a host it has already sent to.

    Port.write checks at every call that the address holds an IP address of
    the port's family, not a host name (which sendto would look up, blocking
    the reactor): three parses that cost about 1 us, more than udptime takes
    to answer. A server sends its answers to the addresses its datagrams
    came from, the same ones again and again, and the check depends on the
    host alone: once Port.write has sent to a host, what goes to it next
    goes straight to sendto, its errors handled as Port.write handles them.
    """

    # Past this many hosts remembered, the port starts afresh, so that a
    # server answering ever new peers holds no more memory for them.
    MAX_CHECKED_HOSTS = 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._checked_hosts: set[str] = set()

    def write(self, datagram: bytes, addr: tuple[str, int] | None = None) -> None:
        if self._connectedAddr or addr is None or addr[0] not in self._checked_hosts:
            super().write(datagram, addr)
            if not self._connectedAddr and addr is not None:
                # Port.write has accepted this host: it raises for one it refuses.
                if len(self._checked_hosts) >= self.MAX_CHECKED_HOSTS:
                    self._checked_hosts.clear()
                self._checked_hosts.add(addr[0])
            return
        try:
            self.socket.sendto(datagram, addr)
        except OSError as e:
            # What Port.write does on the same errors.
            if e.errno == EINTR:
                self.write(datagram, addr)
            elif e.errno == EMSGSIZE:
                raise error.MessageLengthError("message too long") from e
            elif e.errno != ECONNREFUSED:
                raise


class UDPServer(internet.UDPServer):
    """Twisted's UDPServer on an AnsweringPort, reporting a port it cannot take in one log line."""

    log = Logger()

    def _getPort(self) -> IListeningPort:
        # What internet.UDPServer does through reactor.listenUDP(), with an
        # AnsweringPort in place of the posix reactors' udp.Port.
        from twisted.internet import reactor as installed

        reactor = installed if self.reactor is None else self.reactor
        if not isinstance(reactor, PosixReactorBase):
            return super()._getPort()
        port = AnsweringPort(*self.args, reactor=reactor, **self.kwargs)
        port.startListening()
        return port

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
