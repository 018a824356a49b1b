"""Every release ends: the evidence deadline, and metrics-backend errors that hold."""

from __future__ import annotations

from datetime import timedelta

from controller.core.models import ChangeLane, LaneRelease, Measurement, Phase, Verdict
from controller.core.release_machine import Observation, PromoteCanary, SetCanaryWeight
from tests.unit.test_release_machine import LANE, OPEN, READY, T0, apply, new_release, passes

NEEDS = "not enough evidence yet, needs ~2,300 more canary requests to rule out x2"


def lane_with(**strategy: object) -> ChangeLane:
    doc = LANE.to_wire()
    doc["spec"]["strategy"].update(strategy)
    return ChangeLane.model_validate(doc)


def measured(
    step: int, now: object, verdict: Verdict, message: str = ""
) -> tuple[Measurement, ...]:
    out = []
    for m in passes(step, now):  # type: ignore[arg-type]
        if m.check == "error-rate":
            m = m.model_copy(update={"verdict": verdict, "message": message})
        out.append(m)
    return tuple(out)


def run_until_deadline(lane: ChangeLane, verdict: Verdict, minutes: int = 40) -> LaneRelease:
    rel, now = new_release(), T0
    apply(lane, rel, Observation(now=now, gates=OPEN))
    for _ in range(minutes):
        now += timedelta(minutes=1)
        step = rel.status.current_step
        ms = measured(step, now, verdict, NEEDS) if step == 0 else passes(step, now)
        apply(lane, rel, Observation(now=now, gates=OPEN, canary=READY, measurements=ms))
        if rel.status.phase is not Phase.PROGRESSING:
            break
    return rel


def test_a_step_without_evidence_pauses_at_the_deadline_saying_what_was_needed() -> None:
    rel = run_until_deadline(lane_with(evidenceDeadline="10m"), Verdict.INCONCLUSIVE)
    assert rel.status.phase is Phase.PAUSED
    assert rel.status.weight == 10  # held where it was: no traffic change
    assert "evidenceDeadline 10m" in rel.status.message
    assert "needs ~2,300 more canary requests to rule out x2" in rel.status.message
    assert rel.status.gate_reason is None  # only a human resumes it


def test_the_lane_may_roll_back_at_the_deadline() -> None:
    lane = lane_with(evidenceDeadline="10m", onEvidenceDeadline="rollback")
    rel = run_until_deadline(lane, Verdict.INCONCLUSIVE)
    assert rel.status.phase is Phase.ROLLING_BACK and rel.status.weight == 0


def test_promote_at_the_deadline_advances_on_shortfall_only_never_on_errors() -> None:
    lane = lane_with(evidenceDeadline="10m", onEvidenceDeadline="promote")
    rel = run_until_deadline(lane, Verdict.INCONCLUSIVE, minutes=12)
    assert rel.status.phase is not Phase.PAUSED and rel.status.current_step >= 1
    assert any(r.decision.value == "step_advanced" for r in rel.status.outbox)
    errored = run_until_deadline(lane, Verdict.ERROR, minutes=12)
    assert errored.status.phase is Phase.PAUSED and errored.status.current_step == 0


def test_backend_errors_hold_without_traffic_change_and_continue_by_themselves() -> None:
    rel, now = new_release(), T0
    apply(LANE, rel, Observation(now=now, gates=OPEN))
    down = "lane docs-site, check error-rate: Prometheus failed 3 attempts: ConnectionError"
    for _ in range(20):  # ten minutes of errors at 30 s
        now += timedelta(seconds=30)
        errors = tuple(
            Measurement(check=c.name, time=now, step=0, verdict=Verdict.ERROR, message=down)
            for c in LANE.spec.analysis.checks
        )
        d = apply(LANE, rel, Observation(now=now, gates=OPEN, canary=READY, measurements=errors))
        assert rel.status.phase is Phase.PROGRESSING and rel.status.weight == 10
        assert not any(isinstance(a, SetCanaryWeight | PromoteCanary) for a in d.actions)
    weights = []
    for _ in range(12):  # the backend answers again: the release goes on by itself
        now += timedelta(minutes=3)
        step = rel.status.current_step
        d = apply(
            LANE,
            rel,
            Observation(now=now, gates=OPEN, canary=READY, measurements=passes(step, now)),
        )
        weights += [a.weight for a in d.actions if isinstance(a, SetCanaryWeight)]
        if rel.status.phase is Phase.PROMOTING:
            break
    assert weights == [50, 100] and rel.status.phase is Phase.PROMOTING
