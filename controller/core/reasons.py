"""Short, human reasons from long error texts.

A pause or error reason is read in a status line, a notification and an Event: it should
say which check, what failed and what happens next, in one line. The full text (with the
PromQL, decoded) stays in the measurement's message for the detail view.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

#: Known failure phrases, most specific first: (pattern in the raw text, short phrase).
_KNOWN: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), phrase)
    for pattern, phrase in (
        (r"connection refused", "connection refused"),
        (r"timed? ?out", "timed out"),
        (r"name or service not known|nodename nor servname|name resolution", "host not found"),
        (r"connection reset", "connection reset"),
        (r"remote end closed|remotedisconnected", "connection closed by the server"),
        (r"ssl|certificate", "TLS error"),
    )
)
_PROMETHEUS = re.compile(r"\bprometheus\b", re.IGNORECASE)
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_LOCATION = re.compile(r"^lane [^,]+, check [^:]+: ")
MAX_REASON = 160


def decode_promql(text: str) -> str:
    """URL-encoded PromQL (as HTTP clients quote it in errors) back to what was written."""
    return unquote_plus(text) if "%" in text else text


def short_problem(text: str) -> str:
    """One short phrase for an error text: "Prometheus unreachable: connection refused",
    "Prometheus answered HTTP 503", or the text itself without URLs, cut to a line."""
    body = _LOCATION.sub("", text.strip())
    about_prometheus = bool(_PROMETHEUS.search(body))
    for pattern, phrase in _KNOWN:
        if pattern.search(body):
            return f"Prometheus unreachable: {phrase}" if about_prometheus else phrase
    status = _HTTP_STATUS.search(body)
    if status and about_prometheus:
        rejected = "rejected the query" if status.group(1).startswith("4") else "failed"
        return f"Prometheus {rejected} (HTTP {status.group(1)})"
    plain = _URL.sub("<url>", body.splitlines()[0] if body else "")
    return plain if len(plain) <= MAX_REASON else plain[: MAX_REASON - 3] + "..."
