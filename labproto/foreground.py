"""What every labproto plugin does with twistd's own options: no pid file in the foreground.

twistd writes ``twistd.pid`` in the current folder even with ``-n``, and
refuses to start while that file names a running process. So ``twistd -n
udpecho`` and then ``twistd -n udptime`` from one folder, the README's two
commands, would stop the second with "Another twistd server is running". A
server in the foreground is stopped with Ctrl-C, not through its pid file,
so it needs none unless its user asks for one with ``--pidfile``.
"""

from __future__ import annotations

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
