"""``json.loads`` with a nesting limit checked before parsing (pure).

The standard parser recurses once per level: ``'{"":' * 1024`` raises ``RecursionError``
(not ``ValueError``), which escaped every ``except ValueError`` that guarded it. The depth
is counted with one linear scan first, so hostile nesting costs one pass over the text.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class JsonRefusedError(ValueError):
    """The text is not JSON we accept; the message says why."""


def nesting_depth(text: str) -> int:
    """Deepest ``[``/``{`` nesting outside string literals (malformed text counts as is)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parsed JSON; raises :class:`JsonRefusedError` (a ``ValueError``) on anything else,
    including NaN/Infinity literals, which are not JSON."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise JsonRefusedError(f"not UTF-8 (byte {err.start})") from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise JsonRefusedError(f"nested {depth} levels deep; expected at most {max_depth}")

    def refuse_constant(name: str) -> Any:
        raise JsonRefusedError(f"{name} is not JSON")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except JsonRefusedError:
        raise
    except (ValueError, RecursionError) as err:
        raise JsonRefusedError(str(err)) from None
