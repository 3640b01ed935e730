"""What the TCP services share in their twistd wiring: --port as any endpoint, and --max-line."""

from __future__ import annotations

import os
import re
from typing import Any

from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IProtocolFactory,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python import usage
from zope.interface import implementer

from labproto.foreground import under_twistd
from labproto.lines import DEFAULT_MAX_LINE
from labproto.ports import parse_port_number
from labproto.trace import TRACE_FLAG, TRACE_HELP, TracingFactory

# Enough for any line a person types, and small enough that a thousand
# connections each holding a full line cost about a megabyte.
MAX_LINE_LIMIT = 1024 * 1024

# Twisted listens with a backlog of 50 by default: a class joining at once
# overflows it, and each connection the kernel drops then waits a second for
# its SYN to be sent again. Linux caps it at net.core.somaxconn in any case.
LISTEN_BACKLOG = 1024

log = Logger()


def endpoint_description(text: str) -> str:
    """Turn --port's value into an endpoint description: a bare port number means tcp:N."""
    if re.fullmatch(r"[0-9]+", text):
        return f"tcp:{parse_port_number(text, 'TCP')}"
    return text


def with_listen_backlog(description: str) -> str:
    """description, with a backlog of LISTEN_BACKLOG unless it gives one of its own."""
    kind = description.partition(":")[0]
    if kind in ("tcp", "tcp6", "ssl", "unix") and not re.search(r"(^|:)backlog=", description):
        return f"{description}:backlog={LISTEN_BACKLOG}"
    return description


def listening_parameters(default_port: int) -> list[list[object]]:
    """The optParameters of a TCP line server listening by default on default_port."""
    return [
        [
            "port",
            "p",
            str(default_port),
            "Port number (0 takes any free port and logs which) or Twisted endpoint "
            "description: tcp:N, tcp6:N, ssl:N:privateKey=KEY.pem:certKey=CERT.pem, unix:PATH.",
        ],
        [
            "max-line",
            None,
            str(DEFAULT_MAX_LINE),
            "Longest line accepted, in bytes, without its line ending.",
        ],
    ]


class TCPServerOptions(usage.Options):
    """The options every TCP line server takes (see listening_parameters), and --trace.

    Under ``twistd -n`` they also keep twistd from writing a pid file (see
    labproto.foreground), so that several servers run from one folder, and
    stop on SIGHUP (a closed terminal) as on SIGTERM.
    """

    # usage.Options gathers optFlags from every class of a subclass's MRO, so
    # a service's Options that has flags of its own still takes --trace.
    optFlags = [[TRACE_FLAG, None, TRACE_HELP]]

    def postOptions(self) -> None:
        under_twistd(self)
        self["port"] = checked_endpoint("port", self["port"])
        max_line = self["max-line"]
        if not re.fullmatch(r"[0-9]+", max_line) or not 1 <= int(max_line) <= MAX_LINE_LIMIT:
            raise usage.UsageError(
                f"--max-line must be a number of bytes from 1 to {MAX_LINE_LIMIT}, not {max_line!r}"
            )
        self["max-line"] = int(max_line)


def checked_endpoint(option: str, text: str) -> str:
    """The endpoint description that option's value text stands for, once Twisted accepts it."""
    description = endpoint_description(text)
    try:
        endpoints.serverFromString(_reactor(), description)
    except Exception as e:
        # Twisted parses the description, and an ssl: one loads its key
        # and certificate files, here: each can fail in its own way.
        raise usage.UsageError(f"--{option} {description!r} cannot be used: {e}") from None
    return description


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def describe_listening(address: IAddress) -> str:
    """Say where a listening port is, as a user would type it to reach it."""
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is not None and port is not None:
        return f"TCP [{host}]:{port}" if ":" in host else f"TCP {host}:{port}"
    name = getattr(address, "name", None)
    return f"UNIX socket {os.fsdecode(name) if name is not None else '(unnamed)'}"


@implementer(IStreamServerEndpoint)
class AnnouncedEndpoint:
    """An endpoint that logs where it listens, the port number it took included, or why it cannot.

    The log line is how a user (and a test) learns the port that ``--port 0``
    took.
    """

    def __init__(self, endpoint: IStreamServerEndpoint, description: str, name: str) -> None:
        self.endpoint = endpoint
        self.description = description
        self.name = name

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        listening = self.endpoint.listen(factory)

        def announce(port: IListeningPort) -> IListeningPort:
            where = describe_listening(port.getHost())
            if self.description.startswith("ssl:"):
                where += " (TLS)"
            log.info("{service} listening on {where}", service=self.name, where=where)
            return port

        def give_up(failure: Any) -> Any:
            log.critical(
                "Cannot listen on {description}: {reason}",
                description=self.description,
                reason=failure.getErrorMessage(),
            )
            # twistd turns SystemExit into its exit status without a traceback.
            raise SystemExit(1)

        return listening.addCallbacks(announce, give_up)


def tcp_service(
    options: TCPServerOptions, factory: IProtocolFactory, name: str, reactor: Any = None
) -> service.MultiService:
    """Build the service that serves factory on the endpoint of options' --port.

    With --trace, every connection's bytes are logged under name (see labproto.trace).
    """
    if options["trace"]:
        factory = TracingFactory(factory, name)
    top = service.MultiService()
    endpoint_service(options["port"], factory, name, reactor).setServiceParent(top)
    return top


def endpoint_service(
    description: str, factory: IProtocolFactory, name: str, reactor: Any = None
) -> service.Service:
    """Build the service that serves factory on the endpoint description, announced as name."""
    endpoint = endpoints.serverFromString(reactor or _reactor(), with_listen_backlog(description))
    server = StreamServerEndpointService(AnnouncedEndpoint(endpoint, description, name), factory)
    # Fail at start, with twistd's exit status, rather than log and serve nothing.
    server._raiseSynchronously = True
    return server
