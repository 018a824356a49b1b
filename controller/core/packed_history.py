"""A release's measurement history as the informer caches it: packed, unpacked on a read.

Every replica caches every LaneRelease, and each carries up to 20 measurements
(``status.measurements``). As parsed JSON each costs about 810 bytes of dicts, floats and
strings (12.4 MiB for 1,000 full histories, sixth session); only a release's own
reconcile reads them, once per change. So the cache keeps them as their JSON, deflated
(20 measurements repeat their keys, check names and query text: about 9 KB of JSON
deflates to about 560 bytes), and the parse of a whole release unpacks them first.
Pure: the bytes are made and read here, nothing is written anywhere.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]
HISTORY = "measurements"


@dataclass(frozen=True)
class PackedHistory:
    """``status.measurements`` as deflated JSON; equal when the history is."""

    deflated: bytes

    def unpack(self) -> Any:
        return json.loads(zlib.decompress(self.deflated))


def packed(obj: JsonDict) -> JsonDict:
    """``obj`` with its status's measurement history packed (the status is a new dict;
    nothing of ``obj`` is changed in place). A history that is not a list is left as it
    is: the reconcile reports it as it arrived."""
    status = obj.get("status")
    if not isinstance(status, dict):
        return obj
    history = status.get(HISTORY)
    if not isinstance(history, list) or not history:
        return obj
    text = json.dumps(history, separators=(",", ":"), ensure_ascii=False)
    deflated = PackedHistory(zlib.compress(text.encode("utf-8"), 1))
    return {**obj, "status": {**status, HISTORY: deflated}}


def unpacked(obj: JsonDict) -> JsonDict:
    """``obj`` as the API server sent it: its history a list again (a new status dict;
    the cached copy stays packed)."""
    status = obj.get("status")
    if not isinstance(status, dict):
        return obj
    history = status.get(HISTORY)
    if not isinstance(history, PackedHistory):
        return obj
    return {**obj, "status": {**status, HISTORY: history.unpack()}}
