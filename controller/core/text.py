"""Text from outside made safe for a status, a log line or a terminal (pure).

Annotations, lane files and flag sources are written by people and agents we do not
trust with on-call's terminal: an ESC sequence (``\\x1b[2J``), a NUL, a bidi override or a
lone surrogate (how Python carries undecodable bytes, and what ``json.loads`` makes of
``"\\ud800"``) must never reach a screen as itself. Each such character is shown as its
escape (``\\x1b``, ``\\u202e``, ``\\ud800``) so the evidence survives and cannot act.
"""

from __future__ import annotations

import unicodedata

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def unsafe_character(char: str, *, allow: str = "") -> bool:
    """Whether ``char`` must not reach a terminal as itself (control, format, surrogate,
    private-use or unassigned), unless listed in ``allow``."""
    if char in allow:
        return False
    if " " <= char <= "~":
        return False
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def first_unsafe(text: str, *, allow: str = "") -> int | None:
    """Index of the first character :func:`unsafe_character` refuses, or None."""
    for index, char in enumerate(text):
        if unsafe_character(char, allow=allow):
            return index
    return None


def printable(text: str, *, allow: str = "") -> str:
    """``text`` with every unsafe character replaced by its Python escape."""
    if first_unsafe(text, allow=allow) is None:
        return text
    out: list[str] = []
    for char in text:
        if not unsafe_character(char, allow=allow):
            out.append(char)
        elif ord(char) <= 0xFF:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)
