"""The default port of every labproto service, all distinct so that all can run at once."""

UDPECHO = 43387
UDPTIME = 43388
LABCHAT = 43389
KNOCKKNOCK = 43390
LABCALC = 43391
