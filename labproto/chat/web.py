"""labchat's web site (--web): the page at /, the room's WebSocket at /ws, figures at /metrics."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import Resource
from twisted.web.server import Request

from labproto.chat.metrics import CONTENT_TYPE, exposition
from labproto.chat.webdoor import WebSite, head_answer
from labproto.chat.websocket import ChatWebSocketFactory, ChatWebSocketResource

# The page, its style and its script: package data, served as they are.
STATIC = Path(__file__).parent / "static"

# The page fetches nothing from elsewhere and runs no inline script: a
# browser that honours this runs no script that a message might smuggle in.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
        " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# The media types of the page's files, by their suffix.
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


class PageFile(Resource):
    """One file of the page, read once at start (they are small), sent with PAGE_HEADERS."""

    isLeaf = True

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.body = path.read_bytes()
        self.media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")

    def render_GET(self, request: Request) -> bytes:
        request.setHeader("Content-Type", self.media_type)
        for name, value in PAGE_HEADERS.items():
            request.setHeader(name, value)
        return self.body

    def render_HEAD(self, request: Request) -> bytes:
        return head_answer(request, self.render_GET(request))


class MetricsPage(Resource):
    """/metrics: the room's figures in the Prometheus text format."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader("Content-Type", CONTENT_TYPE)
        return exposition(self.registry)

    def render_HEAD(self, request: Request) -> bytes:
        return head_answer(request, self.render_GET(request))


def web_site(
    websockets: ChatWebSocketFactory, registry: CollectorRegistry, clock: IReactorTime
) -> WebSite:
    """The site of --web: the page, /ws for websockets' users, /metrics from registry.

    Its requests are timed on clock, and limited (see labproto.chat.webdoor).
    """
    root = Resource()
    for path in sorted(STATIC.iterdir()):
        if path.is_file():
            root.putChild(path.name.encode(), PageFile(path))
    root.putChild(b"", PageFile(STATIC / "index.html"))
    root.putChild(b"ws", ChatWebSocketResource(websockets))
    root.putChild(b"metrics", MetricsPage(registry))
    site = WebSite(root, clock)
    # "Starting factory <Site object at 0x...>" says nothing the listening line does not.
    site.noisy = False
    return site
