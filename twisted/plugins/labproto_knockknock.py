# A twistd plugin is one line: labproto.knock.tap is imported only when
# `twistd knockknock` runs. No __init__.py here, ever: see setup.cfg.
from twisted.application.service import ServiceMaker

knockknock = ServiceMaker(
    "labproto knockknock",
    "labproto.knock.tap",
    "The lab's TCP knock-knock server (TCP port 43390).",
    "knockknock",
)
