"""The scorecard as people read it: one row per lane, agent and model, with intervals.

Pure: rows from track records (``controller.core.autonomy.record``); the CLI renders them
as a table or JSON. ``CANNOT_SEE`` says plainly what the cluster and the audit log do not
hold, so nobody mistakes a missing figure for a good one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from controller.core.autonomy.record import TrackRecord

CANNOT_SEE = (
    "review latency and review depth (they live in the code host, not in the cluster)",
    "incidents that were not caught by a canary (only a quick follow-up release, counted "
    "as rework, hints at them)",
    "releases deployed outside a lane",
)


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def scorecard_rows(records: Iterable[TrackRecord]) -> list[dict[str, Any]]:
    rows = []
    for rec in records:
        interval = rec.change_failure_interval()
        rows.append(
            {
                "lane": rec.lane,
                "agent": rec.agent,
                "model": rec.model,
                "releases": rec.shipped,
                "promoted": rec.promoted,
                "rolled_back": rec.rolled_back,
                "rejected": rec.rejected,
                "change_failure_rate": _rate(rec.change_failure_rate),
                "change_failure_interval": (
                    None if interval is None else [_rate(interval[0]), _rate(interval[1])]
                ),
                "rework_rate": _rate(rec.rework_rate),
                "containment": _rate(rec.containment),
                "provenance_coverage": _rate(rec.provenance_coverage),
                "median_decision_seconds": _rate(rec.median_decision_seconds),
            }
        )
    return rows


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def interval_text(row: dict[str, Any]) -> str:
    if row["change_failure_rate"] is None:
        return "-"
    low, high = row["change_failure_interval"]
    return f"{percent(row['change_failure_rate'])} [{percent(low)}, {percent(high)}]"
