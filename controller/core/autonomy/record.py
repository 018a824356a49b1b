"""Track records of who shipped what, and how it went, per (lane, agent[, model]).

The input is one ``ReleaseOutcome`` per release, built either from LaneRelease objects (the
controller: the cluster is the source of truth, so a restart or a new leader rebuilds the
same records) or from audit records (``changelane scorecard`` over an audit log). Figures:

* change-failure rate = rolled back / (promoted + rolled back), with a Wilson score
  interval: a bare ratio of 1/1 says nothing, its interval says so;
* rework rate = releases of a workload first seen within ``rework_window`` after a
  promotion of the same workload (a quick follow-up fix), over releases shipped;
* containment = regressions caught by the canary below full exposure, over all regressions
  seen: rollbacks at any exposure plus promotions that were reworked within the window
  (the proxy for a regression found after promotion; the controller cannot see incidents);
* provenance coverage = releases whose provenance names agent, model, change and tests;
* time to decision = from first seen to promoted or rolled back (median).

Unknown rates are ``None``, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import NormalDist, median

from controller.core.audit_query import ReleaseSummary
from controller.core.models import LaneRelease
from controller.core.outcomes import Outcome

DEFAULT_REWORK_WINDOW = timedelta(hours=1)
UNKNOWN_AGENT = "unknown"


@dataclass(frozen=True)
class ReleaseOutcome:
    lane: str
    namespace: str
    workload: str
    release: str
    agent: str
    model: str
    seen_at: datetime
    finished_at: datetime | None = None
    outcome: Outcome = Outcome.IN_PROGRESS
    max_weight: int = 0
    provenance_complete: bool = False

    @property
    def finished(self) -> bool:
        return self.outcome in (Outcome.PROMOTED, Outcome.ROLLED_BACK)


def wilson_interval(failures: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when there are no trials."""
    if trials <= 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = failures / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # At p = 0 or 1 the exact bound is 0 or 1; rounding must not move it inside.
    low = 0.0 if failures == 0 else max(0.0, centre - half)
    high = 1.0 if failures == trials else min(1.0, centre + half)
    return (low, high)


@dataclass(frozen=True)
class TrackRecord:
    lane: str
    agent: str
    model: str | None  # None: every model of the agent
    shipped: int
    promoted: int
    rolled_back: int
    rejected: int
    rework: int
    contained: int
    escaped: int
    provenance_complete: int
    decision_seconds: tuple[float, ...] = ()

    @property
    def finished(self) -> int:
        return self.promoted + self.rolled_back

    @property
    def change_failure_rate(self) -> float | None:
        return self.rolled_back / self.finished if self.finished else None

    def change_failure_interval(self, confidence: float = 0.95) -> tuple[float, float] | None:
        return (
            wilson_interval(self.rolled_back, self.finished, confidence) if self.finished else None
        )

    @property
    def rework_rate(self) -> float | None:
        return self.rework / self.shipped if self.shipped else None

    @property
    def containment(self) -> float | None:
        regressions = self.contained + self.escaped
        return self.contained / regressions if regressions else None

    @property
    def provenance_coverage(self) -> float | None:
        return self.provenance_complete / self.shipped if self.shipped else None

    @property
    def median_decision_seconds(self) -> float | None:
        return median(self.decision_seconds) if self.decision_seconds else None


Key = tuple[str, str, str | None]


@dataclass
class _Counts:
    shipped: int = 0
    promoted: int = 0
    rolled_back: int = 0
    rejected: int = 0
    rework: int = 0
    contained: int = 0
    escaped: int = 0
    complete: int = 0
    decision_seconds: list[float] = field(default_factory=list)


def track_records(
    outcomes: Iterable[ReleaseOutcome],
    *,
    by_model: bool = True,
    rework_window: timedelta = DEFAULT_REWORK_WINDOW,
    since: datetime | None = None,
) -> dict[Key, TrackRecord]:
    """Fold outcomes into records keyed (lane, agent, model), or (lane, agent, None) with
    ``by_model=False``. Releases first seen before ``since`` are not counted, but their
    promotions still mark later releases of the workload as rework."""
    counts: dict[Key, _Counts] = {}
    ordered = sorted(outcomes, key=lambda o: (o.seen_at, o.release))
    # Per workload: when it was last promoted, by whom, and whether that promotion was
    # already counted as escaped (a promotion escapes once, however often it is reworked).
    last_promotion: dict[tuple[str, str, str], tuple[datetime, Key, list[bool]]] = {}
    for o in ordered:
        key: Key = (o.lane, o.agent, o.model if by_model else None)
        workload = (o.lane, o.namespace, o.workload)
        counted = since is None or o.seen_at >= since
        c = counts.setdefault(key, _Counts()) if counted else _Counts()
        previous = last_promotion.get(workload)
        if previous is not None and timedelta(0) <= o.seen_at - previous[0] <= rework_window:
            c.rework += 1
            _, promoter, escaped = previous
            if promoter in counts and not escaped[0]:
                counts[promoter].escaped += 1
                escaped[0] = True
        c.shipped += 1
        c.complete += o.provenance_complete
        if o.outcome is Outcome.PROMOTED and o.finished_at is not None:
            c.promoted += 1
            last_promotion[workload] = (o.finished_at, key, [False])
        elif o.outcome is Outcome.ROLLED_BACK:
            c.rolled_back += 1
            if o.max_weight < 100:
                c.contained += 1
            else:
                c.escaped += 1
        elif o.outcome is Outcome.REJECTED:
            c.rejected += 1
        if o.finished and o.finished_at is not None:
            c.decision_seconds.append(max(0.0, (o.finished_at - o.seen_at).total_seconds()))
    return {
        key: TrackRecord(
            key[0],
            key[1],
            key[2],
            c.shipped,
            c.promoted,
            c.rolled_back,
            c.rejected,
            c.rework,
            c.contained,
            c.escaped,
            c.complete,
            tuple(c.decision_seconds),
        )
        for key, c in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or ""))
    }


#: Provenance fields a release must name to count as covered (the reviewer is lane
#: policy, not coverage).
COVERAGE_FIELDS = ("agent", "model", "change", "tests")


def outcome_of_release(release: LaneRelease) -> ReleaseOutcome:
    """A LaneRelease as the track records read it (the cluster is the source of truth)."""
    p, s, m = release.spec.provenance, release.status, release.metadata
    seen = m.creation_timestamp or s.started_at or s.finished_at
    return ReleaseOutcome(
        lane=release.spec.lane,
        namespace=release.spec.target.namespace,
        workload=release.spec.target.name,
        release=m.uid or f"{m.namespace}/{m.name}",
        agent=p.agent or UNKNOWN_AGENT,
        model=p.model or UNKNOWN_AGENT,
        seen_at=seen or datetime.min.replace(tzinfo=UTC),
        finished_at=s.finished_at,
        outcome=_FINAL_BY_PHASE.get(s.phase.value, Outcome.IN_PROGRESS),
        max_weight=s.max_weight_reached,
        provenance_complete=all(getattr(p, name) for name in COVERAGE_FIELDS),
    )


_FINAL_BY_PHASE = {o.value: o for o in (Outcome.PROMOTED, Outcome.ROLLED_BACK, Outcome.REJECTED)}


def outcome_of_summary(summary: ReleaseSummary) -> ReleaseOutcome:
    """A release as the audit log tells it (``changelane scorecard --file``)."""
    p = summary.provenance
    final = summary.outcome in _FINAL_BY_PHASE.values()
    return ReleaseOutcome(
        lane=summary.lane,
        namespace=summary.namespace or "",
        workload=summary.workload or "",
        release=summary.release,
        agent=p.agent or UNKNOWN_AGENT,
        model=p.model or UNKNOWN_AGENT,
        seen_at=summary.first_time,
        finished_at=summary.last_time if final else None,
        outcome=summary.outcome if final else Outcome.IN_PROGRESS,
        max_weight=summary.max_weight,
        provenance_complete=all(getattr(p, name) for name in COVERAGE_FIELDS),
    )
