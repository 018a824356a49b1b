"""events.k8s.io/v1 Events are a view of core/v1 Events: one storage, two shapes."""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]

# events.k8s.io/v1 field -> core/v1 field
_RENAMES = {
    "regarding": "involvedObject",
    "note": "message",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}
_SAME = (
    "metadata",
    "reason",
    "type",
    "action",
    "eventTime",
    "series",
    "related",
    "reportingInstance",
)


def to_core(obj: JsonDict) -> JsonDict:
    out: JsonDict = {"apiVersion": "v1", "kind": "Event"}
    for key in _SAME:
        if key in obj:
            out[key] = obj[key]
    for new, old in _RENAMES.items():
        if new in obj:
            out[old] = obj[new]
    out.setdefault("involvedObject", {})
    return out


def from_core(obj: JsonDict) -> JsonDict:
    out: JsonDict = {"apiVersion": "events.k8s.io/v1", "kind": "Event"}
    for key in _SAME:
        if key in obj:
            out[key] = obj[key]
    for new, old in _RENAMES.items():
        if old in obj:
            out[new] = obj[old]
    return out


def core_field(path: str) -> str:
    """A field selector written against events.k8s.io/v1 names, in core/v1 names."""
    head, _, rest = path.partition(".")
    if head in _RENAMES:
        return _RENAMES[head] + ("." + rest if rest else "")
    return path
