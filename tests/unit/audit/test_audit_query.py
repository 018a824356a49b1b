from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from controller.core import audit_query
from controller.core.audit import AuditProvenance, AuditRecord, Decision, Evidence
from controller.core.audit_query import (
    AuditFilter,
    Outcome,
    ReleaseSummary,
    iter_summaries,
    parse_since,
    release_series,
    summarize,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FAIL = Evidence(check="error-rate", verdict="Fail", canary=0.1, baseline=0.004, threshold=0.02)
PASS = Evidence(check="error-rate", verdict="Pass", canary=0.004, baseline=0.004, threshold=0.02)


def _rec(minute: int, decision: Decision, release: str = "r1", **kw: object) -> AuditRecord:
    fields: dict[str, object] = {
        "lane": "docs-site",
        "namespace": "docs",
        "workload": "docs-web",
        "provenance": AuditProvenance(agent="claude-code"),
        "reason": decision.value,
    }
    fields.update(kw)
    return AuditRecord(
        time=T0 + timedelta(minutes=minute),
        release=release,
        decision=decision,
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", T0 - timedelta(minutes=30)),
        ("1h", T0 - timedelta(hours=1)),
        ("2d", T0 - timedelta(days=2)),
        (" 1w ", T0 - timedelta(weeks=1)),
        ("45s", T0 - timedelta(seconds=45)),
        ("2025-02-28T10:00:00Z", datetime(2025, 2, 28, 10, tzinfo=UTC)),
        ("2025-02-28T10:00:00", datetime(2025, 2, 28, 10, tzinfo=UTC)),
        (
            "2025-02-28T10:00:00+02:00",
            datetime(2025, 2, 28, 10, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    assert parse_since(text, T0) == expected


@pytest.mark.parametrize("text", ["", "1y", "h", "-1h", "soon"])
def test_parse_since_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_since(text, T0)


def test_rollback_summary_carries_the_deciding_evidence_and_reason() -> None:
    records = [
        _rec(0, Decision.RELEASE_SEEN),
        _rec(1, Decision.STARTED),
        _rec(2, Decision.MEASUREMENT, evidence=[PASS], weight=10),
        _rec(3, Decision.MEASUREMENT, evidence=[FAIL], weight=25),
        _rec(4, Decision.ROLLING_BACK, evidence=[FAIL], message="error-rate 0.1 > 0.02"),
        _rec(5, Decision.ROLLED_BACK, reason="CheckFailed", message="error-rate 0.1 > 0.02"),
        _rec(6, Decision.HUMAN_OVERRIDE, reason="Acknowledged", actor="alice"),
    ]
    # One summary: the late note neither reopens the release nor starts a second one.
    (summary,) = summarize(records, AuditFilter()).releases
    assert summary.outcome is Outcome.ROLLED_BACK
    assert (summary.reason, summary.message) == ("CheckFailed", "error-rate 0.1 > 0.02")
    assert summary.evidence == [FAIL]
    assert summary.max_weight == 25 and summary.records == 6
    assert summary.as_json()["evidence"] == [
        {
            "check": "error-rate",
            "canary": 0.1,
            "baseline": 0.004,
            "threshold": 0.02,
            "statistic": None,
            "verdict": "Fail",
        }
    ]


def test_in_progress_release_shows_its_latest_measurements() -> None:
    later = PASS.model_copy(update={"canary": 0.005})
    records = [
        _rec(0, Decision.STARTED),
        _rec(1, Decision.MEASUREMENT, evidence=[PASS]),
        _rec(2, Decision.MEASUREMENT, evidence=[later]),
    ]
    (summary,) = summarize(records, AuditFilter()).releases
    assert summary.outcome is Outcome.IN_PROGRESS and summary.evidence == [later]


def test_filters_apply_to_releases() -> None:
    records = [
        _rec(0, Decision.PROMOTED, "old"),
        _rec(50, Decision.ROLLED_BACK, "a", provenance=AuditProvenance(agent="codex")),
        _rec(51, Decision.PROMOTED, "b", lane="seo", workload="seo-meta"),
        _rec(52, Decision.GATED, "c", namespace="web"),
    ]

    def names(**kw: object) -> list[str]:
        return [s.release for s in summarize(records, AuditFilter(**kw)).releases]  # type: ignore[arg-type]

    assert names() == ["old", "a", "b", "c"]
    assert names(since=T0 + timedelta(minutes=30)) == ["a", "b", "c"]
    assert names(lane="seo") == ["b"]
    assert names(workload="seo-meta") == ["b"]
    assert names(namespace="web") == ["c"]
    assert names(agent="codex") == ["a"]
    assert names(outcome=Outcome.GATED) == ["c"]


def test_release_series_collects_measurements_and_the_decision_point() -> None:
    records = [
        _rec(1, Decision.MEASUREMENT, evidence=[PASS]),
        _rec(2, Decision.MEASUREMENT, evidence=[FAIL]),
        _rec(3, Decision.ROLLING_BACK, evidence=[FAIL]),
        _rec(4, Decision.ROLLED_BACK),
    ]
    series = release_series(records)
    check = series.checks["error-rate"]
    assert check.canary == [0.004, 0.1] and check.threshold == [0.02, 0.02]
    assert check.verdicts == ["Pass", "Fail"]
    assert (series.decision, series.decision_time) == (Decision.ROLLING_BACK, records[2].time)


def test_finished_releases_come_out_before_the_log_ends() -> None:
    consumed: list[int] = []

    def stream() -> Iterator[AuditRecord]:
        for n, record in enumerate(
            [
                _rec(0, Decision.STARTED, "a"),
                _rec(1, Decision.STARTED, "b"),
                _rec(2, Decision.PROMOTED, "a"),
                _rec(3, Decision.MEASUREMENT, "b"),
            ]
        ):
            consumed.append(n)
            yield record

    items = iter_summaries(stream(), AuditFilter())
    first = next(items)
    assert isinstance(first, ReleaseSummary) and first.release == "a"
    assert consumed == [0, 1, 2]  # handed out at its final record, not at the end
    (rest,) = list(items)
    assert isinstance(rest, ReleaseSummary) and rest.release == "b"
    assert rest.outcome is Outcome.IN_PROGRESS


def test_query_memory_does_not_grow_with_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.bench.audit_history import generate_history

    # The only per-release memory is the bounded list of recently finished ids; shrink it
    # so both sizes below are past the bound.
    monkeypatch.setattr(audit_query, "RECENTLY_FINAL_REMEMBERED", 50)

    def peak(n: int) -> int:
        tracemalloc.start()
        try:
            for _ in iter_summaries(generate_history(n, end=T0), AuditFilter()):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(1000), peak(10_000)
    assert large < small * 1.5, (small, large)
