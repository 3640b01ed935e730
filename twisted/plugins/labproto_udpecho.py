# A twistd plugin is one line: labproto.udpecho.tap is imported only when
# `twistd udpecho` runs, so `twistd --help` stays fast and a broken service
# cannot break the others. No __init__.py here, ever: see setup.cfg.
from twisted.application.service import ServiceMaker

udpecho = ServiceMaker(
    "labproto udpecho",
    "labproto.udpecho.tap",
    "The lab's UDP message/ack server (UDP port 43387).",
    "udpecho",
)
