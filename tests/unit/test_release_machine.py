"""The release state machine: scenario tests and hypothesis properties over random runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.gates import GateReport, GateResult
from controller.core.models import ChangeLane, LaneRelease, Measurement, Phase, Verdict
from controller.core.release_machine import (
    MEASUREMENT_HISTORY,
    CanaryObservation,
    CommandKind,
    DisableFlag,
    HumanCommand,
    Observation,
    PromoteCanary,
    ReleaseDecision,
    SetCanaryWeight,
    SetFlagWeight,
    decide,
    inconsistency,
)

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def load_lane(name: str = "docs-site", **gates: object) -> ChangeLane:
    doc = yaml.safe_load((REPO / "lanes" / f"{name}.yaml").read_text())
    doc["spec"]["gates"].update(gates)
    return ChangeLane.model_validate(doc)


LANE = load_lane()
FLAG_LANE = load_lane("seo-metadata", mode="enforce")
CHECKS = [c.name for c in LANE.spec.analysis.checks]
ALL_CHECKS = CHECKS + [c.name for c in FLAG_LANE.spec.analysis.checks]
CRITICAL = {c.name for c in LANE.spec.analysis.checks if c.critical}
LAST_STEP = len(LANE.spec.strategy.steps) - 1


def new_release(flag: bool = False) -> LaneRelease:
    spec: dict[str, object] = {
        "lane": "docs-site",
        "target": {"name": "docs", "namespace": "docs"},
        "from": {"podTemplateHash": "aaa", "images": ["docs:1"]},
        "to": {"podTemplateHash": "bbb", "images": ["docs:2"]},
        "provenance": {"agent": "claude-code", "model": "claude-x", "change": "abc123"},
    }
    if flag:
        spec["flag"] = {"key": "new-seo"}
        spec["lane"] = "seo-metadata"
    return LaneRelease.model_validate(
        {"metadata": {"name": "docs-bbb", "namespace": "docs", "generation": 1}, "spec": spec}
    )


OPEN = GateReport((GateResult("killSwitch", True),))
KILL_OFF = GateReport((GateResult("killSwitch", False, "flag is off"),))
WINDOW_CLOSED = GateReport((GateResult("changeWindow", False, "outside window"),))
REJECT = GateReport((GateResult("provenance", False, "missing model", permanent=True),))
READY = CanaryObservation(desired_replicas=2, ready_replicas=2)


def passes(step: int, now: datetime) -> tuple[Measurement, ...]:
    return tuple(
        Measurement(check=c, time=now, step=step, verdict=Verdict.PASS, canary=0.0) for c in CHECKS
    )


def apply(lane: ChangeLane, release: LaneRelease, obs: Observation) -> ReleaseDecision:
    d = decide(lane, release, obs)
    release.status = d.status
    return d


def test_happy_path_promotes_after_every_step_passes() -> None:
    rel, now = new_release(), T0
    d = apply(LANE, rel, Observation(now=now, gates=OPEN))
    assert rel.status.phase is Phase.PROGRESSING
    assert d.actions == (SetCanaryWeight(10),)
    weights = [10]
    for _ in range(20):
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
    assert weights == [10, 50, 100]
    assert d.actions == (PromoteCanary(),)
    d = apply(LANE, rel, Observation(now=now, promotion_complete=True))
    assert rel.status.phase is Phase.PROMOTED
    assert rel.status.finished_at == now
    assert [r.decision.value for r in d.records] == ["promoted"]


def test_critical_fail_rolls_back_at_once_naming_value_and_threshold() -> None:
    rel = new_release()
    apply(LANE, rel, Observation(now=T0, gates=OPEN))
    bad = Measurement(
        check="error-rate",
        time=T0,
        step=0,
        verdict=Verdict.FAIL,
        canary=0.041,
        baseline=0.009,
        threshold=0.02,
        statistic="msprt p=0.003",
    )
    d = apply(
        LANE, rel, Observation(now=T0 + timedelta(seconds=30), canary=READY, measurements=(bad,))
    )
    assert rel.status.phase is Phase.ROLLING_BACK
    assert d.actions == (SetCanaryWeight(0),)
    reason = rel.status.rollback_reason or ""
    assert "error-rate" in reason and "0.041" in reason and "0.02" in reason
    assert "msprt p=0.003" in reason
    d = apply(LANE, rel, Observation(now=T0 + timedelta(seconds=35), rollback_complete=True))
    assert rel.status.phase is Phase.ROLLED_BACK


def test_flag_goes_off_before_replicas_on_rollback() -> None:
    rel = new_release(flag=True)
    d = apply(FLAG_LANE, rel, Observation(now=T0, gates=OPEN))
    assert d.actions == (SetFlagWeight(1),)  # flag-only lane: no canary replicas
    d = apply(FLAG_LANE, rel, Observation(now=T0, command=HumanCommand(CommandKind.ABORT, "alice")))
    assert d.actions[0] == DisableFlag()
    assert rel.status.phase is Phase.ROLLING_BACK


def test_rejected_release_never_moves_traffic() -> None:
    rel = new_release()
    d = apply(LANE, rel, Observation(now=T0, gates=REJECT))
    assert rel.status.phase is Phase.REJECTED
    assert d.actions == ()
    assert [r.decision.value for r in d.records] == ["release_seen", "rejected"]
    assert "missing model" in d.records[-1].reason


def test_gated_release_waits_and_then_starts() -> None:
    rel = new_release()
    d = apply(LANE, rel, Observation(now=T0, gates=WINDOW_CLOSED))
    assert rel.status.phase is Phase.GATED and d.actions == ()
    again = apply(LANE, rel, Observation(now=T0 + timedelta(seconds=5), gates=WINDOW_CLOSED))
    assert again.records == ()  # same reason: no duplicate record
    d = apply(LANE, rel, Observation(now=T0 + timedelta(minutes=1), gates=OPEN))
    assert rel.status.phase is Phase.PROGRESSING and d.actions == (SetCanaryWeight(10),)


def test_crash_loop_and_progress_deadline_roll_back() -> None:
    rel = new_release()
    apply(LANE, rel, Observation(now=T0, gates=OPEN))
    crash = CanaryObservation(2, 0, crash_reason="CrashLoopBackOff: exit 1")
    apply(LANE, rel, Observation(now=T0 + timedelta(seconds=10), canary=crash))
    assert rel.status.phase is Phase.ROLLING_BACK
    assert "CrashLoopBackOff" in (rel.status.rollback_reason or "")

    rel = new_release()
    apply(LANE, rel, Observation(now=T0, gates=OPEN))
    slow = CanaryObservation(2, 1)
    apply(LANE, rel, Observation(now=T0 + timedelta(minutes=4), canary=slow))
    assert rel.status.phase is Phase.PROGRESSING
    apply(LANE, rel, Observation(now=T0 + timedelta(minutes=6), canary=slow))
    assert rel.status.phase is Phase.ROLLING_BACK
    assert "progressDeadline" in (rel.status.rollback_reason or "")


def test_autonomy_off_pauses_and_resumes_when_back_on() -> None:
    rel = new_release()
    apply(LANE, rel, Observation(now=T0, gates=OPEN))
    apply(LANE, rel, Observation(now=T0 + timedelta(seconds=10), gates=KILL_OFF, canary=READY))
    assert rel.status.phase is Phase.PAUSED and rel.status.weight == 10
    apply(LANE, rel, Observation(now=T0 + timedelta(seconds=20), gates=OPEN))
    assert rel.status.phase is Phase.PROGRESSING


def test_human_promote_is_recorded_as_override() -> None:
    rel = new_release()
    apply(LANE, rel, Observation(now=T0, gates=OPEN))
    d = apply(LANE, rel, Observation(now=T0, command=HumanCommand(CommandKind.PROMOTE, "bob")))
    assert rel.status.phase is Phase.PROMOTING
    assert rel.status.human_override == "promoted by bob"
    assert d.records[0].actor == "bob" and d.records[0].decision.value == "human_override"


# --------------------------------------------------------------------------- properties


@dataclass(frozen=True)
class Tick:
    seconds: int
    gates: GateReport | None
    canary: CanaryObservation | None
    verdicts: tuple[tuple[str, Verdict, bool], ...]  # check, verdict, stale step?
    promotion_complete: bool
    rollback_complete: bool
    command: HumanCommand | None


gates_st = st.sampled_from([None, OPEN, OPEN, OPEN, KILL_OFF, WINDOW_CLOSED, REJECT])
canary_st = st.sampled_from(
    [None, READY, READY, CanaryObservation(2, 1), CanaryObservation(2, 0, "OOMKilled")]
)
verdict_st = st.tuples(
    st.sampled_from(ALL_CHECKS),
    st.sampled_from(
        [
            Verdict.PASS,
            Verdict.PASS,
            Verdict.PASS,
            Verdict.FAIL,
            Verdict.ERROR,
            Verdict.INCONCLUSIVE,
        ]
    ),
    st.booleans(),
)
command_st = st.one_of(
    st.none(),
    st.none(),
    st.none(),
    st.none(),
    st.builds(HumanCommand, st.sampled_from(list(CommandKind)), st.just("alice")),
)
random_tick_st = st.builds(
    Tick,
    seconds=st.integers(0, 400),
    gates=gates_st,
    canary=canary_st,
    verdicts=st.lists(verdict_st, max_size=3).map(tuple),
    promotion_complete=st.booleans(),
    rollback_complete=st.booleans(),
    command=command_st,
)
# Healthy ticks (gates open, canary ready, every check passing) let runs get deep into
# the ramp and reach promotion, where the interesting properties live.
healthy_tick_st = st.builds(
    Tick,
    seconds=st.integers(30, 200),
    gates=st.sampled_from([None, OPEN]),
    canary=st.just(READY),
    verdicts=st.just(tuple((c, Verdict.PASS, False) for c in ALL_CHECKS)),
    promotion_complete=st.booleans(),
    rollback_complete=st.just(False),
    command=st.just(None),
)
tick_st = st.one_of(healthy_tick_st, healthy_tick_st, healthy_tick_st, random_tick_st)


def observation(tick: Tick, rel: LaneRelease, now: datetime) -> Observation:
    step = rel.status.current_step
    ms = tuple(
        Measurement(check=c, time=now, step=step - 1 if stale else step, verdict=v, canary=1.0)
        for c, v, stale in tick.verdicts
    )
    return Observation(
        now=now,
        gates=tick.gates,
        canary=tick.canary,
        measurements=ms,
        promotion_complete=tick.promotion_complete,
        rollback_complete=tick.rollback_complete,
        command=tick.command,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tick_st, min_size=1, max_size=40), st.booleans())
def test_properties_over_random_runs(ticks: list[Tick], use_flag_lane: bool) -> None:
    lane = FLAG_LANE if use_flag_lane else LANE
    rel, now = new_release(flag=use_flag_lane), T0
    max_weight = lane.spec.strategy.max_weight
    for tick in ticks:
        now += timedelta(seconds=tick.seconds)
        obs = observation(tick, rel, now)
        before = rel.status.model_copy(deep=True)
        d = decide(lane, rel, obs)

        # Same state and inputs twice: the same decision (restart safety).
        assert decide(lane, rel, obs) == d

        # Terminal phases are absorbing: no change, no action.
        if before.phase.terminal:
            assert d.status == before and d.actions == () and d.records == ()

        # Weight never exceeds the lane's maximum.
        weights = [a.weight for a in d.actions if isinstance(a, SetCanaryWeight | SetFlagWeight)]
        assert all(0 <= w <= max_weight for w in weights)
        assert 0 <= d.status.weight <= max_weight

        # Nothing moves while gated or before the gates let the release through.
        if d.status.phase in (Phase.GATED, Phase.PENDING, Phase.REJECTED):
            assert not any(w > 0 for w in weights)
            assert d.status.weight == 0

        # Promotion needs a Pass from every check at full exposure, or a recorded human.
        entered_promoting = before.phase not in (
            Phase.PROMOTING,
            Phase.PROMOTED,
        ) and d.status.phase in (
            Phase.PROMOTING,
            Phase.PROMOTED,
        )
        if entered_promoting and d.status.human_override is None:
            assert d.status.current_step == len(lane.spec.strategy.steps) - 1
            assert d.status.weight == max_weight
            passed = {
                c.name
                for c in d.status.checks
                if c.last_step == d.status.current_step and c.last_verdict is Verdict.PASS
            }
            assert passed == {c.name for c in lane.spec.analysis.checks}
        if d.status.phase is Phase.PROMOTED and before.phase is not Phase.PROMOTED:
            assert before.phase is Phase.PROMOTING or d.status.human_override

        # A failed critical check at the current step always leads to rollback.
        critical = {c.name for c in lane.spec.analysis.checks if c.critical}
        failed_critical = any(
            m.verdict is Verdict.FAIL and m.check in critical and m.step == before.current_step
            for m in obs.measurements
        )
        if before.phase is Phase.PROGRESSING and failed_critical and obs.command is None:
            assert d.status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)

        # The machine never produces a status its own consistency check rejects.
        assert inconsistency(lane, d.status) is None, inconsistency(lane, d.status)

        # Every transition is recorded.
        if d.status.phase is not before.phase:
            assert d.records and d.records[-1].phase_to == d.status.phase.value

        rel.status = d.status


def test_records_are_numbered_and_kept_in_the_outbox_until_flushed() -> None:
    rel = new_release()
    d1 = apply(LANE, rel, Observation(now=T0, gates=OPEN))
    assert [r.id for r in d1.records] == ["docs/docs-bbb/1", "docs/docs-bbb/2"]
    assert rel.status.outbox == list(d1.records)
    rel.status.outbox = []  # the runtime flushed them to the sinks
    d2 = apply(LANE, rel, Observation(now=T0, command=HumanCommand(CommandKind.PAUSE, "eve")))
    assert [r.id for r in d2.records] == ["docs/docs-bbb/3"]
    assert rel.status.record_seq == 3


def test_a_resume_clears_the_paused_message() -> None:
    rel = new_release()
    apply(LANE, rel, Observation(now=T0, gates=OPEN, canary=READY))
    apply(LANE, rel, Observation(now=T0, command=HumanCommand(CommandKind.PAUSE, "eve")))
    assert rel.status.message.startswith("paused:")
    apply(LANE, rel, Observation(now=T0, command=HumanCommand(CommandKind.RESUME, "eve")))
    assert rel.status.phase.value == "Progressing"
    assert rel.status.message == f"step 1/{LAST_STEP + 1}: canary at {rel.status.weight}%"


# --------------------------------------------------------------------------- impossible states


def test_hand_edited_step_beyond_the_lane_rolls_back_naming_the_field() -> None:
    rel = new_release()
    apply(LANE, rel, Observation(now=T0, gates=OPEN))
    rel.status.current_step = 7
    d = apply(LANE, rel, Observation(now=T0, gates=OPEN, canary=READY, measurements=passes(7, T0)))
    assert rel.status.phase is Phase.ROLLING_BACK and rel.status.weight == 0
    assert SetCanaryWeight(0) in d.actions and PromoteCanary() not in d.actions
    invalid = next(c for c in rel.status.conditions if c.type == "InvalidState")
    assert invalid.status.value == "True" and "status.currentStep" in invalid.message
    assert "status.currentStep" in d.records[-1].reason


def test_promoting_that_no_analysis_earned_is_not_carried_out() -> None:
    rel = new_release()
    apply(LANE, rel, Observation(now=T0, gates=OPEN))
    rel.status.phase = Phase.PROMOTING  # edited by hand at step 0
    d = apply(LANE, rel, Observation(now=T0, promotion_complete=True))
    assert rel.status.phase is Phase.ROLLING_BACK
    assert PromoteCanary() not in d.actions
    assert any(
        c.type == "InvalidState" and "status.phase" in c.message for c in rel.status.conditions
    )


def test_weight_above_the_lanes_maximum_is_invalid() -> None:
    small = LANE.model_copy(deep=True)
    small.spec.strategy.steps = small.spec.strategy.steps[:1]
    rel = new_release()
    apply(small, rel, Observation(now=T0, gates=OPEN))
    rel.status.weight = rel.status.max_weight_reached = 100
    problem = inconsistency(small, rel.status)
    assert problem is not None and problem.field == "status.weight"


_STEPS = len(LANE.spec.strategy.steps)
status_st = st.fixed_dictionaries(
    {
        "phase": st.sampled_from([p for p in Phase if not p.terminal]),
        "currentStep": st.integers(-2, _STEPS + 2),
        "weight": st.integers(0, 100),
        "maxWeightReached": st.integers(0, 100),
        "startedAt": st.one_of(st.none(), st.just(T0.isoformat())),
        "stepStartedAt": st.one_of(st.none(), st.just(T0.isoformat())),
        "humanOverride": st.one_of(st.none(), st.just("promoted by bob")),
        "recordSeq": st.integers(1, 5),
        "checks": st.lists(
            st.builds(
                lambda name, step, verdict, passes: {
                    "name": name,
                    "lastStep": step,
                    "lastVerdict": verdict.value,
                    "passesAtStep": passes,
                },
                st.sampled_from(CHECKS),
                st.integers(0, _STEPS),
                st.sampled_from(list(Verdict)),
                st.integers(0, 2),
            ),
            max_size=len(CHECKS),
            unique_by=lambda c: c["name"],
        ),
    }
)


@settings(max_examples=400, deadline=None)
@given(status_st, st.sampled_from([None, OPEN, KILL_OFF]), st.sampled_from([None, READY]))
def test_any_stored_status_ends_safe(
    wire: dict[str, object], gates: GateReport | None, canary: CanaryObservation | None
) -> None:
    """Whatever a status says, the decision is consistent, promotes only what was earned,
    and an impossible status rolls back (canary to zero, primary untouched) with an
    InvalidState condition naming the field."""
    rel = new_release()
    rel.status = type(rel.status).model_validate(wire)
    problem = inconsistency(LANE, rel.status)
    d = decide(LANE, rel, Observation(now=T0, gates=gates, canary=canary, promotion_complete=True))
    assert inconsistency(LANE, d.status) is None
    if PromoteCanary() in d.actions or d.status.phase is Phase.PROMOTED:
        s = d.status if d.status.phase is not Phase.PROMOTED else rel.status
        earned = s.current_step == _STEPS - 1 and all(
            any(
                c.name == name and c.last_step == s.current_step and c.last_verdict is Verdict.PASS
                for c in s.checks
            )
            for name in CHECKS
        )
        assert earned or s.human_override is not None
    if problem is not None:
        assert d.status.phase is Phase.ROLLING_BACK and d.status.weight == 0
        assert PromoteCanary() not in d.actions
        assert SetCanaryWeight(0) in d.actions
        invalid = [c for c in d.status.conditions if c.type == "InvalidState"]
        assert invalid and problem.field in invalid[0].message


def test_set_condition_moves_the_transition_time_only_when_the_status_flips() -> None:
    from datetime import UTC, datetime

    from controller.core.models import Condition, ConditionStatus
    from controller.core.models.common import set_condition

    def cond(status: ConditionStatus, minute: int, reason: str = "R") -> Condition:
        when = datetime(2026, 1, 1, 12, minute, tzinfo=UTC)
        return Condition(type="Ready", status=status, reason=reason, last_transition_time=when)

    other = Condition(
        type="Other",
        status=ConditionStatus.TRUE,
        reason="X",
        last_transition_time=datetime.now(UTC),
    )
    first = set_condition([other], cond(ConditionStatus.TRUE, 0))
    same = set_condition(first, cond(ConditionStatus.TRUE, 5, reason="Again"))
    flipped = set_condition(same, cond(ConditionStatus.FALSE, 9))
    assert [c.type for c in flipped] == ["Other", "Ready"]
    assert same[1].reason == "Again" and same[1].last_transition_time.minute == 0
    assert flipped[1].last_transition_time.minute == 9
    kept = set_condition(first, cond(ConditionStatus.TRUE, 5), keep_transition_time=False)
    assert kept[1].last_transition_time.minute == 5


def test_deciding_leaves_its_input_and_keeps_a_bounded_history() -> None:
    rel, now = new_release(), T0
    apply(LANE, rel, Observation(now=now, gates=OPEN))
    for _ in range(MEASUREMENT_HISTORY):  # more than the history keeps, in one step
        now += timedelta(seconds=1)
        measured = passes(rel.status.current_step, now)
        apply(LANE, rel, Observation(now=now, gates=OPEN, canary=READY, measurements=measured))
    assert len(rel.status.measurements) == MEASUREMENT_HISTORY
    stored = rel.status.model_dump()
    now += timedelta(seconds=1)
    measured = passes(rel.status.current_step, now)
    d = decide(LANE, rel, Observation(now=now, gates=OPEN, canary=READY, measurements=measured))
    assert rel.status.model_dump() == stored  # the input's history is untouched
    assert d.status.measurements is not rel.status.measurements
    assert d.status.phase is Phase.PROGRESSING and d.status.measurements[-1].time == now
    assert len(d.status.measurements) == MEASUREMENT_HISTORY
