"""Check policy: what a measurement means under a check's limits (pure).

Argo Rollouts' counters (failures, consecutive errors, inconclusive) with Flagger's idea of
a per-check limit, but with safe defaults: a critical Fail rolls back at once, errors and
inconclusive results never pass and, past their limits, stop the release for a human.
"""

from __future__ import annotations

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


def describe(m: Measurement) -> str:
    parts = [f"check {m.check}: {m.verdict.value}"]
    if m.canary is not None:
        parts.append(f"canary={m.canary:g}")
    if m.baseline is not None:
        parts.append(f"baseline={m.baseline:g}")
    if m.threshold is not None:
        parts.append(f"threshold={m.threshold:g}")
    if m.statistic:
        parts.append(f"statistic {m.statistic}")
    text = ", ".join(parts)
    return f"{text} ({m.message})" if m.message else text


def apply_measurement(
    check: AnalysisCheck, status: CheckStatus, measurement: Measurement
) -> tuple[CheckStatus, Outcome, str]:
    """Updated counters, the outcome this measurement implies, and a reason a human reads."""
    s = status.model_copy()
    if s.last_step != measurement.step:
        s.passes_at_step = 0
    s.last_step = measurement.step
    s.last_verdict = measurement.verdict
    reason = describe(measurement)
    verdict = measurement.verdict
    if verdict is Verdict.PASS:
        s.passes_at_step += 1
        s.consecutive_errors = 0
        return s, Outcome.CONTINUE, reason
    if verdict is Verdict.FAIL:
        s.failures += 1
        s.consecutive_errors = 0
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
    if s.inconclusive > check.inconclusive_limit:
        limit = f"inconclusive {s.inconclusive} > inconclusiveLimit {check.inconclusive_limit}"
        return s, _FOR_ACTION[check.on_inconclusive_limit], f"{reason}; {limit}"
    return s, Outcome.HOLD, reason
