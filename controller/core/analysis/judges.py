"""Judges: one check's fetched sample in, one :class:`Measurement` out (pure, stateless).

Rules every judge follows:

- a query error is an Error measurement; no data or too few samples is Inconclusive,
  never a Pass and never silently a Fail;
- a point estimate (threshold, relative, burn rate) needs ``minSamples`` events before it
  passes *or* fails, when the check counts its events (``totalQuery``); only the
  sequential test, whose error rates hold however early it looks, may fail before that;
- an empty *errors* query next to a non-empty total counts as zero bad events, because a
  counter labelled with an error code only exists after its first error;
- NaN is no data; +/-Inf is a value (a latency quantile in the +Inf bucket is very slow).

Every message names the measured values, the limit and the statistic in one sentence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from controller.core.analysis.pods import (
    FOLDED,
    PRIOR_POD_DOF,
    PRIOR_POD_SPREAD,
    PodResult,
    between_pod_variance,
    bias_variance,
    interval_reference,
    observe_pods,
    promotion_spread,
    worst_pod,
)
from controller.core.analysis.robust import (
    STRONG_EVIDENCE_FACTOR,
    evaluate,
    interval_excess,
    observe,
    overdispersion,
    regression_reach,
)
from controller.core.analysis.sample import (
    CheckSample,
    QueryResult,
    ResultKind,
    Role,
    Track,
    burn_rate_tiers,
    promql_duration,
)
from controller.core.analysis.stats import ratio_upper_bound
from controller.core.models import (
    AnalysisCheck,
    ChangeLane,
    CheckKind,
    Direction,
    LaneRelease,
    Measurement,
    NoisePrior,
    PodEvidence,
    SequentialEvidence,
    Verdict,
)


class _InconclusiveError(Exception):
    """Not enough evidence; the message says why. Values known so far ride along."""

    def __init__(
        self,
        message: str,
        *,
        canary: float | None = None,
        baseline: float | None = None,
        threshold: float | None = None,
        statistic: str | None = None,
        evidence: SequentialEvidence | None = None,
        alpha: float | None = None,
    ) -> None:
        super().__init__(message)
        self.out_of_reach = False  # set where the evidence cannot come at this step
        self.evidence = evidence
        self.alpha = alpha
        self.canary = canary
        self.baseline = baseline
        self.threshold = threshold
        self.statistic = statistic


class _QueryFailedError(Exception):
    """A needed query failed; the message says which and why."""


@dataclass(frozen=True)
class _Tick:
    check: str
    time: datetime
    step: int
    query: str | None
    evidence: SequentialEvidence | None = None
    final_step: bool = True

    def measure(
        self,
        verdict: Verdict,
        message: str,
        *,
        canary: float | None = None,
        baseline: float | None = None,
        threshold: float | None = None,
        statistic: str | None = None,
        evidence: SequentialEvidence | None = None,
        alpha: float | None = None,
    ) -> Measurement:
        return Measurement(
            check=self.check,
            time=self.time,
            step=self.step,
            query=self.query,
            verdict=verdict,
            canary=_finite_or_none(canary),
            baseline=_finite_or_none(baseline),
            threshold=_finite_or_none(threshold),
            alpha=alpha,
            statistic=statistic,
            message=message,
            evidence=evidence,
        )


def _finite_or_none(x: float | None) -> float | None:
    # The status is JSON: NaN and Inf cannot travel; the message keeps the real value.
    return x if x is not None and math.isfinite(x) else None


def judge(
    check: AnalysisCheck,
    sample: CheckSample,
    *,
    step: int,
    now: datetime,
    evidence: SequentialEvidence | None = None,
    final_step: bool = True,
) -> Measurement:
    """Judge one check at one analysis tick.

    ``evidence`` is the check's evidence so far (``CheckStatus.evidence``) for sequential
    checks, which accumulate interval-level observations over the release; the
    measurement carries the updated evidence. ``final_step``: whether the release is at
    full exposure, where a sequential check passes only once the MDE is ruled out."""
    tick = _Tick(check.name, now, step, _queries(sample), evidence, final_step)
    if sample.error is not None:
        return tick.measure(Verdict.ERROR, sample.error)
    try:
        return _JUDGES[check.kind](check, sample, tick)
    except _QueryFailedError as exc:
        return tick.measure(Verdict.ERROR, f"lane {sample.lane}, check {check.name}: {exc}")
    except _InconclusiveError as exc:
        measured = tick.measure(
            Verdict.INCONCLUSIVE,
            str(exc),
            canary=exc.canary,
            baseline=exc.baseline,
            threshold=exc.threshold,
            statistic=exc.statistic,
            evidence=exc.evidence,
            alpha=exc.alpha,
        )
        return measured.model_copy(update={"out_of_reach": exc.out_of_reach})


def _queries(sample: CheckSample) -> str | None:
    queries = sample.queries
    return "\n".join(queries) if queries else None


def _value(result: QueryResult, what: str) -> float:
    if result.kind is ResultKind.ERROR:
        raise _QueryFailedError(f"{what}: {result.detail or 'query failed'}")
    if result.kind is ResultKind.NO_DATA or result.value is None or math.isnan(result.value):
        detail = f" ({result.detail})" if result.detail else ""
        raise _InconclusiveError(f"no data for {what}{detail}: not enough evidence to judge")
    return result.value


def _count(sample: CheckSample, track: Track, role: Role, seconds: int | None = None) -> float:
    result = sample.get(track, role, seconds)
    what = f"{track.value} {role.value}"
    if role is Role.ERRORS and result.kind is ResultKind.NO_DATA:
        total = sample.get(track, Role.TOTAL, seconds)
        if total.kind is ResultKind.OK:
            return 0.0  # no error-coded series yet: zero bad events
    value = _value(result, what)
    if math.isinf(value) or value < 0:
        raise _QueryFailedError(f"{what} count is {value:g}; expected a finite count >= 0")
    return value


def _samples_gate(
    check: AnalysisCheck,
    sample: CheckSample,
    tracks: tuple[Track, ...],
    *,
    canary: float,
    threshold: float,
    baseline: float | None = None,
) -> None:
    if check.total_query is None:
        return
    counts = {t: _count(sample, t, Role.TOTAL) for t in tracks}
    if any(n < check.min_samples for n in counts.values()):
        have = ", ".join(f"{t.value} {n:.0f}" for t, n in counts.items())
        raise _InconclusiveError(
            f"too few samples to judge: {have} events, minSamples {check.min_samples}",
            canary=canary,
            baseline=baseline,
            threshold=threshold,
        )


def _worse(check: AnalysisCheck, value: float, limit: float) -> bool:
    if check.direction is Direction.LOWER_IS_BETTER:
        return value > limit
    return value < limit


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


# --------------------------------------------------------------------------- threshold


def _threshold(check: AnalysisCheck, sample: CheckSample, tick: _Tick) -> Measurement:
    assert check.threshold is not None
    canary = _value(sample.get(Track.CANARY, Role.VALUE), "canary value")
    limit = check.threshold
    _samples_gate(check, sample, (Track.CANARY,), canary=canary, threshold=limit)
    bad = _worse(check, canary, limit)
    if check.direction is Direction.LOWER_IS_BETTER:
        op = ">" if bad else "<="
    else:
        op = "<" if bad else ">="
    return tick.measure(
        Verdict.FAIL if bad else Verdict.PASS,
        f"{check.name} {_fmt(canary)} canary {op} limit {_fmt(limit)} ({check.direction.value})",
        canary=canary,
        threshold=limit,
        statistic=f"value {_fmt(canary)} {op} limit {_fmt(limit)}",
    )


# --------------------------------------------------------------------------- relative


def _relative(check: AnalysisCheck, sample: CheckSample, tick: _Tick) -> Measurement:
    assert check.max_ratio is not None
    canary = _value(sample.get(Track.CANARY, Role.VALUE), "canary value")
    baseline = _value(sample.get(Track.BASELINE, Role.VALUE), "baseline value")
    lower_better = check.direction is Direction.LOWER_IS_BETTER
    limit = baseline * check.max_ratio if lower_better else baseline / check.max_ratio
    _samples_gate(
        check,
        sample,
        (Track.CANARY, Track.BASELINE),
        canary=canary,
        baseline=baseline,
        threshold=limit,
    )
    floor = check.threshold
    within_floor = floor is not None and not _worse(check, canary, floor)
    beyond = _worse(check, canary, limit)
    ratio = _ratio(canary, baseline)
    floor_text = f", floor {_fmt(floor)}" if floor is not None else ""
    note = " (within the floor)" if within_floor and beyond else ""
    return tick.measure(
        Verdict.FAIL if beyond and not within_floor else Verdict.PASS,
        f"{check.name} {_fmt(canary)} canary vs {_fmt(baseline)} baseline (x{_fmt(ratio)}), "
        f"limit {_fmt(limit)} = x{_fmt(check.max_ratio)} baseline{floor_text}{note}",
        canary=canary,
        baseline=baseline,
        threshold=limit,
        statistic=f"ratio {_fmt(ratio)} vs allowed {_fmt(check.max_ratio)}",
    )


def _ratio(canary: float, baseline: float) -> float:
    if baseline == 0:
        return 1.0 if canary == 0 else math.inf
    return canary / baseline


# --------------------------------------------------------------------------- burn rate


def _burn_rate(check: AnalysisCheck, sample: CheckSample, tick: _Tick) -> Measurement:
    assert check.slo_target is not None
    budget = 1.0 - check.slo_target
    limit_ratio = check.max_burn_rate * budget
    window = sample.window_seconds
    errors = _count(sample, Track.CANARY, Role.ERRORS, window)
    total = _count(sample, Track.CANARY, Role.TOTAL, window)
    ratio = errors / total if total > 0 else None
    if total < check.min_samples:
        raise _InconclusiveError(
            f"too few samples to judge: canary {total:.0f} events, minSamples {check.min_samples}",
            canary=ratio,
            threshold=limit_ratio,
        )
    assert ratio is not None
    firing: list[str] = []
    readings: list[str] = []
    unknown: list[str] = []
    for tier in burn_rate_tiers(check, window, sample.min_window_seconds):
        burns: list[float] = []
        for seconds in (tier.long_seconds, tier.short_seconds):
            n = _count(sample, Track.CANARY, Role.TOTAL, seconds)
            if n <= 0:
                unknown.append(f"{tier.name} [{promql_duration(seconds)}]")
                break
            burns.append(_count(sample, Track.CANARY, Role.ERRORS, seconds) / n / budget)
        else:
            readings.append(
                f"{tier.name} {burns[0]:.1f}x [{promql_duration(tier.long_seconds)}] and "
                f"{burns[1]:.1f}x [{promql_duration(tier.short_seconds)}] vs {tier.factor:.1f}x"
            )
            if min(burns) >= tier.factor:
                firing.append(tier.name)
    burn = ratio / budget
    statistic = "burn " + "; ".join(readings) if readings else f"burn {burn:.1f}x"
    slo = f"{100 * check.slo_target:g}%"
    head = (
        f"error ratio {_pct(ratio)} canary, burn rate {burn:.1f}x, limit {check.max_burn_rate:g}x"
    )
    if firing:
        verdict = Verdict.FAIL
        what = f"burning the {slo} SLO's error budget too fast ({', '.join(firing)} tier)"
    elif unknown:
        raise _InconclusiveError(
            f"{head}; no traffic in {', '.join(unknown)} to judge the burn rate",
            canary=ratio,
            threshold=limit_ratio,
            statistic=statistic,
        )
    else:
        verdict = Verdict.PASS
        what = f"within the {slo} SLO's error budget"
    return tick.measure(
        verdict,
        f"{head} ({_pct(limit_ratio)} errors): {what}; {statistic}",
        canary=ratio,
        threshold=limit_ratio,
        statistic=statistic,
    )


# --------------------------------------------------------------------------- sequential


def _sequential(check: AnalysisCheck, sample: CheckSample, tick: _Tick) -> Measurement:
    c_bad = _count(sample, Track.CANARY, Role.ERRORS)
    c_total = _count(sample, Track.CANARY, Role.TOTAL)
    b_bad = _count(sample, Track.BASELINE, Role.ERRORS)
    b_total = _count(sample, Track.BASELINE, Role.TOTAL)
    alpha = check.alpha
    if check.direction is Direction.HIGHER_IS_BETTER:
        # Counting good events: a canary with fewer is worse, so count the missing ones.
        c_bad, b_bad = max(c_total - c_bad, 0.0), max(b_total - b_bad, 0.0)
    evidence = observe(
        tick.evidence,
        step=tick.step,
        window_seconds=sample.window_seconds,
        canary=(c_bad, c_total),
        baseline=(b_bad, b_total),
    )
    evidence = _observe_pods(check, sample, tick, evidence)
    e = evidence
    if e.canary_total <= 0 or e.baseline_total <= 0:
        raise _InconclusiveError(
            f"no traffic to compare: canary {e.canary_total:.0f}, baseline "
            f"{e.baseline_total:.0f} events over the release",
            threshold=check.threshold,
            alpha=alpha,
            evidence=evidence,
        )
    beta = 1.0 - check.power
    spread = between_pod_variance(e.pods.baseline, *_pod_prior(e)) if e.pods is not None else None
    # The promotion side does not lean on the history (robust.evaluate: it keeps the fixed
    # prior): the pod spread it assumes is the release's own estimate, never below the prior.
    fixed_spread = between_pod_variance(e.pods.baseline) if e.pods is not None else None
    bias = bias_variance(e.pods, spread) if e.pods is not None and spread is not None else 0.0
    lo = 1.0 + check.tolerance
    # A run of rejections is anchored at the interval where it began: the confirming looks
    # must reject without that interval's excess (beyond what its own noise explains), nor
    # that of any later interval of the run in which the baseline was in an incident (a
    # shared burst is one event; its intervals do not confirm one another). See the
    # confirmation below.
    newest = interval_excess(tick.evidence, e, lo, overdispersion(e))
    anchor = 0.0
    if e.rejections_in_a_row > 0:
        anchor = e.rejection_excess + (newest if e.baseline_elevated else 0.0)
    r = evaluate(
        e,
        tolerance=check.tolerance,
        mde=check.min_detectable_effect,
        alpha=alpha,
        beta=beta,
        bias=bias,
        futility_bias=bias_variance(e.pods, promotion_spread(fixed_spread))
        if e.pods is not None and fixed_spread is not None
        else 0.0,
        excess=anchor,
    )
    pod = (
        worst_pod(
            e,
            psi=r.dispersion,
            spread=spread,
            tolerance=check.tolerance,
            alpha=alpha,
        )
        if spread is not None
        else None
    )
    canary_ratio = e.canary_errors / e.canary_total
    baseline_ratio = e.baseline_errors / e.baseline_total
    # The lane's limit is the threshold; alpha is the test's level, named as such.
    values = {
        "canary": canary_ratio,
        "baseline": baseline_ratio,
        "threshold": check.threshold,
        "alpha": alpha,
    }
    ratio_text = "n/a" if r.ratio is None else f"{r.ratio:.2f}"
    what = "bad" if check.direction is Direction.LOWER_IS_BETTER else "missing good"
    head = (
        f"{what}-event ratio {_pct(canary_ratio)} canary vs {_pct(baseline_ratio)} baseline "
        f"(x{ratio_text}) over {e.intervals} intervals of the release"
    )
    tol_x, mde_x = f"x{1.0 + check.tolerance:g}", f"x{1.0 + check.min_detectable_effect:g}"
    statistic = (
        f"confidence sequence: worse than {tol_x} at {r.regression_z:.2f} of the alpha "
        f"{alpha:g} bound, {mde_x} ruled out at {r.futility_z:.2f} of the {beta:g} bound, "
        f"overdispersion {r.dispersion:.2f} ({r.futility_dispersion:.2f} for promotion)"
    )
    if spread is not None:
        statistic += f", pod spread {spread:.3f}" + _pod_text(pod)
    statistic += _prior_text(e)
    pod_rejected = pod is not None and pod.z >= 1.0
    rejected = r.regression_z >= 1.0 or pod_rejected
    in_a_row = e.rejections_in_a_row + 1 if rejected else 0
    excess = (newest if in_a_row == 1 else anchor) if in_a_row else 0.0
    evidence = evidence.model_copy(
        update={"rejections_in_a_row": in_a_row, "rejection_excess": excess}
    )
    strong_pod = pod is not None and pod.strong_z >= 1.0
    # One look at alpha/100 fails only when the canary's count is that extreme under the
    # gamma-Poisson tail too (robust.count_tail: at a few expected errors the normal
    # approximation's tail is far too thin).
    strong_arm = r.strong_z >= 1.0 and r.strong_tail <= math.log(alpha * STRONG_EVIDENCE_FACTOR)
    # Nor while the baseline is in an incident, in this interval or the one before (a
    # burst outlasts an interval; the release average it is compared with then already
    # holds its first part).
    incident = e.baseline_elevated or (
        tick.evidence is not None and tick.evidence.baseline_elevated
    )
    strong = (strong_arm or strong_pod) and not incident
    # Confirmation on new evidence: the confirming looks must reject with the interval
    # that began the run taken out of the sum beyond 1.345 of its own standard deviations
    # (robust.interval_excess). Noise lasting minutes (drift, a burst)
    # carries that interval's excess into every later look of the run, so re-testing the
    # same sum 30 s later confirms the same noise (docs/judging.md, tenth session). The
    # per-pod test compares canary pods with each other, where arm-wide noise cancels,
    # and confirms as before.
    arm_confirmed = r.confirm_z >= 1.0 if check.confirm_looks > 1 else r.regression_z >= 1.0
    confirmed = in_a_row >= check.confirm_looks and (arm_confirmed or pod_rejected)
    if strong or confirmed:
        how = "at 1/100 of alpha in one look" if strong else f"in {in_a_row} looks in a row"
        arm_failed = strong_arm if strong else arm_confirmed
        who = "canary" if arm_failed or pod is None else f"canary pod {pod.name}"
        return tick.measure(
            Verdict.FAIL,
            f"{head}: {who} worse than {tol_x} the baseline ({how}); {statistic}",
            statistic=statistic,
            evidence=evidence,
            **values,
        )
    if rejected:
        progress = (
            f"({in_a_row}/{check.confirm_looks})"
            if in_a_row < check.confirm_looks
            else f"on evidence beyond the interval that began it ({r.confirm_z:.2f} of the "
            "bound without it)"
        )
        raise _InconclusiveError(
            f"{head}: worse than {tol_x} at this look, confirming at the next {progress}; "
            f"{statistic}",
            statistic=statistic,
            evidence=evidence,
            **values,
        )
    if min(e.canary_total, e.baseline_total) < check.min_samples:
        raise _InconclusiveError(
            f"{head}; too few samples to pass: canary {e.canary_total:.0f}, baseline "
            f"{e.baseline_total:.0f} events, minSamples {check.min_samples}",
            statistic=statistic,
            evidence=evidence,
            **values,
        )
    looks_worse = r.ratio is not None and r.ratio >= 1.0 + check.min_detectable_effect
    if looks_worse:
        # Not significant yet, but exposure grows only while the canary looks no worse
        # than the effect it must rule out: a x5 seen in one noisy interval holds the step.
        reach = regression_reach(
            e, tolerance=check.tolerance, alpha=alpha, psi=r.dispersion, bias=bias
        )
        if reach is not None and reach.out_of_reach and e.pods is not None:
            # Held, and the test can never reject at these pods: waiting for the deadline
            # would only delay the lane's decision (docs/judging.md, the step-hold).
            pods = _pod_count(e.pods)
            stuck = _InconclusiveError(
                f"{head}: looks x{r.ratio:.2f} on {pods}; at {pods} the test cannot tell "
                f"the code from the pods (limit {reach.limit_z:.1f} sd at a ratio up to "
                f"x{reach.ratio_high:.2f}, bound {reach.bound_z:.1f}): needs a step with "
                f"more canary pods; {statistic}",
                statistic=statistic,
                evidence=evidence,
                **values,
            )
            stuck.out_of_reach = True
            raise stuck
        raise _InconclusiveError(
            f"{head}: looks worse than {mde_x} the baseline, not yet beyond the noise; "
            f"holding the step; {statistic}",
            statistic=statistic,
            evidence=evidence,
            **values,
        )
    if not tick.final_step:
        return tick.measure(
            Verdict.PASS,
            f"{head}: no regression beyond {tol_x} so far (a Pass at full exposure needs "
            f"{mde_x} ruled out); {statistic}",
            statistic=statistic,
            evidence=evidence,
            **values,
        )
    if check.threshold is not None:
        upper = ratio_upper_bound(e.canary_errors, e.canary_total, alpha)
        if upper <= check.threshold:
            return tick.measure(
                Verdict.PASS,
                f"{head}, canary ratio at most {_pct(upper)} (1-alpha bound) <= floor "
                f"{_pct(check.threshold)}; {statistic}",
                statistic=f"{statistic}, upper bound {_pct(upper)}",
                evidence=evidence,
                **values,
            )
    if r.futility_z >= 1.0 and e.batch_incident:
        # A promotion waits for the batch that holds a shared incident to complete: psi is
        # estimated on completed batches, and an incident's interval can move the futility
        # sum by several of its standard deviations before psi has seen it (robust, the
        # futility test: three realistic x2 releases of 1,500 were promoted on such a look).
        raise _InconclusiveError(
            f"{head}: {mde_x} ruled out at this look, but the baseline was in an incident "
            "in the current batch: waiting for the batch to complete so that the noise "
            f"estimate includes it; {statistic}",
            statistic=statistic,
            evidence=evidence,
            **values,
        )
    if r.futility_z >= 1.0:
        return tick.measure(
            Verdict.PASS,
            f"{head}: a {mde_x} regression is ruled out; {statistic}",
            statistic=statistic,
            evidence=evidence,
            **values,
        )
    if r.canary_needed is None:
        need = f"at the ratio seen so far {mde_x} cannot be ruled out"
    else:
        need = f"needs ~{_round_count(r.canary_needed)} more canary requests to rule out {mde_x}"
    raise _InconclusiveError(
        f"{head}: not enough evidence yet, {need}; {statistic}",
        statistic=statistic,
        evidence=evidence,
        **values,
    )


def _prior_text(e: SequentialEvidence) -> str:
    """Where the noise the test assumed before the release's own batches came from."""
    p = e.prior
    if p is None:
        return ", fixed noise prior"
    text = (
        f", noise prior from the baseline's history: overdispersion {p.dispersion:.3f} over "
        f"{p.history_batches} batches ({p.baseline_errors:.0f} errors)"
    )
    if p.pod_spread is not None:
        text += f", pod spread {p.pod_spread:.3f} over {p.history_pods} pods"
    return text


def _pod_prior(e: SequentialEvidence) -> tuple[float, float]:
    """The pod spread to shrink towards and its weight: the baseline's history's when it
    had pods, else the fixed prior."""
    if e.prior is None or e.prior.pod_spread is None:
        return PRIOR_POD_SPREAD, PRIOR_POD_DOF
    return e.prior.pod_spread, e.prior.pod_weight


def _observe_pods(
    check: AnalysisCheck, sample: CheckSample, tick: _Tick, evidence: SequentialEvidence
) -> SequentialEvidence:
    """Fold the per-pod counts in, when the check declares a pod label and the sample has
    both arms split by it; a look without them leaves the per-pod evidence as it was."""
    canary, baseline = sample.pods.get(Track.CANARY), sample.pods.get(Track.BASELINE)
    if check.pod_label is None or not canary or not baseline:
        return evidence
    if check.direction is Direction.HIGHER_IS_BETTER:
        canary = {k: (max(n - g, 0.0), n) for k, (g, n) in canary.items()}
        baseline = {k: (max(n - g, 0.0), n) for k, (g, n) in baseline.items()}
    pods = observe_pods(
        evidence.pods,
        step=tick.step,
        window_seconds=sample.window_seconds,
        canary=canary,
        baseline=baseline,
        reference=interval_reference(tick.evidence, evidence),
    )
    return evidence.model_copy(update={"pods": pods})


def _pod_count(pods: PodEvidence) -> str:
    n = len(pods.canary)
    if any(t.name == FOLDED for t in pods.canary):
        return f"more than {n - 1} canary pods"
    return "one canary pod" if n == 1 else f"{n} canary pods"


def _pod_text(pod: PodResult | None) -> str:
    if pod is None:
        return ""
    ratio = "n/a" if pod.ratio is None else f"x{pod.ratio:.2f}"
    return f", worst canary pod {pod.name} ({ratio}) at {pod.z:.2f} of its bound"


def _round_count(x: float) -> str:
    if x < 100:
        return f"{max(x, 1):.0f}"
    digits = 10 ** (len(str(int(x))) - 2)
    return f"{round(x / digits) * digits:,.0f}"


_Judge = Callable[[AnalysisCheck, CheckSample, _Tick], Measurement]
_JUDGES: dict[CheckKind, _Judge] = {
    CheckKind.THRESHOLD: _threshold,
    CheckKind.RELATIVE: _relative,
    CheckKind.BURN_RATE: _burn_rate,
    CheckKind.SEQUENTIAL: _sequential,
}


def judge_release(
    lane: ChangeLane,
    release: LaneRelease,
    check: AnalysisCheck,
    sample: CheckSample,
    now: datetime,
    prior: NoisePrior | None = None,
) -> Measurement:
    """The check judged for this release at its current step, continuing the evidence its
    status holds for the check (the final step is the one that must rule out the MDE).
    ``prior``: the noise prior the baseline's history gave, for the first evidence of a
    sequential check declaring ``noisePrior: history``
    (:mod:`controller.core.analysis.history`); the evidence then carries it."""
    step = release.status.current_step
    previous = next((c for c in release.status.checks if c.name == check.name), None)
    evidence = previous.evidence if previous is not None else None
    if evidence is None and prior is not None and check.noise_prior == "history":
        evidence = SequentialEvidence(prior=prior)
    return judge(
        check,
        sample,
        step=step,
        now=now,
        evidence=evidence,
        final_step=step == len(lane.spec.strategy.steps) - 1,
    )


def analysis_failed(
    lane: ChangeLane, check: AnalysisCheck, step: int, now: datetime, exc: Exception
) -> Measurement:
    """What a bug in fetching or judging yields: an Error, which holds the release."""
    return Measurement(
        check=check.name,
        time=now,
        step=step,
        verdict=Verdict.ERROR,
        message=f"lane {lane.name}, check {check.name}: analysis failed: {exc}",
    )
