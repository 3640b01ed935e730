"""Text helpers shared by every service: decoding peer bytes and showing them safely."""

from __future__ import annotations

import re

# C0 controls (TAB included: a log line should show it), DEL and the C1
# controls: the characters that could move a terminal's cursor or start an
# escape sequence when a log is read in one.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f]")
# The characters that split or reorder a reader's line without showing
# themselves: the line and paragraph separators (which some viewers break a
# line at), the bidi embeddings, overrides and isolates (which reorder the
# text after them) and the zero-width characters (which hide inside a name).
_INVISIBLE = "\u2028\u2029\u202a-\u202e\u2066-\u2069\u200b-\u200d\u2060\ufeff"
# What a log line must escape: the controls above and the invisible ones.
_UNLOGGABLE = re.compile(f"[\x00-\x1f\x7f-\x9f{_INVISIBLE}]")
_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}

# How much of one peer's text a single log line shows.
LOG_TEXT_LIMIT = 1024


def decode_text(data: bytes) -> str:
    """Decode bytes from a peer as UTF-8, replacing invalid sequences with U+FFFD."""
    return data.decode("utf-8", "replace")


def has_controls(text: str) -> bool:
    """Whether text holds a control character (C0, TAB included, DEL or C1)."""
    return _UNPRINTABLE.search(text) is not None


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """Return text with control characters shown as escapes (``\\r``, ``\\x1b``, ``\\u202e``).

    Used wherever a peer's text reaches a log, so that nobody can drive the
    terminal of the person reading the log, break a log line in two or make
    its text read in another order.
    """
    return _UNLOGGABLE.sub(_escape, text)


def loggable(data: bytes, limit: int = LOG_TEXT_LIMIT) -> str:
    """Show a peer's bytes in one log line: decoded, escaped, and cut at limit characters."""
    # A character is at most 4 bytes, so this slice always holds enough text.
    shown = printable(decode_text(data[: limit * 4]))
    if len(shown) > limit or len(data) > limit * 4:
        return f"{shown[:limit]}... ({len(data)} bytes in all)"
    return shown


def format_address(host: str, port: int) -> str:
    """Format a peer's address as the lab's Python servers print it: ``('127.0.0.1', 5000)``."""
    return repr((host, port))


# What a relayed or echoed line may not carry: the same controls as above but
# TAB, which is harmless on a terminal and common in typed text.
_TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def without_controls(text: str) -> str:
    """Remove the control characters (C0 but TAB, DEL, C1) that could drive a peer's terminal.

    An escape sequence loses its ESC and so shows as plain characters.
    """
    return _TERMINAL_CONTROLS.sub("", text)


# What a terminal would take as one escape sequence, so that it is removed
# whole rather than leaving "[31m" behind: a CSI sequence (ESC [ or C1 CSI,
# then parameters and a final byte), a string command (ESC ] OSC, ESC P DCS,
# ESC X, ESC ^, ESC _) up to its terminator or the end of the text, or any
# other ESC sequence. A C1 string opener alone (U+009D...) is only removed
# with the other controls: it also turns up in mis-decoded text, where
# swallowing the rest of the line would lose what follows.
_ESCAPE_SEQUENCE = re.compile(
    "(?:\x1b\\[|\x9b)[0-?]*[ -/]*[@-~]?"
    "|\x1b[]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\\\|\x9c)?"
    "|\x1b[ -/]*[0-~]?"
)
# Relayed, the invisible characters would let one user make a line read
# differently from what was typed, or spill into the lines around it.
_INVISIBLE_CHARACTERS = re.compile(f"[{_INVISIBLE}]")


def clean_message(text: str) -> str:
    """Make a peer's text safe to relay to other people's terminals, and trim it.

    Escape sequences go whole, then every remaining control character (C0
    but TAB, DEL, C1), the line and paragraph separators, the bidirectional
    embedding, override and isolate characters and the zero-width ones;
    what is left is stripped of surrounding whitespace.
    """
    text = _ESCAPE_SEQUENCE.sub("", text)
    return _INVISIBLE_CHARACTERS.sub("", without_controls(text)).strip()
