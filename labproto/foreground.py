"""What every labproto plugin does about twistd itself: no pid file in the foreground, and SIGHUP.

twistd writes ``twistd.pid`` in the current folder even with ``-n``, and
refuses to start while that file names a running process. So ``twistd -n
udpecho`` and then ``twistd -n udptime`` from one folder, the README's two
commands, would stop the second with "Another twistd server is running". A
server in the foreground is stopped with Ctrl-C, not through its pid file,
so it needs none unless its user asks for one with ``--pidfile``.
"""

from __future__ import annotations

import contextlib
import signal
from types import FrameType
from typing import cast

from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IReactorCore, IReactorFromThreads
from twisted.logger import Logger
from twisted.python import usage

_log = Logger()

PIDFILE = "pidfile"


def under_twistd(options: usage.Options) -> None:
    """Do what every labproto plugin does about twistd itself; call from postOptions."""
    skip_default_pidfile(options)
    stop_on_hang_up(options)


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


def stop_on_hang_up(options: usage.Options) -> None:
    """Under twistd, stop the server on SIGHUP as on SIGTERM; call from postOptions.

    Closing the terminal that runs ``twistd -n`` sends SIGHUP, which twistd
    leaves to its default: the process died at once, and a chat room's
    users never read ``server shutting down``. Now the reactor stops as
    for Ctrl-C, and every service says its goodbye. A daemon (twistd
    without ``-n``) has no terminal to lose, and SIGHUP stops it the same
    way. Options parsed outside twistd (labsuite's own parts, a test) have
    no parent and install nothing.
    """
    if options.parent is None or not hasattr(signal, "SIGHUP"):
        return
    signal.signal(signal.SIGHUP, _hung_up)


def _hung_up(signal_number: int, frame: FrameType | None) -> None:
    # Runs between two bytecodes of whatever the reactor was doing: it only
    # asks the reactor to stop, from its own loop, as Twisted's SIGTERM does.
    from twisted.internet import reactor

    _log.info("Received SIGHUP (the terminal closed?), shutting down.")
    cast(IReactorFromThreads, reactor).callFromThread(_stop, reactor)


def _stop(reactor: IReactorCore) -> None:
    # A closed terminal often sends SIGHUP twice, and Ctrl-C may have come first.
    with contextlib.suppress(ReactorNotRunning):
        reactor.stop()
