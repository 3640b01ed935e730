"""Every line labchat sends, in one place, so that the wire contract reads in one screen.

::

    S: Welcome to labchat! Please enter your name:
    C: alice
    S: Welcome alice! 2 users online: alice, bob     (bob receives: * alice joined)
    C: hello                                         (everyone: <alice> hello)
    C: /me waves                                     (everyone: * alice waves)
    C: /msg bob psst                  (bob: *alice* psst, alice: -> *bob* psst)
    C: /nick carol                    (everyone: * alice is now known as carol)
    C: /quit gone fishing             (carol: Bye carol!, others: * carol left (gone fishing))
"""

from __future__ import annotations

from collections.abc import Sequence

PROMPT = "Welcome to labchat! Please enter your name:"
NAME_RULE = "use 1 to 24 ASCII letters, digits, _, - or ."
INVALID_NAME = f"ERROR invalid name: {NAME_RULE}"
ROOM_FULL = "ERROR room full"
TOO_MANY_FROM_HOST = "ERROR too many connections from your address"
LOGIN_TIMED_OUT = "ERROR login timed out"
SLOW_DOWN = "ERROR slow down: message dropped"
SHUTTING_DOWN = "* server shutting down"
# A room spread over several nodes (--redis) that has lost Redis, and found it again.
BACKPLANE_UNAVAILABLE = "* backplane unavailable, reconnecting"
BACKPLANE_RESTORED = "* backplane restored"
ROOM_UNAVAILABLE = "ERROR room unavailable, try again"
HELP = (
    "Commands: /me ACTION, /msg NAME TEXT, /who, /nick NAME, /help, /quit [REASON]",
    "Any other line is a message to everyone; start it with // to send one that begins with /",
)

# Why a user left, as the others read it in "* alice left (...)".
QUIT = "quit"
CONNECTION_LOST = "connection lost"
SEND_QUEUE_EXCEEDED = "send queue exceeded"
SERVER_SHUTTING_DOWN = "server shutting down"
NODE_LOST = "node lost"

# A longer room is counted in the welcome line and listed over several lines by /who.
NAMES_PER_LINE = 20


def name_taken(name: str) -> str:
    """The refusal of a name someone else has, quoted as the client typed it."""
    return f"ERROR name taken: {name}"


def name_lost(name: str) -> str:
    """Why a user must log in again after a lost backplane: another node gave their name away."""
    return f"* your name {name} was taken on another node while the backplane was down"


def unknown_command(command: str) -> str:
    """The refusal of a command word labchat does not know."""
    return f"ERROR unknown command: {command} (try /help)"


def no_such_user(name: str) -> str:
    """The refusal of a private message to a name nobody has."""
    return f"ERROR no such user: {name}"


def usage(synopsis: str) -> str:
    """The refusal of a command given without what it needs."""
    return f"ERROR usage: {synopsis}"


def joined(name: str) -> str:
    """What the others see when name logs in."""
    return f"* {name} joined"


def left(name: str, reason: str) -> str:
    """What the others see when name leaves, for reason."""
    return f"* {name} left ({reason})"


def renamed(old: str, new: str) -> str:
    """What everyone sees on a /nick."""
    return f"* {old} is now known as {new}"


def said(name: str, text: str) -> str:
    """A message, as everyone sees it."""
    return f"<{name}> {text}"


def action(name: str, text: str) -> str:
    """A /me, as everyone sees it."""
    return f"* {name} {text}"


def whispered(sender: str, text: str) -> str:
    """A /msg, as its recipient sees it."""
    return f"*{sender}* {text}"


def whisper_sent(recipient: str, text: str) -> str:
    """A /msg, as its sender sees it."""
    return f"-> *{recipient}* {text}"


def bye(name: str) -> str:
    """The last line a user who sent /quit receives."""
    return f"Bye {name}!"


def users_online(count: int) -> str:
    """``1 user online``, ``2 users online``."""
    return f"{count} user online" if count == 1 else f"{count} users online"


def welcome(name: str, count: int, sorted_names: Sequence[str]) -> str:
    """The greeting of a user who has just joined a room of count users, sorted_names.

    A room of more than NAMES_PER_LINE users is only counted, and then
    sorted_names is not read.
    """
    if count > NAMES_PER_LINE:
        return f"Welcome {name}! {users_online(count)} (/who lists them)"
    return f"Welcome {name}! {users_online(count)}: {', '.join(sorted_names)}"


def who(sorted_names: Sequence[str]) -> list[str]:
    """The answer to /who: one line for a small room, else a count and 20 names to a line."""
    count = len(sorted_names)
    if count <= NAMES_PER_LINE:
        return [f"{users_online(count)}: {', '.join(sorted_names)}"]
    return [f"{users_online(count)}:"] + [
        ", ".join(sorted_names[start : start + NAMES_PER_LINE])
        for start in range(0, count, NAMES_PER_LINE)
    ]
