# A twistd plugin is one line: labproto.suite.tap is imported only when
# `twistd labsuite` runs. No __init__.py here, ever: see setup.cfg.
from twisted.application.service import ServiceMaker

labsuite = ServiceMaker(
    "labproto labsuite",
    "labproto.suite.tap",
    "All five lab services in one process (ports 43387-43391).",
    "labsuite",
)
