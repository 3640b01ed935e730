"""The web port's HTTP side: HEAD answered as GET without its body.

Apart from labproto.chat.web so that the WebSocket resource, which that
module imports, can use it too.
"""

from __future__ import annotations

from twisted.web.server import Request


def head_answer(request: Request, body: bytes) -> bytes:
    """Answer a HEAD request whose GET would have answered body: its length, and no body.

    Twisted sends the same for a resource that returns a body to HEAD, but
    logs a warning that it ate it for every such request (``curl -I``).
    """
    request.setHeader("Content-Length", b"%d" % len(body))
    return b""
