"""labproto: the classic socket-lab services, built as Twisted servers and clients."""

__version__ = "0.1.0"
