"""Check policy: counters, limits, actions, and the reason a human reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controller.core.analysis import Outcome, apply_measurement, worst
from controller.core.models import AnalysisCheck, CheckStatus, Measurement, Verdict

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def check(**fields: Any) -> AnalysisCheck:
    return AnalysisCheck.model_validate(
        {"name": "latency", "kind": "threshold", "query": "up", "threshold": 0.25, **fields}
    )


def m(verdict: Verdict, step: int = 0, **fields: Any) -> Measurement:
    return Measurement(check="latency", time=NOW, step=step, verdict=verdict, **fields)


def feed(c: AnalysisCheck, verdicts: list[Verdict], step: int = 0) -> list[Outcome]:
    status = CheckStatus(name=c.name)
    outcomes = []
    for v in verdicts:
        status, outcome, _ = apply_measurement(c, status, m(v, step))
        outcomes.append(outcome)
    return outcomes


def test_defaults_first_fail_rolls_back_with_values_threshold_and_statistic() -> None:
    c = check()
    status, outcome, reason = apply_measurement(
        c,
        CheckStatus(name="latency"),
        m(
            Verdict.FAIL,
            canary=0.31,
            threshold=0.25,
            statistic="value 0.31 > limit 0.25",
            message="latency 0.31 canary > limit 0.25",
        ),
    )
    assert outcome is Outcome.ROLLBACK
    assert status.failures == 1
    for part in (
        "check latency",
        "canary=0.31",
        "threshold=0.25",
        "statistic value 0.31 > limit 0.25",
    ):
        assert part in reason


def test_failure_limit_holds_then_applies_its_action() -> None:
    c = check(failureLimit=2, onFailureLimit="pause")
    fails = [Verdict.FAIL, Verdict.PASS, Verdict.FAIL, Verdict.FAIL]
    assert feed(c, fails) == [Outcome.HOLD, Outcome.CONTINUE, Outcome.HOLD, Outcome.PAUSE]


def test_the_default_error_limit_holds_a_backend_outage_for_twenty_minutes() -> None:
    c = check()  # consecutiveErrorLimit 40: 20 minutes at 30 s
    assert feed(c, [Verdict.ERROR] * 40) == [Outcome.HOLD] * 40
    assert feed(c, [Verdict.ERROR] * 41)[-1] is Outcome.PAUSE


def test_critical_rolls_back_at_once_whatever_the_limit() -> None:
    c = check(failureLimit=5, critical=True)
    assert feed(c, [Verdict.FAIL]) == [Outcome.ROLLBACK]


def test_errors_hold_then_pause_after_consecutive_limit_and_reset_on_data() -> None:
    c = check(consecutiveErrorLimit=4)  # onErrorLimit pause (the default)
    errors = [Verdict.ERROR] * 4
    assert feed(c, [*errors, Verdict.ERROR]) == [Outcome.HOLD] * 4 + [Outcome.PAUSE]
    assert Outcome.PAUSE not in feed(c, [*errors, Verdict.INCONCLUSIVE, *errors])


def test_inconclusive_counts_in_a_row_per_step() -> None:
    c = check(inconclusiveLimit=2, onInconclusiveLimit="rollback")
    status = CheckStatus(name="latency")
    outcomes = []
    for step in (0, 0, 1, 1, 1):
        status, outcome, _ = apply_measurement(c, status, m(Verdict.INCONCLUSIVE, step))
        outcomes.append(outcome)
    assert outcomes == [Outcome.HOLD] * 4 + [Outcome.ROLLBACK]
    assert status.inconclusive == 5 and status.consecutive_inconclusive == 3


def test_passes_count_per_step() -> None:
    c = check()
    status = CheckStatus(name="latency")
    status, _, _ = apply_measurement(c, status, m(Verdict.PASS, 0))
    status, _, _ = apply_measurement(c, status, m(Verdict.PASS, 0))
    assert status.passes_at_step == 2
    status, _, _ = apply_measurement(c, status, m(Verdict.PASS, 1))
    assert status.passes_at_step == 1 and status.last_step == 1


def test_worst_outcome() -> None:
    assert worst([Outcome.HOLD, Outcome.ROLLBACK, Outcome.CONTINUE]) is Outcome.ROLLBACK
    assert worst([]) is Outcome.CONTINUE


@given(st.lists(st.sampled_from(list(Verdict)), max_size=40))
def test_only_a_pass_continues_and_counters_add_up(verdicts: list[Verdict]) -> None:
    c = check(failureLimit=100, inconclusiveLimit=1000, consecutiveErrorLimit=1000)
    status = CheckStatus(name="latency")
    for v in verdicts:
        status, outcome, reason = apply_measurement(c, status, m(v))
        assert (outcome is Outcome.CONTINUE) == (v is Verdict.PASS)
        assert reason.startswith("check latency")
    assert status.failures == verdicts.count(Verdict.FAIL)
    assert status.errors == verdicts.count(Verdict.ERROR)
    assert status.inconclusive == verdicts.count(Verdict.INCONCLUSIVE)
    assert status.passes_at_step == verdicts.count(Verdict.PASS)
