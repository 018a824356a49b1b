from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.core.audit import AuditProvenance, AuditRecord, Decision
from controller.core.scorecard import ScorecardFold, scorecards

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)
FULL = AuditProvenance(agent="claude-code", model="m", change="sha", tests="pytest: passed")


def _rec(
    minute: float,
    decision: Decision,
    release: str,
    workload: str = "docs-web",
    lane: str = "docs",
    provenance: AuditProvenance = FULL,
) -> AuditRecord:
    return AuditRecord(
        time=T0 + timedelta(minutes=minute),
        lane=lane,
        namespace="ns",
        workload=workload,
        release=release,
        decision=decision,
        reason="x",
        provenance=provenance,
    )


def test_rates_per_lane() -> None:
    no_tests = FULL.model_copy(update={"tests": None})
    records = [
        _rec(0, Decision.RELEASE_SEEN, "a"),
        _rec(5, Decision.PROMOTED, "a"),
        _rec(20, Decision.RELEASE_SEEN, "b"),  # 15 min after a's promotion: rework
        _rec(30, Decision.ROLLED_BACK, "b"),
        _rec(40, Decision.RELEASE_SEEN, "c", workload="other", provenance=no_tests),
        _rec(50, Decision.PROMOTED, "c", workload="other"),
        _rec(200, Decision.RELEASE_SEEN, "d", workload="other"),  # long after: not rework
        _rec(0, Decision.RELEASE_SEEN, "z", lane="seo"),
    ]
    cards = scorecards(records)
    docs = cards["docs"]
    assert (docs.releases_seen, docs.promoted, docs.rolled_back) == (4, 2, 1)
    assert docs.change_failure_rate == 1 / 3
    assert docs.provenance_coverage == 3 / 4
    assert docs.rework_rate == 1 / 4
    seo = cards["seo"]
    assert seo.change_failure_rate is None  # nothing finished: unknown, not 0
    assert seo.provenance_coverage == 1.0 and seo.rework_rate == 0.0


def test_rework_window_is_configurable_and_other_workloads_do_not_count() -> None:
    records = [
        _rec(0, Decision.PROMOTED, "a"),
        _rec(90, Decision.RELEASE_SEEN, "b"),
        _rec(91, Decision.RELEASE_SEEN, "c", workload="unrelated"),
    ]
    assert scorecards(records)["docs"].rework == 0  # default window: 1 hour
    assert scorecards(records, timedelta(hours=2))["docs"].rework == 1


def test_fold_is_incremental() -> None:
    fold = ScorecardFold()
    fold.add(_rec(0, Decision.RELEASE_SEEN, "a"))
    assert fold.scorecards()["docs"].change_failure_rate is None
    fold.add(_rec(1, Decision.ROLLED_BACK, "a"))
    assert fold.scorecards()["docs"].change_failure_rate == 1.0
