"""Every release ends: the evidence deadline, and metrics-backend errors that hold."""

from __future__ import annotations

from datetime import timedelta

from controller.core.models import ChangeLane, LaneRelease, Measurement, Phase, Verdict
from controller.core.release_machine import (
    CommandKind,
    HumanCommand,
    Observation,
    PromoteCanary,
    SetCanaryWeight,
)
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


STUCK = (
    "looks x2.40 on one canary pod; at one canary pod the test cannot tell the code from the "
    "pods (limit 2.8 sd at a ratio up to x2.60, bound 3.8): needs a step with more canary pods"
)


def held_out_of_reach(lane: ChangeLane, minutes: int = 10) -> LaneRelease:
    """Step 1 held (the canary looks beyond the MDE) and, from minute 5, out of reach."""
    rel, now = new_release(), T0
    apply(lane, rel, Observation(now=now, gates=OPEN))
    for minute in range(1, minutes + 1):
        now += timedelta(minutes=1)
        ms = measured(0, now, Verdict.INCONCLUSIVE, STUCK)
        if minute >= 5:
            ms = tuple(
                m.model_copy(update={"out_of_reach": True}) if m.check == "error-rate" else m
                for m in ms
            )
        apply(lane, rel, Observation(now=now, gates=OPEN, canary=READY, measurements=ms))
        if rel.status.phase is not Phase.PROGRESSING:
            break
    return rel


def test_evidence_out_of_reach_ends_the_step_at_once_as_the_deadline_would() -> None:
    """The one-pod step-hold: no deadline to wait for, the lane's ending (pause by
    default) applies at the first look that finds the evidence out of reach, with the
    check's message saying why and what the lane needs."""
    rel = held_out_of_reach(lane_with(evidenceDeadline="60m"))
    assert rel.status.phase is Phase.PAUSED and rel.status.weight == 10
    assert "cannot gather the evidence to pass at this exposure after 300s" in rel.status.message
    assert "needs a step with more canary pods" in rel.status.message
    paused = [c for c in rel.status.conditions if c.reason == "EvidenceOutOfReach"]
    assert paused
    record = rel.status.outbox[-1]
    assert record.decision.value == "paused" and "cannot tell the code" in record.reason


def test_out_of_reach_follows_the_lanes_deadline_action() -> None:
    lane = lane_with(evidenceDeadline="60m", onEvidenceDeadline="rollback")
    rel = held_out_of_reach(lane)
    assert rel.status.phase is Phase.ROLLING_BACK and rel.status.weight == 0
    assert "cannot gather the evidence to pass at this exposure" in rel.status.message


def test_out_of_reach_never_advances_sooner_on_a_lane_whose_deadline_promotes() -> None:
    """Fail safe: a canary that looks beyond the MDE is not moved to more traffic before
    the deadline its author accepted, however out of reach the test is."""
    lane = lane_with(evidenceDeadline="60m", onEvidenceDeadline="promote")
    rel = held_out_of_reach(lane)
    assert rel.status.phase is Phase.PROGRESSING
    assert rel.status.current_step == 0 and rel.status.weight == 10


def test_a_held_step_without_the_out_of_reach_mark_waits_for_the_deadline() -> None:
    rel, now = new_release(), T0
    lane = lane_with(evidenceDeadline="60m")
    apply(lane, rel, Observation(now=now, gates=OPEN))
    for _ in range(10):
        now += timedelta(minutes=1)
        ms = measured(0, now, Verdict.INCONCLUSIVE, STUCK)
        apply(lane, rel, Observation(now=now, gates=OPEN, canary=READY, measurements=ms))
    assert rel.status.phase is Phase.PROGRESSING and rel.status.current_step == 0


def test_after_a_resume_the_out_of_reach_step_waits_for_its_deadline() -> None:
    """A human read "needs a step with more canary pods" and resumed: the same evidence
    does not pause it again at once; the step's deadline (restarted by the resume)
    decides."""
    lane = lane_with(evidenceDeadline="20m")
    rel = held_out_of_reach(lane)
    assert rel.status.phase is Phase.PAUSED
    now = T0 + timedelta(minutes=6)
    resume = HumanCommand(CommandKind.RESUME, "alice")
    apply(lane, rel, Observation(now=now, gates=OPEN, canary=READY, command=resume))
    assert rel.status.phase is Phase.PROGRESSING
    for _ in range(10):
        now += timedelta(minutes=1)
        ms = tuple(
            m.model_copy(update={"out_of_reach": True}) if m.check == "error-rate" else m
            for m in measured(0, now, Verdict.INCONCLUSIVE, STUCK)
        )
        apply(lane, rel, Observation(now=now, gates=OPEN, canary=READY, measurements=ms))
    assert rel.status.phase is Phase.PROGRESSING and rel.status.current_step == 0
    for _ in range(12):
        now += timedelta(minutes=1)
        ms = measured(0, now, Verdict.INCONCLUSIVE, STUCK)
        apply(lane, rel, Observation(now=now, gates=OPEN, canary=READY, measurements=ms))
    assert rel.status.phase is Phase.PAUSED
    assert "without the evidence to pass" in rel.status.message
