"""Check policy: what a measurement means under a check's limits (pure).

Argo Rollouts' counters (failures, consecutive errors, inconclusive) with a per-check action
for each limit, and safe defaults:

- Pass: CONTINUE (this check does not block the step from advancing).
- Fail: a critical check rolls back at once; otherwise failures are cumulative over the
  release (Flagger-style, never reset by a Pass) and, past ``failureLimit``,
  ``onFailureLimit`` applies (default rollback). Below the limit: HOLD.
- Error (query failed, bad template, Prometheus down): HOLD, never a pass; more than
  ``consecutiveErrorLimit`` in a row applies ``onErrorLimit`` (default pause: a broken
  monitoring system is a reason to stop and ask, not to roll back a healthy canary).
- Inconclusive (no data, too few samples, not enough evidence yet): HOLD; more than
  ``inconclusiveLimit`` in a row *at the same step* applies ``onInconclusiveLimit``
  (default pause). Counting in a row, per step, because every step starts with too little
  data: it is being stuck without evidence that should stop the release.

The reason string names the check, the measured values, the threshold and the statistic,
because it becomes the rollback or pause message a human reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from controller.core.models import AnalysisCheck, CheckStatus, LimitAction, Measurement, Verdict


class Outcome(StrEnum):
    CONTINUE = "continue"
    HOLD = "hold"
    PAUSE = "pause"
    ROLLBACK = "rollback"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Outcome.CONTINUE: 0, Outcome.HOLD: 1, Outcome.PAUSE: 2, Outcome.ROLLBACK: 3}
_FOR_ACTION = {
    LimitAction.HOLD: Outcome.HOLD,
    LimitAction.PAUSE: Outcome.PAUSE,
    LimitAction.ROLLBACK: Outcome.ROLLBACK,
}


def worst(outcomes: Iterable[Outcome]) -> Outcome:
    """The outcome of several checks at one tick: the most severe one."""
    return max(outcomes, key=lambda o: o.severity, default=Outcome.CONTINUE)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def describe(m: Measurement) -> str:
    """One line naming the check, verdict, measured values, threshold and statistic."""
    values = f"canary={_num(m.canary)}"
    if m.baseline is not None:
        values += f", baseline={_num(m.baseline)}"
    text = (
        f"check {m.check} {m.verdict.value}: {values}, threshold={_num(m.threshold)}, "
        f"statistic {m.statistic or 'n/a'}"
    )
    return f"{text} ({m.message})" if m.message else text


def apply_measurement(
    check: AnalysisCheck, status: CheckStatus, measurement: Measurement
) -> tuple[CheckStatus, Outcome, str]:
    """Updated counters, the outcome this measurement implies, and a reason a human reads."""
    s = status.model_copy()
    if s.last_step != measurement.step:
        s.passes_at_step = 0
        s.consecutive_inconclusive = 0
    s.last_step = measurement.step
    s.last_verdict = measurement.verdict
    if measurement.evidence is not None:
        s.evidence = measurement.evidence
    reason = describe(measurement)
    verdict = measurement.verdict
    if verdict is not Verdict.ERROR:
        s.consecutive_errors = 0
    if verdict is not Verdict.INCONCLUSIVE:
        s.consecutive_inconclusive = 0
    if verdict is Verdict.PASS:
        s.passes_at_step += 1
        return s, Outcome.CONTINUE, reason
    if verdict is Verdict.FAIL:
        s.failures += 1
        if check.critical:
            return s, Outcome.ROLLBACK, f"critical {reason}"
        if s.failures > check.failure_limit:
            limit = f"failures {s.failures} > failureLimit {check.failure_limit}"
            return s, _FOR_ACTION[check.on_failure_limit], f"{reason}; {limit}"
        return s, Outcome.HOLD, reason
    if verdict is Verdict.ERROR:
        s.errors += 1
        s.consecutive_errors += 1
        if s.consecutive_errors > check.consecutive_error_limit:
            limit = (
                f"consecutive errors {s.consecutive_errors} > "
                f"consecutiveErrorLimit {check.consecutive_error_limit}"
            )
            return s, _FOR_ACTION[check.on_error_limit], f"{reason}; {limit}"
        return s, Outcome.HOLD, reason
    s.inconclusive += 1
    s.consecutive_inconclusive += 1
    if s.consecutive_inconclusive > check.inconclusive_limit:
        limit = (
            f"inconclusive {s.consecutive_inconclusive} in a row at step {measurement.step} > "
            f"inconclusiveLimit {check.inconclusive_limit}"
        )
        return s, _FOR_ACTION[check.on_inconclusive_limit], f"{reason}; {limit}"
    return s, Outcome.HOLD, reason
