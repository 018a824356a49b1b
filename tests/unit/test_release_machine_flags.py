"""The release machine with an observed feature flag, and in shadow mode."""

from __future__ import annotations

from datetime import timedelta

from controller.core.models import Measurement, Phase, Verdict
from controller.core.release_machine import FlagObservation, Observation, SetFlagWeight
from tests.unit.test_release_machine import FLAG_LANE, OPEN, T0, apply, load_lane, new_release

SHADOW_FLAG_LANE = load_lane("seo-metadata", mode="shadow")


def test_flag_weights_are_recorded_once_seen_in_force_and_gate_the_step() -> None:
    rel = new_release(flag=True)
    d = apply(FLAG_LANE, rel, Observation(now=T0, gates=OPEN))
    assert d.actions == (SetFlagWeight(1),)
    assert rel.status.flag_weights == []  # decided, not yet applied
    later = T0 + timedelta(minutes=5)
    # Still at 0%: the step does not count, nothing is recorded.
    apply(FLAG_LANE, rel, Observation(now=later, gates=OPEN, flag=FlagObservation(0)))
    assert rel.status.flag_weights == [] and rel.status.current_step == 0
    apply(FLAG_LANE, rel, Observation(now=later, gates=OPEN, flag=FlagObservation(1)))
    assert rel.status.flag_weights == [1]


def test_flag_not_in_force_rolls_back_after_the_progress_deadline() -> None:
    rel = new_release(flag=True)
    apply(FLAG_LANE, rel, Observation(now=T0, gates=OPEN))
    late = T0 + timedelta(minutes=11)
    apply(FLAG_LANE, rel, Observation(now=late, gates=OPEN, flag=FlagObservation(None)))
    assert rel.status.phase is Phase.ROLLING_BACK
    assert (rel.status.rollback_reason or "").startswith("flag not at 1% after")


def test_someone_elses_flag_edit_pauses_until_a_human_resumes() -> None:
    rel = new_release(flag=True)
    apply(FLAG_LANE, rel, Observation(now=T0, gates=OPEN))
    edit = "ConfigMap web/seo-flags: flag 'new-seo' was edited by someone else mid-ramp"
    d = apply(FLAG_LANE, rel, Observation(now=T0, gates=OPEN, flag=FlagObservation(30, edit)))
    assert rel.status.phase is Phase.PAUSED
    progressing = next(c for c in rel.status.conditions if c.type == "Progressing")
    assert progressing.reason == "FlagEdited" and edit in progressing.message
    assert [r.decision.value for r in d.records] == ["paused"]
    assert not d.actions  # nothing written over the edit
    # Gates passing again does not resume it: only a human does.
    apply(FLAG_LANE, rel, Observation(now=T0 + timedelta(minutes=1), gates=OPEN))
    assert rel.status.phase is Phase.PAUSED


def test_shadow_records_what_would_have_happened() -> None:
    rel = new_release(flag=True)
    d = apply(SHADOW_FLAG_LANE, rel, Observation(now=T0, gates=OPEN))
    assert d.shadow
    assert rel.status.phase is Phase.PROGRESSING  # the hypothetical phase
    assert {r.decision.value for r in d.records} == {"shadow"}
    assert d.records[-1].reason.startswith("would have started the canary")
    assert rel.status.message.startswith("shadow: would have started the canary")
    shadow = next(c for c in rel.status.conditions if c.type == "Shadow")
    assert shadow.status.value == "True"


def test_a_rollback_on_the_tick_that_first_sees_the_flag_still_records_the_exposure() -> None:
    # Under load the first reconcile that sees the flag in force can also be the one that
    # judges the first failing measurement: the status must still say the flag reached 1%.
    rel = new_release(flag=True)
    apply(FLAG_LANE, rel, Observation(now=T0, gates=OPEN))
    later = T0 + timedelta(seconds=30)
    bad = Measurement(
        check="render-errors",
        time=later,
        step=0,
        verdict=Verdict.FAIL,
        canary=0.2,
        baseline=0.01,
        threshold=0.02,
        statistic="msprt p=0.001",
    )
    obs = Observation(now=later, gates=OPEN, flag=FlagObservation(1), measurements=(bad,))
    apply(FLAG_LANE, rel, obs)
    assert rel.status.phase is Phase.ROLLING_BACK
    assert rel.status.flag_weights == [1]
