"""The bar labchat must clear: the chat server Twisted's documentation teaches.

A LineReceiver per connection and a dict of users in the factory, as in
the chat example of Twisted's "Writing Servers" howto, with the three
changes that make it speak the benchmark's part of labchat's contract: the
prompt and welcome lines are labchat's, and a message goes to every user,
its sender included. Like the howto's example it formats each message once
and encodes it again for every recipient, and it checks nothing: no name
rules, no line sanitizing, no flood control, no send queue limit, no log
line per message. Not for use: it exists to be measured against.

    python -m benchmarks.baselines.twisted_chat --port 43389
"""

from __future__ import annotations

from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver

from benchmarks.baselines import TCP_BACKLOG, run


class Chat(LineReceiver):
    def __init__(self, users: dict[str, Chat]) -> None:
        self.users = users
        self.name = ""
        self.state = "GETNAME"

    def connectionMade(self) -> None:
        self.sendLine(b"Welcome to labchat! Please enter your name:")

    def connectionLost(self, reason: object = None) -> None:
        if self.name in self.users:
            del self.users[self.name]

    def lineReceived(self, line: bytes) -> None:
        if self.state == "GETNAME":
            self.handle_GETNAME(line.decode("utf-8").strip())
        else:
            self.handle_CHAT(line.decode("utf-8"))

    def handle_GETNAME(self, name: str) -> None:
        if name in self.users:
            self.sendLine(b"ERROR name taken: " + name.encode("utf-8"))
            return
        self.sendLine(f"Welcome {name}!".encode())
        self.name = name
        self.users[name] = self
        self.state = "CHAT"

    def handle_CHAT(self, message: str) -> None:
        message = f"<{self.name}> {message}"
        for protocol in self.users.values():
            protocol.sendLine(message.encode("utf-8"))


class ChatFactory(Factory):
    def __init__(self) -> None:
        self.users: dict[str, Chat] = {}

    def buildProtocol(self, addr: object) -> Chat:
        return Chat(self.users)


def main(argv: list[str] | None = None) -> None:
    run(
        "twisted_chat",
        __doc__.splitlines()[0],
        "TCP",
        lambda reactor, port, host: reactor.listenTCP(
            port, ChatFactory(), backlog=TCP_BACKLOG, interface=host
        ),
        argv,
    )


if __name__ == "__main__":
    main()
