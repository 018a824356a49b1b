"""Replay one past release through the controller's own decision path (pure).

The controller's path, tick by tick at the lane's interval: ``judge`` each check on the
sample the metrics adapter would have returned (rebuilt by :class:`SeriesPlan`), then
``release_machine.decide`` with those measurements. Nothing here judges anything itself;
it only reads the phase the release machine reached.

What history cannot say is assumed in the release's favour so that the analysis alone is
tested: gates pass (provenance, kill switch and windows are not replayed), the canary is
ready, promotion and rollback complete at the next tick. A release whose queries return
no point at all is ``no_data`` and never replayed, so it can never look like a pass; one
that runs out of history or stops for a human (a pause) is ``undecided``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from controller.backtest.releases import PastRelease
from controller.backtest.series import SeriesPlan, Timeline, has_points
from controller.core.analysis import analysis_window_seconds, judge
from controller.core.audit import Evidence
from controller.core.gates import GateReport, GateResult
from controller.core.models import ChangeLane, LaneRelease, Measurement, Phase, parse_duration
from controller.core.release_machine import (
    CanaryObservation,
    Observation,
    decide,
    evidence_of,
)

#: History says nothing about gates; the backtest judges the analysis alone.
GATES_OPEN = GateReport((GateResult("backtest", True, "gates are not replayed"),))
_READY = CanaryObservation(desired_replicas=1, ready_replicas=1)


class Outcome(StrEnum):
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    UNDECIDED = "undecided"
    NO_DATA = "no_data"


@dataclass(frozen=True)
class Tick:
    """One analysis tick: what was measured and the phase the machine reached."""

    time: datetime
    step: int
    weight: int
    phase: Phase
    measurements: tuple[Measurement, ...]


@dataclass(frozen=True)
class ReplayResult:
    release: PastRelease
    outcome: Outcome
    decided_at: datetime | None
    step: int | None
    reason: str
    evidence: tuple[Evidence, ...]
    ticks: tuple[Tick, ...] = ()

    @property
    def decided_after_s(self) -> float | None:
        if self.decided_at is None:
            return None
        return (self.decided_at - self.release.start).total_seconds()


def interval_seconds(lane: ChangeLane) -> int:
    return max(1, int(parse_duration(lane.spec.analysis.interval)))


def grid(moment: datetime, interval_s: int) -> int:
    """``moment`` rounded up to the interval grid (epoch seconds), so every release and
    every range query share the same points."""
    epoch = int(moment.timestamp())
    return -(-epoch // interval_s) * interval_s


def replay(
    lane: ChangeLane,
    release: PastRelease,
    plan: SeriesPlan,
    data: Mapping[str, Timeline],
) -> ReplayResult:
    """What the lane would have done with ``release``, given the fetched history."""
    interval = plan.interval_s
    start, end = grid(release.start, interval), int(release.end.timestamp())
    if not plan.problems and not has_points(data, [f.query for f in plan.fetches], start, end):
        return ReplayResult(
            release,
            Outcome.NO_DATA,
            None,
            None,
            "no data: none of the lane's queries returned a point between "
            f"{release.start.isoformat()} and {release.end.isoformat()}",
            (),
        )
    record = _lane_release(lane, release)
    now = start
    decision = decide(lane, record, Observation(now=_at(now), gates=GATES_OPEN, canary=_READY))
    record.status = decision.status
    ticks: list[Tick] = []
    last: tuple[Measurement, ...] = ()
    checks = lane.spec.analysis.checks
    while now + interval <= end:
        now += interval
        status = record.status
        measurements: tuple[Measurement, ...] = ()
        step = lane.spec.strategy.steps[status.current_step]
        if status.phase is Phase.PROGRESSING and step.analysis:
            assert status.step_started_at is not None
            window = analysis_window_seconds(status.step_started_at, _at(now))
            # Exactly as the controller's analyzer: sequential checks carry their
            # interval-level evidence in the check's status from one tick to the next.
            carried = {c.name: c.evidence for c in status.checks}
            final = status.current_step == len(lane.spec.strategy.steps) - 1
            measurements = tuple(
                judge(
                    check,
                    plan.sample(check, now, window, data),
                    step=status.current_step,
                    now=_at(now),
                    evidence=carried.get(check.name),
                    final_step=final,
                )
                for check in checks
            )
            last = measurements or last
        before = status.phase
        decision = decide(
            lane,
            record,
            Observation(
                now=_at(now),
                gates=GATES_OPEN,
                canary=_READY,
                measurements=measurements,
                promotion_complete=before is Phase.PROMOTING,
                rollback_complete=before is Phase.ROLLING_BACK,
            ),
        )
        record.status = decision.status
        s = record.status
        ticks.append(Tick(_at(now), s.current_step, s.weight, s.phase, measurements))
        evidence = tuple(evidence_of(m) for m in last)
        if s.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK):
            reason = s.rollback_reason or s.message
            return ReplayResult(
                release, Outcome.ROLLBACK, _at(now), s.current_step, reason, evidence, tuple(ticks)
            )
        if s.phase in (Phase.PROMOTING, Phase.PROMOTED):
            return ReplayResult(
                release,
                Outcome.PROMOTE,
                _at(now),
                s.current_step,
                s.message,
                evidence,
                tuple(ticks),
            )
        if s.phase is Phase.PAUSED:
            return ReplayResult(
                release,
                Outcome.UNDECIDED,
                None,
                s.current_step,
                f"would have waited for a human: {s.message}",
                evidence,
                tuple(ticks),
            )
    return ReplayResult(
        release,
        Outcome.UNDECIDED,
        None,
        record.status.current_step,
        f"history ended at {release.end.isoformat()} before a decision "
        f"(step {record.status.current_step + 1}/{len(lane.spec.strategy.steps)})",
        tuple(evidence_of(m) for m in last),
        tuple(ticks),
    )


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _lane_release(lane: ChangeLane, release: PastRelease) -> LaneRelease:
    stamp = release.start.strftime("%Y%m%dt%H%M%S")
    return LaneRelease.model_validate(
        {
            "metadata": {
                "name": f"backtest-{release.workload}-{stamp}"[:253],
                "namespace": release.namespace,
                "generation": 1,
            },
            "spec": {
                "lane": lane.name,
                "target": {"name": release.workload, "namespace": release.namespace},
                "from": {"podTemplateHash": release.from_revision or None},
                "to": {"podTemplateHash": release.to_revision or None},
                "provenance": {"agent": "backtest"},
            },
        }
    )
