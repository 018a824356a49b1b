"""A release's measurement history and outbox as the informer caches them: packed,
unpacked on a read.

Every replica caches every LaneRelease, and each carries up to 20 measurements
(``status.measurements``). As parsed JSON each costs about 810 bytes of dicts, floats and
strings (12.4 MiB for 1,000 full histories, sixth session); only a release's own
reconcile reads them, once per change. The outbox is the same kind of field: between two
quiet ticks it holds the last measurement's audit record (``core.outbox``), about 2 KB of
JSON with its evidence, read only by the release's own reconcile (to replay it) and by
retention (whether it is empty). So the cache keeps both as their JSON, deflated (20
measurements repeat their keys, check names and query text: about 9 KB of JSON deflates
to about 560 bytes), and the parse of a whole release unpacks them first.
Pure: the bytes are made and read here, nothing is written anywhere.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]
HISTORY = "measurements"
OUTBOX = "outbox"
#: The status fields the cache keeps packed.
PACKED_FIELDS = (HISTORY, OUTBOX)


@dataclass(frozen=True)
class PackedField:
    """A packed status field (``status.measurements`` or ``status.outbox``) as deflated
    JSON; equal when the field is."""

    deflated: bytes

    def unpack(self) -> Any:
        return json.loads(zlib.decompress(self.deflated))


def packed(obj: JsonDict) -> JsonDict:
    """``obj`` with its status's measurement history and outbox packed (the status is a
    new dict; nothing of ``obj`` is changed in place). A field that is not a non-empty
    list is left as it is: the reconcile reports a bad one as it arrived."""
    status = obj.get("status")
    if not isinstance(status, dict):
        return obj
    fields = [f for f in PACKED_FIELDS if isinstance(status.get(f), list) and status[f]]
    if not fields:
        return obj
    out = dict(status)
    for field in fields:
        text = json.dumps(status[field], separators=(",", ":"), ensure_ascii=False)
        out[field] = PackedField(zlib.compress(text.encode("utf-8"), 1))
    return {**obj, "status": out}


def unpacked(obj: JsonDict) -> JsonDict:
    """``obj`` as the API server sent it: its history and outbox lists again (a new status
    dict; the cached copy stays packed)."""
    status = obj.get("status")
    if not isinstance(status, dict):
        return obj
    fields = [f for f in PACKED_FIELDS if isinstance(status.get(f), PackedField)]
    if not fields:
        return obj
    return {**obj, "status": {**status, **{f: status[f].unpack() for f in fields}}}
