"""labchat's name rules: short ASCII names, unique whatever their case."""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 24
# ASCII only, so that no two names can look alike ("Ꭺlice" and "Alice").
NAME_PATTERN = rf"[A-Za-z0-9_.-]{{1,{MAX_NAME_LENGTH}}}"
_NAME = re.compile(NAME_PATTERN)


def parse_name(text: str) -> str | None:
    """The name a login line (or /nick) asks for, or None when it breaks the rules.

    Whitespace around the name is forgiven; whitespace inside it is not.
    """
    name = text.strip()
    return name if _NAME.fullmatch(name) else None


def name_key(name: str) -> str:
    """The form under which a name is unique: ``Alice`` and ``alice`` are one name."""
    return name.lower()


def sort_names(names: list[str]) -> list[str]:
    """Names in case-insensitive alphabetical order, as every list of users shows them."""
    return sorted(names, key=name_key)
