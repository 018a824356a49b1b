"""Earned autonomy: track records, level rules (hypothesis properties) and what the release
machine does at each level."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.core.autonomy.levels import Pin, replay
from controller.core.autonomy.record import (
    ReleaseOutcome,
    track_records,
    wilson_interval,
)
from controller.core.models import (
    AgentAutonomySpec,
    AgentStanding,
    AutonomyLevel,
    ChangeLaneStatus,
    Phase,
)
from controller.core.outcomes import Outcome
from controller.core.release_machine import CommandKind, HumanCommand, Observation
from tests.unit.test_release_machine import (
    LANE,
    OPEN,
    READY,
    T0,
    apply,
    new_release,
    passes,
)

SPEC = AgentAutonomySpec.model_validate(
    {
        "entryLevel": "supervised",
        "graduate": {"minReleases": 5, "maxChangeFailureUpper": 0.5},
        "demote": {"rollbacks": 3, "ofLast": 5},
    }
)


def outcome(
    i: int, agent: str, failed: bool, model: str = "m1", weight: int = 10
) -> ReleaseOutcome:
    seen = T0 + timedelta(minutes=10 * i)
    return ReleaseOutcome(
        lane="docs-site",
        namespace="docs",
        workload=f"w{i % 3}",
        release=f"r{i}",
        agent=agent,
        model=model,
        seen_at=seen,
        finished_at=seen + timedelta(minutes=5),
        outcome=Outcome.ROLLED_BACK if failed else Outcome.PROMOTED,
        max_weight=weight if failed else 100,
        provenance_complete=True,
    )


# ----------------------------------------------------------------------- track records


@given(st.integers(0, 200), st.integers(1, 200), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_interval_brackets_the_ratio_within_0_1(
    failures: int, trials: int, conf: float
) -> None:
    failures = min(failures, trials)
    low, high = wilson_interval(failures, trials, conf)
    assert 0.0 <= low <= failures / trials <= high <= 1.0


def test_wilson_interval_narrows_with_evidence() -> None:
    assert wilson_interval(0, 2)[1] > 0.6  # 0 of 2 proves little
    assert wilson_interval(0, 200)[1] < 0.02


def test_track_record_counts_rates_rework_and_containment() -> None:
    outcomes = [
        outcome(0, "a", failed=False),
        outcome(1, "a", failed=True, weight=10),  # contained at 10%
        outcome(2, "a", failed=True, weight=100),  # caught only at full exposure
        outcome(4, "b", failed=False),  # another workload
    ]
    # two releases of w0 right after the promotion of r0 (also w0): both rework, and r0
    # escaped (once)
    outcomes += [outcome(3, "c", failed=False)]
    outcomes.append(
        ReleaseOutcome(
            "docs-site",
            "docs",
            "w0",
            "fix",
            "b",
            "m1",
            seen_at=outcomes[0].finished_at + timedelta(minutes=1),  # type: ignore[operator]
        )
    )
    records = track_records(outcomes)
    a = records[("docs-site", "a", "m1")]
    assert (a.shipped, a.promoted, a.rolled_back) == (3, 1, 2)
    assert a.change_failure_rate == pytest.approx(2 / 3)
    low, high = a.change_failure_interval() or (0, 0)
    assert low < 2 / 3 < high
    assert (a.contained, a.escaped) == (1, 2)
    assert a.containment == pytest.approx(1 / 3)
    assert a.median_decision_seconds == 300
    b = records[("docs-site", "b", "m1")]
    assert b.rework == 1 and b.rework_rate == pytest.approx(1 / 2)
    assert b.change_failure_rate == 0.0
    assert records[("docs-site", "c", "m1")].rework == 1
    by_agent = track_records(outcomes, by_model=False)
    assert {k[1] for k in by_agent} == {"a", "b", "c"}
    assert all(k[2] is None for k in by_agent)


def test_unknown_rates_are_none_not_zero() -> None:
    inflight = ReleaseOutcome("l", "n", "w", "r", "a", "m", seen_at=T0)
    rec = track_records([inflight])[("l", "a", "m")]
    assert rec.change_failure_rate is None and rec.containment is None
    assert rec.median_decision_seconds is None and rec.change_failure_interval() is None


# ----------------------------------------------------------------------- level rules

histories = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.booleans()), max_size=40)


def _outcomes(history: list[tuple[str, bool]]) -> list[ReleaseOutcome]:
    return [outcome(i, agent, failed) for i, (agent, failed) in enumerate(history)]


@given(histories)
@settings(max_examples=300)
def test_no_graduation_without_enough_evidence(history: list[tuple[str, bool]]) -> None:
    _, changes = replay(SPEC, _outcomes(history))
    for change in changes:
        if change.to_level.rank > change.from_level.rank:
            figures = dict(change.figures)
            assert int(figures["finished"]) >= SPEC.graduate.min_releases
            assert float(figures["change_failure_upper"]) <= SPEC.graduate.max_change_failure_upper


@given(histories)
@settings(max_examples=300)
def test_a_demotion_never_touches_another_agent(history: list[tuple[str, bool]]) -> None:
    standings, _ = replay(SPEC, _outcomes(history))
    only_b = [o for o in _outcomes(history) if o.agent == "b"]
    alone, _ = replay(SPEC, only_b)
    assert standings.get(("b", "m1")) == alone.get(("b", "m1"))


@given(histories, st.sampled_from(list(AutonomyLevel)))
@settings(max_examples=200)
def test_a_pinned_level_holds_until_reset(
    history: list[tuple[str, bool]], level: AutonomyLevel
) -> None:
    pin = Pin("a", "m1", level, by="alice", at=T0 - timedelta(minutes=1))
    standings, changes = replay(SPEC, _outcomes(history), [pin])
    assert standings[("a", "m1")].level is level
    assert standings[("a", "m1")].pinned_by == "alice"
    assert [c for c in changes if c.agent == "a"][1:] == []  # only the pin itself
    reset = Pin("a", "m1", None, by="bob", at=T0 + timedelta(days=30))
    standings, _ = replay(SPEC, _outcomes(history), [pin, reset])
    assert standings[("a", "m1")].level is SPEC.entry_level
    assert standings[("a", "m1")].pinned_by is None


def test_failing_agent_is_demoted_while_the_other_graduates() -> None:
    history = [("a", True), ("b", False)] * 6
    standings, changes = replay(SPEC, _outcomes(history))
    assert standings[("a", "m1")].level is AutonomyLevel.SHADOW
    assert standings[("b", "m1")].level is AutonomyLevel.AUTONOMOUS
    demotion = next(c for c in changes if c.agent == "a")
    assert demotion.from_level is AutonomyLevel.SUPERVISED
    assert demotion.to_level is AutonomyLevel.SHADOW
    assert "3 of the last 3" in demotion.reason
    assert dict(demotion.figures)["rolled_back"] == 3


def test_one_bad_run_demotes_once_then_needs_fresh_evidence() -> None:
    spec = SPEC.model_copy(update={"entry_level": AutonomyLevel.AUTONOMOUS})
    history = [("a", True)] * 4
    _, changes = replay(spec, _outcomes(history))
    assert [(c.from_level, c.to_level) for c in changes] == [
        (AutonomyLevel.AUTONOMOUS, AutonomyLevel.SUPERVISED)
    ]


def test_a_new_model_starts_at_the_entry_level() -> None:
    good = [outcome(i, "a", False) for i in range(6)]
    standings, _ = replay(SPEC, [*good, ReleaseOutcome("l", "n", "w", "x", "a", "m2", seen_at=T0)])
    assert standings[("a", "m1")].level is AutonomyLevel.AUTONOMOUS
    assert standings[("a", "m2")].level is SPEC.entry_level


def test_contradicting_rules_are_a_validation_error_naming_the_fields() -> None:
    with pytest.raises(ValidationError) as err:
        AgentAutonomySpec.model_validate(
            {"graduate": {"maxChangeFailureUpper": 0.4}, "demote": {"rollbacks": 3, "ofLast": 10}}
        )
    text = str(err.value)
    assert "graduate.maxChangeFailureUpper" in text and "demote.rollbacks/demote.ofLast" in text
    with pytest.raises(ValidationError, match="cannot exceed ofLast"):
        AgentAutonomySpec.model_validate({"demote": {"rollbacks": 5, "ofLast": 2}})


# ----------------------------------------------------------------------- the release machine


def _lane_with(level: AutonomyLevel):  # type: ignore[no-untyped-def]
    gates = LANE.spec.gates.model_copy(update={"agent_autonomy": SPEC})
    spec = LANE.spec.model_copy(update={"gates": gates})
    status = ChangeLaneStatus(
        agents=[AgentStanding(agent="claude-code", model="claude-x", level=level)]
    )
    return LANE.model_copy(update={"spec": spec, "status": status})


def _ramp_to_end(lane, rel):  # type: ignore[no-untyped-def]
    now = T0
    apply(lane, rel, Observation(now=now, gates=OPEN))
    for _ in range(20):
        now += timedelta(minutes=3)
        step = rel.status.current_step
        obs = Observation(now=now, gates=OPEN, canary=READY, measurements=passes(step, now))
        apply(lane, rel, obs)
        if rel.status.phase is not Phase.PROGRESSING:
            break
    return now


def test_supervised_release_ramps_then_waits_for_a_human_promote() -> None:
    lane, rel = _lane_with(AutonomyLevel.SUPERVISED), new_release()
    now = _ramp_to_end(lane, rel)
    assert rel.status.phase is Phase.PAUSED
    assert rel.status.weight == 100
    assert "changelane promote" in rel.status.message
    assert rel.status.autonomy_level is AutonomyLevel.SUPERVISED
    # Nothing happens on its own...
    apply(lane, rel, Observation(now=now + timedelta(hours=1), gates=OPEN, canary=READY))
    assert rel.status.phase is Phase.PAUSED
    # ...until a human promotes.
    apply(lane, rel, Observation(now=now, command=HumanCommand(CommandKind.PROMOTE, "alice")))
    assert rel.status.phase is Phase.PROMOTING


def test_autonomous_release_promotes_on_its_own() -> None:
    lane, rel = _lane_with(AutonomyLevel.AUTONOMOUS), new_release()
    _ramp_to_end(lane, rel)
    assert rel.status.phase is Phase.PROMOTING


def test_lane_without_agent_rules_keeps_full_autonomy() -> None:
    rel = new_release()
    _ramp_to_end(LANE, rel)
    assert rel.status.autonomy_level is AutonomyLevel.AUTONOMOUS
    assert rel.status.phase is Phase.PROMOTING


def test_shadow_release_moves_nothing_until_a_human_resumes_it_then_ramps_supervised() -> None:
    lane, rel = _lane_with(AutonomyLevel.SHADOW), new_release()
    d = apply(lane, rel, Observation(now=T0, gates=OPEN))
    assert rel.status.phase is Phase.PAUSED and d.actions == ()
    assert rel.status.weight == 0 and "shadow" in rel.status.message
    apply(lane, rel, Observation(now=T0, command=HumanCommand(CommandKind.RESUME, "alice")))
    assert rel.status.autonomy_level is AutonomyLevel.SUPERVISED
    _ramp_to_end(lane, rel)
    assert rel.status.phase is Phase.PAUSED and rel.status.weight == 100


def test_level_is_fixed_when_the_release_is_first_seen() -> None:
    rel = new_release()
    apply(_lane_with(AutonomyLevel.SUPERVISED), rel, Observation(now=T0, gates=OPEN))
    # The author graduates meanwhile: this release keeps the level it started with.
    _ramp_to_end(_lane_with(AutonomyLevel.AUTONOMOUS), rel)
    assert rel.status.phase is Phase.PAUSED
