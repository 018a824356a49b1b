"""Regression onset to rollback, and bounded rollback reason classes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.core.audit import AuditRecord, Decision, Evidence
from controller.core.detection import (
    ROLLBACK_REASON_CLASSES,
    RegressionOnsets,
    rollback_reason_class,
)

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FAIL = "critical check errors Fail: canary=0.3, threshold=0.05, statistic value=0.3"


def rec(
    second: float,
    decision: Decision,
    *,
    step: int = 0,
    verdict: str | None = None,
    reason: str = "x",
    actor: str = "controller",
    release: str = "r1",
) -> AuditRecord:
    evidence = [Evidence(check="errors", verdict=verdict)] if verdict else []
    return AuditRecord(
        time=T0 + timedelta(seconds=second),
        lane="docs",
        namespace="ns",
        release=release,
        decision=decision,
        reason=reason,
        step=step,
        evidence=evidence,
        actor=actor,
    )


def caught(records: list[AuditRecord]) -> list[float]:
    onsets = RegressionOnsets()
    return [c.seconds for c in (onsets.add(r) for r in records) if c is not None]


def test_detection_runs_from_the_start_of_the_step_that_rolled_back_to_the_decision() -> None:
    records = [
        rec(0, Decision.STARTED),
        rec(10, Decision.MEASUREMENT, verdict="Fail"),  # an earlier step: forgotten
        rec(20, Decision.STEP_ADVANCED, step=1),  # onset: the canary serves at step 2 from here
        rec(30, Decision.MEASUREMENT, step=1, verdict="Inconclusive"),
        rec(40, Decision.MEASUREMENT, step=1, verdict="Pass"),
        rec(50, Decision.MEASUREMENT, step=1, verdict="Fail"),
        rec(60, Decision.MEASUREMENT, step=1, verdict="Fail"),
        rec(60, Decision.ROLLING_BACK, step=1, reason=f"{FAIL}; failures 2 > failureLimit 1"),
        rec(64, Decision.ROLLED_BACK, step=1, reason=FAIL),
    ]
    assert caught(records) == [40.0]


def test_a_critical_first_fail_is_not_caught_in_zero_seconds() -> None:
    records = [
        rec(0, Decision.STARTED),
        rec(41, Decision.MEASUREMENT, verdict="Fail"),
        rec(41, Decision.ROLLING_BACK, reason=FAIL),
        rec(43, Decision.ROLLED_BACK, reason=FAIL),
    ]
    assert caught(records) == [41.0]


def test_without_the_step_start_the_first_fail_is_the_estimated_onset() -> None:
    errors = "check errors Error: Prometheus unreachable; consecutive errors 3 > 2"
    records = [
        rec(5, Decision.MEASUREMENT, verdict="Error"),
        rec(10, Decision.MEASUREMENT, verdict="Error"),
        rec(10, Decision.ROLLING_BACK, reason=errors),
        rec(12, Decision.ROLLED_BACK, reason=errors),
    ]
    assert caught(records) == [5.0]


def test_a_resume_starts_the_step_afresh() -> None:
    records = [
        rec(0, Decision.MEASUREMENT, verdict="Fail"),
        rec(1, Decision.PAUSED),
        rec(100, Decision.RESUMED, actor="alice"),
        rec(110, Decision.MEASUREMENT, verdict="Fail"),
        rec(110, Decision.ROLLING_BACK, reason=FAIL),
        rec(113, Decision.ROLLED_BACK, reason=FAIL),
    ]
    assert caught(records) == [10.0]


@pytest.mark.parametrize(
    ("reason", "actor"),
    [
        ("aborted by alice", "alice"),
        ("canary is crash-looping: CrashLoopBackOff: Error", "controller"),
        ("canary not ready after 31s (progressDeadline 30s)", "controller"),
    ],
)
def test_rollbacks_without_a_measured_regression_are_not_timed(reason: str, actor: str) -> None:
    records = [
        rec(0, Decision.MEASUREMENT, verdict="Fail"),
        rec(5, Decision.ROLLING_BACK, reason=reason, actor=actor),
        rec(8, Decision.ROLLED_BACK, reason=reason),
    ]
    assert caught(records) == []


def test_releases_are_followed_apart_and_forgotten_when_finished() -> None:
    onsets = RegressionOnsets(max_releases=2)
    assert onsets.add(rec(0, Decision.MEASUREMENT, verdict="Fail", release="a")) is None
    assert onsets.add(rec(1, Decision.MEASUREMENT, verdict="Pass", release="b")) is None
    onsets.add(rec(2, Decision.ROLLING_BACK, reason=FAIL, release="a"))
    done = onsets.add(rec(4, Decision.ROLLED_BACK, reason=FAIL, release="a"))
    assert done is not None and done.release == "a" and done.seconds == 2.0
    onsets.add(rec(5, Decision.PROMOTED, release="b"))
    assert onsets._releases == {}


@pytest.mark.parametrize(
    ("reason", "actor", "expected"),
    [
        (FAIL, "controller", "analysis_failed"),
        ("check latency Fail: canary=3; failures 3 > failureLimit 2", "controller",
         "analysis_failed"),
        ("check errors Error: x; consecutive errors 5 > consecutiveErrorLimit 4", "controller",
         "analysis_error"),
        ("check errors Inconclusive: x; inconclusive 4 in a row", "controller", "inconclusive"),
        ("canary is crash-looping: CrashLoopBackOff", "controller", "crash_loop"),
        ("canary not ready after 40s (progressDeadline 30s)", "controller", "progress_deadline"),
        ("autonomy switched off: killSwitch: off", "controller", "autonomy_off"),
        ("aborted by alice (bad deploy)", "alice", "aborted"),
        ("aborted by changelane (superseded by another pod template)", "changelane", "superseded"),
        ("something new", "controller", "other"),
    ],
)  # fmt: skip
def test_rollback_reason_classes(reason: str, actor: str, expected: str) -> None:
    assert rollback_reason_class(reason, actor) == expected
    assert expected in ROLLBACK_REASON_CLASSES
