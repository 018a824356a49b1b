"""What the lane gates need from a lane's releases, and what a new release carries (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from controller.core import labels
from controller.core.models import LaneRelease, Phase
from controller.core.provenance_annotations import provenance_from_annotations

IN_FLIGHT = frozenset({Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING, Phase.ROLLING_BACK})
FINISHED = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK})
#: A passing gate result that reports a broken flag source (last good definitions in use).
FLAG_SOURCE = "flagSource"
FLAG_ANNOTATION = labels.FLAG


def finished_outcomes(releases: Iterable[LaneRelease], resumed_at: datetime | None) -> list[str]:
    """Outcomes (phases) of the finished releases, oldest first, that count against the
    autonomy budget: those that finished after the lane was last resumed."""
    finished = sorted(
        (r for r in releases if r.status.phase in FINISHED and r.status.finished_at),
        key=lambda r: r.status.finished_at or datetime.min.replace(tzinfo=UTC),
    )
    return [
        r.status.phase.value
        for r in finished
        if resumed_at is None or (r.status.finished_at and r.status.finished_at > resumed_at)
    ]


def release_spec_from_template(template: dict[str, Any]) -> dict[str, Any]:
    """Provenance (and the flag to ramp) for a new LaneRelease, from pod-template
    annotations. Parsing never raises; every problem is kept for the gate to report."""
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    parsed = provenance_from_annotations(annotations)
    out: dict[str, Any] = {
        "provenance": parsed.provenance.to_wire(),
        "provenanceProblems": [
            {k: v for k, v in {"key": p.key, "message": p.message, "field": p.field}.items() if v}
            for p in parsed.problems
        ],
    }
    flag = annotations.get(FLAG_ANNOTATION)
    if isinstance(flag, str) and 0 < len(flag) <= 253 and flag.isprintable():
        out["flag"] = {"key": flag}
    return out
