"""When an outbox needs a clearing write of its own (``core.outbox``)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from controller.core.audit import AuditRecord, Decision
from controller.core.models import LaneReleaseStatus
from controller.core.models.release import Phase
from controller.core.outbox import QUIET_DECISIONS, clears_at_once

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _record(decision: Decision, n: int) -> AuditRecord:
    return AuditRecord(
        time=AT,
        lane="web-lane",
        namespace="shop",
        release="web-1",
        decision=decision,
        reason="r",
        actor="changelane",
        id=f"uid/{n}",
    )


statuses = st.builds(
    LaneReleaseStatus,
    phase=st.sampled_from(list(Phase)),
    current_step=st.integers(0, 3),
    weight=st.sampled_from([0, 10, 50, 100]),
    flag_weights=st.lists(st.sampled_from([0, 50, 100]), max_size=2),
)
outboxes = st.lists(st.sampled_from(list(Decision)), max_size=4).map(
    lambda ds: [_record(d, n) for n, d in enumerate(ds, 1)]
)


@given(statuses, statuses, outboxes)
def test_only_a_quiet_tick_leaves_its_outbox_to_the_next_write(
    before: LaneReleaseStatus, after: LaneReleaseStatus, outbox: list[AuditRecord]
) -> None:
    after = after.model_copy(update={"outbox": outbox})
    deferred = not clears_at_once(before, after)
    if deferred and outbox:
        assert all(r.decision in QUIET_DECISIONS for r in outbox)
        assert not after.phase.terminal
        assert (before.phase, before.current_step, before.weight, before.flag_weights) == (
            after.phase,
            after.current_step,
            after.weight,
            after.flag_weights,
        )
    if not outbox:
        assert deferred, "nothing to clear"


def test_a_measurement_at_the_same_exposure_waits_and_anything_else_clears() -> None:
    before = LaneReleaseStatus(phase=Phase.PROGRESSING, current_step=1, weight=50)
    measured = before.model_copy(update={"outbox": [_record(Decision.MEASUREMENT, 7)]})
    assert not clears_at_once(before, measured)
    stepped = measured.model_copy(update={"current_step": 2, "weight": 100})
    assert clears_at_once(before, stepped)
    advanced = measured.model_copy(
        update={"outbox": [*measured.outbox, _record(Decision.STEP_ADVANCED, 8)]}
    )
    assert clears_at_once(before, advanced)
    finished = measured.model_copy(update={"phase": Phase.ROLLED_BACK})
    assert clears_at_once(before, finished)
