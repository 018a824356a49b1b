"""The Prometheus stand-in's answer to a grouped query: one series per listed value.

A query aggregated ``by (app, track)`` whose matchers list the values (``app=~"a|b"``)
gets one series per combination, labelled as Prometheus would label them. Anything else
(a query for one release, ``by (le)`` inside ``histogram_quantile``) is not grouped.
"""

from __future__ import annotations

import itertools
import re

_BY = re.compile(r"\bby\s*\(([^)]*)\)")
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"')


def _values(pattern: str) -> list[str]:
    """``a|b|c`` or ``^(?:a|b|c)$`` (regex-escaped values joined with ``|``, as
    ``controller.core.promql.literal_alternation`` renders a set) -> the values."""
    if pattern.startswith("^(?:") and pattern.endswith(")$"):
        pattern = pattern[4:-2]
    return [re.sub(r"\\(.)", r"\1", v) for v in re.split(r"(?<!\\)\|", pattern) if v]


def grouped_series(promql: str) -> list[dict[str, str]] | None:
    labels = [
        name.strip()
        for group in _BY.findall(promql)
        for name in group.split(",")
        if name.strip() and name.strip() != "le"
    ]
    if not labels:
        return None
    found: dict[str, list[str]] = {}
    for name, op, value in _MATCHER.findall(promql):
        if name in labels and name not in found:
            found[name] = _values(value.replace("\\\\", "\\")) if op == "=~" else [value]
    names = [n for n in dict.fromkeys(labels) if n in found]
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(found[n] for n in names))
    ]
