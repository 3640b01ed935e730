"""What every labproto plugin does about twistd itself: no pid file in the foreground, and SIGHUP.

twistd writes ``twistd.pid`` in the current folder even with ``-n``, and
refuses to start while that file names a running process. So ``twistd -n
udpecho`` and then ``twistd -n udptime`` from one folder, the README's two
commands, would stop the second with "Another twistd server is running". A
server in the foreground is stopped with Ctrl-C, not through its pid file,
so it needs none unless its user asks for one with ``--pidfile``.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any, cast

from twisted.application import service
from twisted.internet.interfaces import IReactorCore, IReactorFromThreads
from twisted.logger import Logger
from twisted.python import usage

PIDFILE = "pidfile"


def skip_default_pidfile(options: usage.Options) -> None:
    """With ``twistd -n``, keep twistd from writing its default pid file; call from postOptions.

    options is a plugin's Options: twistd parses it, and calls its
    postOptions, before its own postOptions, which is where it makes the
    pid file's name absolute; it writes the file only later, when the
    application starts. So a name still equal to twistd's default here was
    not given, and an empty name means no pid file at all. (A
    ``--pidfile twistd.pid`` spelled out reads like the default: give
    ``--pidfile ./twistd.pid`` for that file.) Without ``-n`` a daemon
    needs its pid file to be stopped, and keeps it. Options parsed outside twistd, as labsuite
    parses each service's, have no parent and are left alone.
    """
    twistd = options.parent
    if twistd is None or PIDFILE not in twistd.defaults:
        return
    if twistd.get("nodaemon") and twistd[PIDFILE] == twistd.defaults[PIDFILE]:
        twistd[PIDFILE] = ""


class StopOnHangUp(service.Service):
    """Stop the server on SIGHUP as on SIGTERM, saying goodbye to whoever is connected.

    Closing the terminal that runs ``twistd -n`` sends SIGHUP, which twistd
    leaves to its default: the process dies at once, and a chat room's
    users never hear ``server shutting down``. A daemon (twistd without
    ``-n``) has no terminal to lose, and SIGHUP stops it the same way.
    """

    log = Logger()

    def __init__(self, reactor: IReactorCore | None = None) -> None:
        self.reactor = reactor
        self._previous: Any = None

    def startService(self) -> None:
        super().startService()
        # Signals can only be caught in the main thread (not in a test's reactor thread).
        if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGHUP, self._hung_up)

    def stopService(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
            self._previous = None
        return super().stopService()

    def _hung_up(self, signal_number: int, frame: FrameType | None) -> None:
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = cast(IReactorCore, global_reactor)
        self.log.info("Received SIGHUP (the terminal closed?), shutting down.")
        cast(IReactorFromThreads, reactor).callFromThread(self._stop, reactor)

    @staticmethod
    def _stop(reactor: IReactorCore) -> None:
        if reactor.running:
            reactor.stop()
