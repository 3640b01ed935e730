# A twistd plugin is one line: labproto.udptime.tap is imported only when
# `twistd udptime` runs, so `twistd --help` stays fast and a broken service
# cannot break the others. No __init__.py here, ever: see setup.cfg.
from twisted.application.service import ServiceMaker

udptime = ServiceMaker(
    "labproto udptime",
    "labproto.udptime.tap",
    "The lab's UDP date/time server (UDP port 43388).",
    "udptime",
)
