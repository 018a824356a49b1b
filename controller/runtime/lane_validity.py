"""A ChangeLane the API accepted but the controller cannot use: said on the lane itself.

The CRD's schema and validation rules refuse what they can express; what gets past them
(a rule the API server version does not enforce, a lane written before a rule existed)
used to be only a "skipped" line in the controller's log. It now gets ``Ready=False`` with
reason :data:`INVALID_REASON` naming every problem, and a Warning Event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from controller.core.text import printable
from controller.lanefiles import explain, field_path

JsonDict = dict[str, Any]
INVALID_REASON = "InvalidSpec"
MAX_PROBLEMS = 5


def invalid_lane_message(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = [f"{field_path(e['loc'])}: {explain(e)}" for e in errors[:MAX_PROBLEMS]]
    more = len(errors) - MAX_PROBLEMS
    if more > 0:
        parts.append(f"and {more} more")
    return printable("; ".join(parts) + "; the controller skips this lane")[:4000]


def ready_false_conditions(raw: JsonDict, message: str, now: datetime) -> list[JsonDict] | None:
    """The lane's conditions with ``Ready=False``, or None when they already say so."""
    status = raw.get("status") if isinstance(raw.get("status"), dict) else {}
    current = [
        c for c in (status or {}).get("conditions") or [] if isinstance(c, dict) and c.get("type")
    ]
    ready = next((c for c in current if c.get("type") == "Ready"), None)
    if ready is not None and (ready.get("status"), ready.get("message")) == ("False", message):
        return None
    condition: JsonDict = {
        "type": "Ready",
        "status": "False",
        "reason": INVALID_REASON,
        "message": message,
        "lastTransitionTime": (
            ready.get("lastTransitionTime")
            if ready is not None and ready.get("status") == "False"
            else now.strftime("%Y-%m-%dT%H:%M:%SZ")
        ),
    }
    generation = (raw.get("metadata") or {}).get("generation")
    if isinstance(generation, int):
        condition["observedGeneration"] = generation
    return [c for c in current if c.get("type") != "Ready"] + [condition]
