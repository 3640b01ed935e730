# A twistd plugin is one line: labproto.chat.tap is imported only when
# `twistd labchat` runs. No __init__.py here, ever: see setup.cfg.
from twisted.application.service import ServiceMaker

labchat = ServiceMaker(
    "labproto labchat",
    "labproto.chat.tap",
    "The lab's multi-user TCP chat room (TCP port 43389).",
    "labchat",
)
