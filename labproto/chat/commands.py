"""How a labchat line is read as a command: the one reading the server and its client share."""

from __future__ import annotations


def split_command(line: str) -> tuple[str, str] | None:
    """A command line's word, as typed, and the rest of it; None for a message.

    A command starts the line with one ``/`` (``//text`` is the message
    ``/text``); its word ends at the first whitespace and is matched in any
    case by whoever reads it.
    """
    if not line.startswith("/") or line.startswith("//"):
        return None
    return split_word(line)


def split_word(text: str) -> tuple[str, str]:
    """Split the first word of text, at any whitespace, from the rest."""
    words = text.split(None, 1)
    if not words:
        return "", ""
    return words[0], words[1] if len(words) == 2 else ""
