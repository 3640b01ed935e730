# A twistd plugin is one line: labproto.calc.tap is imported only when
# `twistd labcalc` runs. No __init__.py here, ever: see setup.cfg.
from twisted.application.service import ServiceMaker

labcalc = ServiceMaker(
    "labproto labcalc",
    "labproto.calc.tap",
    "The lab's TCP calculator server (TCP port 43391).",
    "labcalc",
)
