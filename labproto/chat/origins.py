"""Which web pages may open labchat's WebSocket: the Origin rule of --web-origin.

Apart from the WebSocket itself so that twistd's option parsing, which checks
--web-origin, need not import autobahn.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit


def origin_key(origin: str) -> tuple[str, str, int] | None:
    """An origin (``https://lab.example.org:8443``) as (scheme, host, port), or None if not one."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    if port is None:
        port = 443 if scheme == "https" else 80
    return scheme, parts.hostname.lower(), port


def page_origin(host_header: str, secure: bool) -> tuple[str, str, int] | None:
    """The origin of a page served under host_header (``lab.example.org:8080``) by this site."""
    return origin_key(("https://" if secure else "http://") + host_header)


class OriginPolicy:
    """Which web pages may open a WebSocket to the room: --web-origin.

    Without a list, only the page's own origin, so another site cannot
    drive a visitor's browser into the room; ``*`` admits any. A handshake
    without an Origin does not come from a browser page, and is admitted.
    """

    def __init__(self, allowed: Sequence[str] = (), secure: bool = False) -> None:
        self.any = "*" in allowed
        self.allowed = {key for key in map(origin_key, allowed) if key is not None}
        self.secure = secure

    def admits(self, origin: str | None, host_header: str) -> bool:
        """Whether a handshake with this Origin header, for this Host header, may go on."""
        if not origin or self.any:
            return True
        key = origin_key(origin)
        if key is None:
            return False
        if self.allowed:
            return key in self.allowed
        return key == page_origin(host_header, self.secure)

    def describe(self) -> str:
        """The origins admitted, as the log says it."""
        if self.any:
            return "any origin"
        if self.allowed:
            return ", ".join(f"{scheme}://{host}:{port}" for scheme, host, port in self.allowed)
        return "the page's own origin"
