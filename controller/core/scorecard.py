"""Per-lane scorecard computed from audit records: is autonomy paying off in this lane?

- change-failure rate: rolled back / (promoted + rolled back), over finished releases;
- provenance coverage: releases whose provenance names the agent, model, change and tests
  evidence, over releases seen (the reviewer is lane policy, not coverage);
- rework rate: releases of a workload first seen within ``rework_window`` after a promotion
  of the same workload (a quick follow-up fix), over releases seen.

A rate with nothing to divide by is ``None`` (unknown), never 0. The fold is incremental and
streaming: feed it records as they are written, read the scorecards at any time. It keeps
counters per lane and the last promotion time per workload, nothing per release.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from controller.core.audit import AuditProvenance, AuditRecord, Decision
from controller.core.autonomy.record import COVERAGE_FIELDS

DEFAULT_REWORK_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class LaneScorecard:
    lane: str
    releases_seen: int
    promoted: int
    rolled_back: int
    provenance_complete: int
    rework: int

    @property
    def change_failure_rate(self) -> float | None:
        finished = self.promoted + self.rolled_back
        return self.rolled_back / finished if finished else None

    @property
    def provenance_coverage(self) -> float | None:
        return self.provenance_complete / self.releases_seen if self.releases_seen else None

    @property
    def rework_rate(self) -> float | None:
        return self.rework / self.releases_seen if self.releases_seen else None


def provenance_complete(provenance: AuditProvenance) -> bool:
    return all(getattr(provenance, name) for name in COVERAGE_FIELDS)


@dataclass
class _LaneCounts:
    seen: int = 0
    promoted: int = 0
    rolled_back: int = 0
    complete: int = 0
    rework: int = 0


@dataclass
class ScorecardFold:
    rework_window: timedelta = DEFAULT_REWORK_WINDOW
    _lanes: dict[str, _LaneCounts] = field(default_factory=dict)
    _last_promotion: dict[tuple[str, str | None, str], datetime] = field(default_factory=dict)

    def add(self, record: AuditRecord) -> None:
        counts = self._lanes.setdefault(record.lane, _LaneCounts())
        workload = (record.lane, record.namespace, record.workload or "")
        if record.decision is Decision.RELEASE_SEEN:
            counts.seen += 1
            counts.complete += provenance_complete(record.provenance)
            promoted_at = self._last_promotion.get(workload)
            if promoted_at is not None and (
                timedelta(0) <= record.time - promoted_at <= self.rework_window
            ):
                counts.rework += 1
        elif record.decision is Decision.PROMOTED:
            counts.promoted += 1
            if record.workload:
                self._last_promotion[workload] = record.time
        elif record.decision is Decision.ROLLED_BACK:
            counts.rolled_back += 1

    def extend(self, records: Iterable[AuditRecord]) -> ScorecardFold:
        for record in records:
            self.add(record)
        return self

    def scorecards(self) -> dict[str, LaneScorecard]:
        return {
            lane: LaneScorecard(lane, c.seen, c.promoted, c.rolled_back, c.complete, c.rework)
            for lane, c in sorted(self._lanes.items())
        }


def scorecards(
    records: Iterable[AuditRecord], rework_window: timedelta = DEFAULT_REWORK_WINDOW
) -> dict[str, LaneScorecard]:
    return ScorecardFold(rework_window).extend(records).scorecards()
