"""On-call queries over audit records: filters, per-release summaries, one release's timeline.

Pure and streaming: everything takes an iterable of :class:`AuditRecord`. A release's summary
is handed out as soon as its outcome is final (promoted, rolled back, rejected), so only
releases still in flight are held: memory is bounded by the releases open at one time, not
by the length of the log.

With ``since``, a release is shown when it has a record in the window, and its summary is
built from its records in the window: every record carries the release's lane, workload and
provenance, and the record that decided the outcome carries the evidence.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.core.audit import AuditProvenance, AuditRecord, Decision, Evidence
from controller.core.formatting import iso_z
from controller.core.outcomes import FINAL_OUTCOMES, OUTCOME_OF, Outcome

__all__ = ["FINAL_OUTCOMES", "Outcome"]


# Records whose evidence is the reason for the outcome (as opposed to routine measurements).
_DECIDING = frozenset(
    {
        Decision.GATED,
        Decision.REJECTED,
        Decision.PAUSED,
        Decision.PROMOTING,
        Decision.PROMOTED,
        Decision.ROLLING_BACK,
        Decision.ROLLED_BACK,
        Decision.HUMAN_OVERRIDE,
    }
)

_NO_PROVENANCE = AuditProvenance()
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime) -> datetime:
    """``30m``, ``1h``, ``2d``, ``1w`` (before ``now``) or an ISO time (UTC if no offset)."""
    match = _DURATION.match(text)
    if match:
        return now - timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected a duration like 30m, 1h, 2d or an ISO time "
            "like 2025-01-31T14:00:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    lane: str | None = None
    namespace: str | None = None
    workload: str | None = None
    agent: str | None = None
    outcome: Outcome | None = None

    def admits_record(self, record: AuditRecord) -> bool:
        """Cheap per-record test (fields every record of a release shares)."""
        if self.since is not None and record.time < self.since:
            return False
        return self.lane is None or record.lane == self.lane

    def admits(self, summary: ReleaseSummary) -> bool:
        return (
            (self.namespace is None or summary.namespace == self.namespace)
            and (self.workload is None or summary.workload == self.workload)
            and (self.agent is None or summary.provenance.agent == self.agent)
            and (self.outcome is None or summary.outcome == self.outcome)
        )


@dataclass
class ReleaseSummary:
    """What on-call wants to know about one release: what, who, what happened and why."""

    release: str
    lane: str
    first_time: datetime
    last_time: datetime
    namespace: str | None = None
    workload: str | None = None
    from_images: list[str] = field(default_factory=list)
    to_images: list[str] = field(default_factory=list)
    provenance: AuditProvenance = field(default_factory=AuditProvenance)
    outcome: Outcome = Outcome.IN_PROGRESS
    reason: str = ""
    message: str = ""
    max_weight: int = 0
    records: int = 0
    deciding_evidence: list[Evidence] = field(default_factory=list)
    last_measurement: dict[str, Evidence] = field(default_factory=dict)

    @classmethod
    def start(cls, record: AuditRecord, release: str) -> ReleaseSummary:
        return cls(release=release, lane=record.lane, first_time=record.time, last_time=record.time)

    def add(self, record: AuditRecord) -> None:
        self.records += 1
        self.first_time = min(self.first_time, record.time)
        self.last_time = max(self.last_time, record.time)
        self.namespace = record.namespace or self.namespace
        self.workload = record.workload or self.workload
        self.from_images = record.from_images or self.from_images
        self.to_images = record.to_images or self.to_images
        if record.provenance != _NO_PROVENANCE:
            self.provenance = record.provenance
        if record.weight is not None:
            self.max_weight = max(self.max_weight, record.weight)
        if record.decision is Decision.MEASUREMENT:
            for evidence in record.evidence:
                self.last_measurement[evidence.check] = evidence
        outcome = OUTCOME_OF.get(record.decision)
        # A final outcome sticks: a late record (e.g. a note) must not reopen it.
        if outcome is not None and self.outcome not in FINAL_OUTCOMES:
            self.outcome = outcome
            self.reason, self.message = record.reason, record.message
        if record.decision in _DECIDING and record.evidence:
            self.deciding_evidence = list(record.evidence)

    @property
    def evidence(self) -> list[Evidence]:
        """The evidence that decided the outcome; the latest measurements until then."""
        return self.deciding_evidence or list(self.last_measurement.values())

    def as_json(self) -> dict[str, Any]:
        prov = self.provenance
        return {
            "release": self.release,
            "lane": self.lane,
            "namespace": self.namespace,
            "workload": self.workload,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "message": self.message,
            "first_time": iso_z(self.first_time),
            "last_time": iso_z(self.last_time),
            "from_images": self.from_images,
            "to_images": self.to_images,
            "max_weight": self.max_weight,
            "provenance": {
                "agent": prov.agent,
                "model": prov.model,
                "change": prov.change,
                "tests": prov.tests,
                "reviewer": prov.reviewer,
            },
            "evidence": [
                {
                    "check": e.check,
                    "canary": e.canary,
                    "baseline": e.baseline,
                    "threshold": e.threshold,
                    "statistic": e.statistic,
                    "verdict": e.verdict,
                }
                for e in self.evidence
            ],
        }


@dataclass
class LaneEvent:
    """A lane-level decision (suspended, resumed): no release, still on-call news."""

    time: datetime
    lane: str
    decision: Decision
    reason: str
    message: str
    actor: str


RECENTLY_FINAL_REMEMBERED = 10_000


def iter_summaries(
    records: Iterable[AuditRecord], flt: AuditFilter
) -> Iterator[ReleaseSummary | LaneEvent]:
    """Summaries of the releases that match, each as soon as its outcome is final (so in
    the order they finished), then those still open, by last activity; lane events as they
    come. Records that arrive for a release after its final outcome (a late note) are
    dropped rather than reopening it, for the last ``RECENTLY_FINAL_REMEMBERED`` releases."""
    open_releases: dict[str, ReleaseSummary] = {}
    recently_final: OrderedDict[str, None] = OrderedDict()
    for record in records:
        if not flt.admits_record(record):
            continue
        release = record.release
        if release is None:
            if record.decision in (Decision.LANE_SUSPENDED, Decision.LANE_RESUMED):
                yield LaneEvent(
                    record.time,
                    record.lane,
                    record.decision,
                    record.reason,
                    record.message,
                    record.actor,
                )
            continue
        summary = open_releases.get(release)
        if summary is None:
            if release in recently_final:
                continue
            summary = open_releases[release] = ReleaseSummary.start(record, release)
        summary.add(record)
        if summary.outcome in FINAL_OUTCOMES:
            del open_releases[release]
            recently_final[release] = None
            if len(recently_final) > RECENTLY_FINAL_REMEMBERED:
                recently_final.popitem(last=False)
            if flt.admits(summary):
                yield summary
    for summary in sorted(open_releases.values(), key=lambda s: s.last_time):
        if flt.admits(summary):
            yield summary


@dataclass
class QueryResult:
    releases: list[ReleaseSummary]
    lane_events: list[LaneEvent]


def summarize(records: Iterable[AuditRecord], flt: AuditFilter) -> QueryResult:
    """All of :func:`iter_summaries`, collected (for callers that want a list)."""
    releases: list[ReleaseSummary] = []
    lane_events: list[LaneEvent] = []
    for item in iter_summaries(records, flt):
        if isinstance(item, LaneEvent):
            lane_events.append(item)
        else:
            releases.append(item)
    return QueryResult(releases, lane_events)


def release_timeline(records: Iterable[AuditRecord], release: str) -> Iterator[AuditRecord]:
    """The records of one release, in log order."""
    return (record for record in records if record.release == release)


@dataclass
class CheckSeries:
    """One check's measurements over a release, for plotting."""

    check: str
    times: list[datetime] = field(default_factory=list)
    canary: list[float | None] = field(default_factory=list)
    baseline: list[float | None] = field(default_factory=list)
    threshold: list[float | None] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)


@dataclass
class ReleaseSeries:
    checks: dict[str, CheckSeries]
    decision_time: datetime | None
    decision: Decision | None


def release_series(timeline: Iterable[AuditRecord]) -> ReleaseSeries:
    """Canary, baseline and threshold per check over time, and the deciding moment (the
    first rolling_back/rolled_back/promoting/promoted/rejected record)."""
    checks: dict[str, CheckSeries] = {}
    decision_time: datetime | None = None
    decision: Decision | None = None
    for record in timeline:
        if record.decision is Decision.MEASUREMENT:
            for e in record.evidence:
                series = checks.setdefault(e.check, CheckSeries(e.check))
                series.times.append(record.time)
                series.canary.append(e.canary)
                series.baseline.append(e.baseline)
                series.threshold.append(e.threshold)
                series.verdicts.append(e.verdict)
        elif decision_time is None and record.decision in (
            Decision.ROLLING_BACK,
            Decision.ROLLED_BACK,
            Decision.PROMOTING,
            Decision.PROMOTED,
            Decision.REJECTED,
        ):
            decision_time, decision = record.time, record.decision
    return ReleaseSeries(checks, decision_time, decision)
