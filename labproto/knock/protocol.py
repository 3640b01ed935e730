"""The knockknock server: the audience of a knock-knock joke, in three states per connection.

::

    C: Knock knock..            (any "knock knock", case and punctuation ignored)
    S: Who's there?
    C: Lettuce
    S: Lettuce who?
    C: Lettuce in, it's cold out here!
    S: Ha ha! Knock again?      (back to the start)

A line out of turn gets an ERROR line naming the line expected, and the
state does not change.
"""

from __future__ import annotations

import enum
import re
from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from labproto.lines import LineProtocol, LineServerFactory
from labproto.text import clean_message, printable

KNOCK = "Knock knock.."
WHOS_THERE = "Who's there?"
WHO_SUFFIX = " who?"
LAUGH = "Ha ha! Knock again?"
EXPECTED_KNOCK = "ERROR you're supposed to say \"Knock knock\""
EXPECTED_NAME = "ERROR you're supposed to say who's there, e.g. \"Lettuce\""


def expected_punchline(name: str) -> str:
    """The refusal of an empty line where the punchline of name's joke should come."""
    return f'ERROR you\'re supposed to say the punchline, "{name} ..."'


def is_knock(text: str) -> bool:
    """Whether text says "knock knock", whatever its case, spacing and punctuation."""
    return re.sub(r"[^a-z]", "", text.lower()) == "knockknock"


class Turn(enum.Enum):
    """What the audience waits for the teller to say next."""

    KNOCK = "knock"
    NAME = "name"
    PUNCHLINE = "punchline"


class KnockKnockProtocol(LineProtocol):
    """One teller's connection: the joke's state, and the answer to each line in it."""

    log = Logger()

    def __init__(self, max_line: int) -> None:
        super().__init__(max_line)
        self.turn = Turn.KNOCK
        self.name = ""

    def connectionMade(self) -> None:
        self.log.info("Connection initiated from {peer}", peer=self.peer())

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.log.info("Connection closed from {peer}", peer=self.peer())

    def textReceived(self, text: str) -> None:
        self.log.info("SERVER RECEIVED: {line}", line=printable(text))
        # What the server echoes must not drive the teller's terminal: escape
        # sequences go whole, as in a chat message, not just their ESC.
        said = clean_message(text)
        # One method per turn, looked up by name, as Twisted's IRC server does.
        answer = getattr(self, f"heard_{self.turn.value}")(said)
        self.send_text(answer)

    def heard_knock(self, said: str) -> str:
        """The teller starts a joke, or should."""
        if not is_knock(said):
            return EXPECTED_KNOCK
        self.turn = Turn.NAME
        return WHOS_THERE

    def heard_name(self, said: str) -> str:
        """The teller says who is there."""
        if not said:
            return EXPECTED_NAME
        self.name = said
        self.turn = Turn.PUNCHLINE
        return said + WHO_SUFFIX

    def heard_punchline(self, said: str) -> str:
        """The teller ends the joke."""
        if not said:
            return expected_punchline(self.name)
        self.turn = Turn.KNOCK
        return LAUGH


class KnockKnockFactory(LineServerFactory):
    """Makes one KnockKnockProtocol per connection; the connections share nothing."""

    protocol: Any = KnockKnockProtocol
