"""A canary-vs-baseline error-ratio test that holds on production noise (pure, stdlib only).

Why not a per-request likelihood: production error counts are over-dispersed (retries, a
bad client, a cold cache), come in bursts, and drift per arm for minutes. A test that takes
every request as an independent Bernoulli draw then sees "significance" in noise. This test
takes the *analysis interval* as its unit of observation and estimates the dispersion from
the data.

Observations. At every look the runtime fetches each arm's errors and requests over the
window since the step started; the difference from the previous look is one interval
observation ``(c_i, n_i)`` for the canary and ``(b_i, m_i)`` for the baseline. They
accumulate over the whole release (every step), which is valid because each interval's
contrast uses that interval's own traffic split:

    x_i(rho) = c_i - rho * (n_i / m_i) * b_i,     E[x_i] = n_i (p_c - rho p_b).

Under "the canary's error ratio is at most ``rho`` times the baseline's" the sum
``S_t(rho) = sum x_i(rho)`` has a non-positive drift, whatever the baseline ratio does
over time (shared bursts, diurnal load and dependency trouble cancel inside an interval).

Variance. Under the null the variance of the sum is modelled as negative-binomial-like
(NB2: ``mu + psi mu^2``), with counting noise and multiplicative noise kept apart:

    Var S_t(rho) = sum_i q_i (rho n_i + rho^2 n_i^2 / m_i)
                   + psi (rho^2 + rho^2) sum_b (sum_{i in b} q_i n_i)^2

``q_i`` is the baseline's error ratio (this interval's, never below the release's smoothed
average, so a shared burst widens its own interval). The first term is Poisson counting
noise and is never scaled down (nothing is less noisy than counting) nor up (at small
counts it is all there is, and inflating it is what made x5 slow). The second is each
arm's multiplicative noise (drift, over-dispersion, a noisy neighbour): ``psi`` is the
relative variance of an arm's error ratio over a *batch* of :data:`BATCH_INTERVALS`
intervals (2 minutes at the default interval), so noise that lasts a minute or two counts
as the variance of the sum sees it, not as independent per-interval jitter.

``psi`` is estimated from the data by the method of moments on completed batches: the
squared batch sums of the contrast around the ratio fitted to the completed batches,
plus twice their lag-1 covariance (batch means with one lag, after Newey & West 1987:
drift that outlasts a batch adds to the variance of the sum; a negative covariance is not
credited), minus the batches' Poisson variance, over their squared expected counts. That
is the cluster-robust ("sandwich") variance with batches as clusters (Liang & Zeger 1986;
McCullagh & Nelder, *Generalized Linear Models*, ch. 9) expressed as an NB2 parameter:
bursts weigh in it as much as they weigh in the sum. The model is taken at the canary's
fitted level (the plug-in: the completed batches' pooled ratio, :func:`noise_level`), not at
ratio 1: a regressed canary's counts are larger and so is their noise, and measured at ratio
1 an x3 canary read its own noise as a dispersion of 10-40 and hid itself (one bad pod of
five was missed 27% of the time). Few batches give a noisy estimate, and under-estimating it
is what causes false rollbacks, so it is shrunk towards a prior: for the regression test of
a check that declares ``noisePrior: history``, the one the baseline's own hour of history
before the release gave when the runtime could fetch it
(:mod:`controller.core.analysis.history`: the same estimator on the baseline's batches,
weighing at most 4 batches, never below 0.02; it assumes the canary's noise is like the
baseline's, and noise shared by the whole service in the history only makes it larger),
else the fixed :data:`PRIOR_OVERDISPERSION` with the weight of :data:`PRIOR_BATCHES`
batches. In the regression test the data weigh what they tell, not how many batches
they are: each completed batch counts its chi-square degrees of freedom about ``psi``,
``(M / (M + P))^2`` with ``M`` its multiplicative and ``P`` its counting variance at the
fixed prior's level (:func:`batch_information`; the reliability of empirical-Bayes
shrinkage, Efron & Morris 1975, squared because a variance is estimated), and the data's
estimate enters at its positive part. A batch of a one-pod canary at 1 req/s (0.6
expected errors) is worth 0.06 of one, so a few such batches, whose squares fall below
their Poisson variance by chance, no longer pull ``psi`` from the prior to 0: that is
what rolled back healthy canaries at their early looks (docs/judging.md, ninth session).
The futility test always shrinks towards the fixed prior (its own weight, below) and
counts each batch as one. The newest, incomplete batch is not in the estimate (a sudden
change cannot hide behind the variance it would itself add) but its scale counts in full
in the variance (a batch is noisy as a whole however few of its intervals are in).

Test. A normal-mixture boundary (Robbins 1970; the asymptotic confidence sequence of
Waudby-Smith, Arnold, Wu, Howard & Ramdas, "Time-uniform central limit theory and
asymptotic confidence sequences", 2021, Thm 2.2) on the sum: under the null,

    P( exists t: S_t >= sqrt(2 (V_t g + 1) / g * log(sqrt(V_t g + 1) / level)) ) <= level

asymptotically, with ``V_t`` the variance above and ``g`` tuning where the boundary is
tightest. Two such one-sided tests run side by side:

- *regression*: null ``ratio <= 1 + tolerance`` (a practical-equivalence margin: a canary
  a little worse than the baseline, e.g. on a slower node, is not a regression). It must
  reject at ``confirmLooks`` looks in a row, **the confirming looks on evidence beyond
  the interval that began the run**: that interval's contrast beyond :data:`CONFIRM_CLIP`
  of its own standard deviations (and the same part of any later interval of the run in
  which the baseline was in an incident) is taken out of the sum (``excess`` in
  :func:`evaluate`; Huber's clipping of one observation's influence, Huber 1964, 1965,
  applied to the intervals a confirmation would rest on). Noise that lasts minutes
  (per-arm drift, a burst) carries that interval's excess into every later look, so
  re-testing the same sum 30 s later confirmed the same noise: 6 of the 14 false
  rollbacks of the seed-1 realistic one- and three-hour families (docs/judging.md,
  tenth session). A regression's own contrast per interval is mostly within the clip
  and keeps its evidence. Or it rejects
  at one look at level ``alpha / 100`` (an outage or x20 needs no confirmation) when
  three more things hold: the canary's count is that extreme under the gamma-Poisson
  tail of the same noise model too (:func:`count_tail`: at a few expected errors the
  normal approximation's tail is far too thin: single looks at alpha/100 rolled back 6
  of 1,000 healthy realistic releases, a one-pod canary at x11 on one expected error
  among them); the
  baseline is in no incident in this interval or the one before (a shared burst is where
  one noisy look is most likely, and it outlasts an interval); and, during a run of
  rejections, the run's set-aside intervals are out of the sum there too. Each of these
  only removes rejections, so the test's error rate stays at most ``alpha``.
- *futility*: null ``ratio >= 1 + minDetectableEffect`` at level ``1 - power``: rejecting
  it rules out a regression as large as the declared minimum detectable effect, which is
  the only way the check passes at full exposure. **It never passes while the newest,
  incomplete batch holds an interval with the baseline in an incident**
  (``batch_incident``): ``psi`` is estimated on completed batches only, so a shared burst
  that hit the baseline harder than a regressed canary (its own drift, the burst's own
  spread) moved the futility sum by 4-6 of its standard deviations in one interval before
  ``psi`` could see it, and three of 1,500 realistic x2 releases were promoted on that
  look (docs/judging.md, eleventh session). Once the batch is complete its square is in
  ``psi``; the wait is at most :data:`BATCH_INTERVALS` - 1 looks after an incident, and it
  only removes passes, so the level stays at most ``1 - power``.

Both tests take the canary's variance under their own null (score-type), and both carry
the same noise model: counting noise, the multiplicative noise ``psi`` and, with per-pod
evidence, the bias of the canary's draw of pods. A promotion is the mirror of a rollback:
a futility test that leaves out noise the regression test allows for promotes regressions
that happened to draw lucky pods or a quiet stretch of drift (0.4% of realistic x2
releases did). The two differ only in how much the prior on ``psi`` weighs
(:data:`PRIOR_BATCHES` against :data:`FUTILITY_PRIOR_BATCHES`): under-estimating
``psi`` early is what rolls back healthy one-pod canaries, while the futility test
decides only at full exposure, after every step's minimum duration, with the pod bias in
its variance; there the batches replace the prior sooner.

Assumptions, stated: batch sums are close to normal, so that a batch's squared residual
estimates its variance with the variance ``2 (P + M)^2`` (the information weighting; heavier
tails make a batch tell less than it is credited with); batch sums are close to independent
beyond one lag (noise correlated over much longer than two batches is under-estimated, which
is what the prior and the tolerance are for); each arm's multiplicative noise has the same
relative size whatever its level (NB2), so a x3 canary is as noisy, relatively, as a healthy
one; persistent differences between pods are a bias, not noise: without per-pod counts only
the tolerance absorbs them, on the rollback side only (the canary runs few pods; one pod at
10%), and with them ``bias`` carries them into both tests; the canary:baseline ratio of
error ratios is constant over the release (a regression that starts mid-release is found,
later than one present from the start); the guarantee is asymptotic (normal approximation of
sums of counts), with the mixture boundary conservative at small counts.

Reach. With per-pod evidence the canary's draw of pods is a bias that does not average
out, so at a step with few canary pods the regression test may be unable ever to reject
a canary that looks beyond the MDE (which holds the step): :func:`regression_reach` says
so, and the release machine then ends the step as the lane's evidence deadline would,
at once.

Evidence is pooled over the steps of the release: the ratio of error ratios does not
depend on the traffic weight, so what step 1 saw counts at steps 2 and 3 (each step still
waits its minDuration and re-checks before it advances).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from controller.core.models import SequentialEvidence

#: Intervals per batch for the dispersion estimate (2 minutes at the default 30 s).
BATCH_INTERVALS = 4
#: The multiplicative noise assumed before data says otherwise (relative variance of an
#: arm's error ratio over a batch: 0.1 is a standard deviation of about 30% over two
#: minutes), and how many batches it weighs.
PRIOR_OVERDISPERSION = 0.3
PRIOR_BATCHES = 0.75
#: The futility (promotion) test's weight of the same prior. It decides only at full
#: exposure, after the lane's minimum durations, and its variance also carries the pod
#: bias, so it lets the batches replace the prior sooner: a release with Poisson-like
#: errors promotes about 6 minutes sooner (docs/judging.md, measured).
FUTILITY_PRIOR_BATCHES = 0.25
#: Where the mixture boundaries are tightest, in variance units (about this many errors):
#: early for the regression test (an outage must fail at the first look), later for the
#: futility test (ruling out the MDE takes hundreds of errors, and with the pod bias in
#: its variance a healthy release passes at a variance of a few thousand).
TARGET_VARIANCE = 30.0
FUTILITY_TARGET_VARIANCE = 2000.0
#: A baseline interval this many times its release average is a shared incident.
ELEVATED_BASELINE = 3.0
#: One look at this fraction of alpha rejects without confirmation.
STRONG_EVIDENCE_FACTOR = 0.01


def observe(
    previous: SequentialEvidence | None,
    *,
    step: int,
    window_seconds: int,
    canary: tuple[float, float],
    baseline: tuple[float, float],
) -> SequentialEvidence:
    """Fold one look's cumulative window counts ``(errors, total)`` into the evidence.

    A new step, or a window shorter than the last one (a resume restarts the step's
    window), starts the differences afresh; a count that went down (``increase()``
    extrapolates) contributes zero rather than a negative interval.
    """
    e = previous.model_copy() if previous is not None else SequentialEvidence()
    fresh = previous is None or step != e.step or window_seconds < e.window_seconds
    if fresh:
        last = (0.0, 0.0, 0.0, 0.0)
    else:
        last = (e.last_canary_errors, e.last_canary_total, e.last_baseline_errors,
                e.last_baseline_total)  # fmt: skip
    c = max(0.0, canary[0] - last[0])
    n = max(0.0, canary[1] - last[1])
    b = max(0.0, baseline[0] - last[2])
    m = max(0.0, baseline[1] - last[3])
    e.step, e.window_seconds = step, window_seconds
    e.last_canary_errors, e.last_canary_total = max(canary[0], last[0]), max(canary[1], last[1])
    e.last_baseline_errors = max(baseline[0], last[2])
    e.last_baseline_total = max(baseline[1], last[3])
    if n <= 0 or m <= 0:
        return e  # no contrast possible in an interval without traffic in both arms
    c = min(c, n)
    b = min(b, m)
    e.intervals += 1
    e.canary_errors += c
    e.canary_total += n
    e.baseline_errors += b
    e.baseline_total += m
    kappa = n / m
    usual = (e.baseline_errors - b + 1.0) / (e.baseline_total - m + 1.0)
    e.baseline_elevated = b >= 3 and b / m > ELEVATED_BASELINE * usual
    e.batch_incident = e.batch_incident or e.baseline_elevated
    q = max((e.baseline_errors + 1.0) / (e.baseline_total + 1.0), b / m)
    e.scaled_baseline_errors += kappa * b
    e.canary_variance += q * n
    e.baseline_variance += q * n * kappa
    e.batch_canary_errors += c
    e.batch_scaled_baseline_errors += kappa * b
    e.batch_canary_variance += q * n
    e.batch_baseline_variance += q * n * kappa
    e.batch_intervals += 1
    if e.batch_intervals >= BATCH_INTERVALS:
        if e.batches == 0 or e.dispersion_information is not None:
            e.dispersion_information = (e.dispersion_information or 0.0) + batch_information(
                e.batch_canary_variance, e.batch_baseline_variance
            )
        e.dispersion_cc += e.batch_canary_errors**2
        e.dispersion_ck += e.batch_canary_errors * e.batch_scaled_baseline_errors
        e.dispersion_kk += e.batch_scaled_baseline_errors**2
        e.dispersion_quadratic += e.batch_canary_variance**2
        c_prev, k_prev = e.previous_batch_canary_errors, e.previous_batch_scaled_baseline_errors
        c_now, k_now = e.batch_canary_errors, e.batch_scaled_baseline_errors
        e.lag_cc += c_now * c_prev
        e.lag_ck += c_now * k_prev + k_now * c_prev
        e.lag_kk += k_now * k_prev
        e.previous_batch_canary_errors, e.previous_batch_scaled_baseline_errors = c_now, k_now
        e.batches += 1
        e.batch_canary_errors = e.batch_scaled_baseline_errors = 0.0
        e.batch_canary_variance = e.batch_baseline_variance = 0.0
        e.batch_intervals = 0
        e.batch_incident = False
    return e


def batch_information(canary_expected: float, baseline_part: float) -> float:
    """What one completed batch tells about ``psi``, in chi-square degrees of freedom.

    A batch sum of the contrast has the variance ``P + M``: counting noise ``P`` (the
    canary's expected errors plus the scaled baseline's part) and multiplicative noise
    ``M = 2 psi mu^2`` (``mu`` the canary's expected errors in the batch, ``q n``, which the
    scaled baseline's equal under the null; the 2 counts both arms). Its square
    estimates ``M`` with the variance ``2 (P + M)^2`` (normal fourth moment), so it
    estimates ``psi`` as well as ``(M / (P + M))^2`` of a chi-square degree of freedom:
    the reliability of empirical-Bayes shrinkage (Efron & Morris 1975), squared because a
    variance is estimated. A batch of 40 expected errors is worth about one; one of 0.6
    (a one-pod canary at 1 req/s) about 0.06. Taken at the fixed prior's level (the
    information expected before the data, as the pod spread's reliability is), so
    the weight does not depend on the estimate it weighs."""
    multiplicative = 2.0 * PRIOR_OVERDISPERSION * canary_expected**2
    total = multiplicative + canary_expected + baseline_part
    return (multiplicative / total) ** 2 if total > 0 else 0.0


def rate_ratio(e: SequentialEvidence) -> float | None:
    """Canary error ratio over the baseline's, interval-weighted (``C / sum kappa_i b_i``)."""
    if e.scaled_baseline_errors <= 0:
        return None
    return e.canary_errors / e.scaled_baseline_errors


def overdispersion(
    e: SequentialEvidence,
    prior_batches: float = PRIOR_BATCHES,
    *,
    history: bool = True,
    by_information: bool = True,
) -> float:
    """The multiplicative noise ``psi``: the relative variance of one arm's error ratio
    over a batch, beyond counting noise, by the method of moments on the completed
    batches. Their squared residuals around the fitted ratio (least squares, so that a
    regression starting in the newest intervals does not count as noise) minus their
    Poisson variance, over the batches' squared expected counts; a ratio of sums, not a
    mean of ratios, so a burst batch weighs as much here as it does in the test's sum
    (the cluster-robust "sandwich" variance, batches as clusters). Shrunk towards
    :data:`PRIOR_OVERDISPERSION` with the weight of ``prior_batches`` average batches
    (:data:`PRIOR_BATCHES` for the regression test, :data:`FUTILITY_PRIOR_BATCHES` for
    the futility test).

    The model is taken at the canary's fitted level (the plug-in, consistent at any ratio:
    :func:`noise_level`), not at ratio 1: a regressed canary's counts are larger and so is
    their noise, and measured against a healthy canary's model an x3 canary's own noise read
    as a dispersion of 10-40 and hid it. The shrinkage keeps a healthy canary that merely
    looks worse in a noisy window from shrinking its own noise estimate early (the prior
    weighs while the batches are few).

    The data weigh what they tell (``by_information``, the regression test): the prior's
    ``prior_batches`` pseudo-degrees of freedom against the completed batches' chi-square
    degrees of freedom about ``psi`` (:func:`batch_information`), less the one that went to
    the fitted ratio. Batches of few expected errors are mostly counting noise, and
    counting them as whole batches let a handful of them pull ``psi`` from the prior to 0
    (realistic_1rps trace 349: 0.000 after 3 batches of 1.3 expected errors, a healthy
    canary rolled back; docs/judging.md). Where batches hold many errors a batch is worth
    about one degree of freedom and this is the count-weighted shrinkage it replaces.
    Without it (the futility test, and evidence recorded before the information was
    kept) each completed batch weighs one."""
    learned = e.prior if history else None
    prior_psi = PRIOR_OVERDISPERSION if learned is None else learned.dispersion
    if learned is not None:
        # A prior estimated from the baseline's history weighs the batches it rests on,
        # in both tests (controller.core.analysis.history).
        prior_batches = learned.batches
    if e.batches == 0:
        return prior_psi
    ratio = e.dispersion_ck / e.dispersion_kk if e.dispersion_kk > 0 else 1.0
    squares = e.dispersion_cc - 2 * ratio * e.dispersion_ck + ratio**2 * e.dispersion_kk
    # Noise correlated with the next batch (drift lasting minutes) adds to the variance of
    # the sum twice its lag-1 covariance (batch means with one lag, after Newey & West
    # 1987); a negative covariance is not credited.
    lagged = e.lag_cc - ratio * e.lag_ck + ratio**2 * e.lag_kk
    squares += 2 * max(lagged, 0.0)
    # The NB2 scale at the canary's fitted level (plug-in: consistent whatever the true
    # ratio, under the null and under a regression alike). It was the ratio shrunk by the
    # tolerance squared, which for a x2 canary read psi 2.4 times too large (0.31 against
    # the healthy family's 0.10 on the same noise) and left 55% of realistic x2s
    # undecided after 3 hours (docs/judging.md, "Why realistic x2s stayed undecided").
    # The level is the ratio of the completed batches' sums (each batch weighing its
    # counts, as the Poisson likelihood weighs them), not the least-squares ratio that
    # centres the residuals, which weighs a batch by its squared counts: one burst batch
    # ten times the others' size weighed a hundred times as much and set the scale alone
    # (a healthy canary read x2.9 after a burst that hit it harder than the baseline, its
    # psi fell to 0.04 and it was rolled back: trace 174 of realistic_10rps_3h).
    fitted = max(1.0, noise_level(e) or ratio)
    poisson = fitted * (e.canary_variance - e.batch_canary_variance) + fitted**2 * (
        e.baseline_variance - e.batch_baseline_variance
    )
    quadratic = 2 * fitted**2 * e.dispersion_quadratic
    if quadratic <= 0:
        return prior_psi
    # One batch's worth of freedom goes to the fitted ratio.
    freedom = max(e.batches - 1, 0) / e.batches
    excess = squares - freedom * poisson
    if freedom <= 0:
        return prior_psi  # one batch: its freedom all went to the fitted ratio
    estimate = excess / (freedom * quadratic)  # the data alone (method of moments)
    information = e.dispersion_information if by_information else None
    if information is None:
        weight, data = freedom * e.batches, estimate
    else:
        # Weighed by what the batches tell, the data's estimate enters at its positive
        # part, as the pod spread's does (DerSimonian & Laird): a variance is not
        # negative, and a chance shortfall of squares below the counting noise is not
        # evidence of less noise than none.
        weight, data = freedom * information, max(estimate, 0.0)
    if prior_batches + weight <= 0:
        return prior_psi
    return max(0.0, (prior_batches * prior_psi + weight * data) / (prior_batches + weight))


def noise_level(e: SequentialEvidence) -> float | None:
    """The canary's ratio the NB2 scale is taken at: the completed batches' pooled ratio
    (their canary errors over their scaled baseline errors), each batch weighing its
    counts; None before a completed batch has baseline errors."""
    completed = e.scaled_baseline_errors - e.batch_scaled_baseline_errors
    if completed <= 0:
        return None
    return (e.canary_errors - e.batch_canary_errors) / completed


def boundary(variance: float, level: float, target: float = TARGET_VARIANCE) -> float:
    """The one-sided normal-mixture boundary for a sum with this (estimated) variance."""
    log_inv = math.log(1.0 / level)
    g = (2 * log_inv + math.log(1 + 2 * log_inv)) / target
    vg = max(variance, 0.0) * g + 1.0
    return math.sqrt(2 * vg / g * math.log(math.sqrt(vg) / level))


@dataclass(frozen=True)
class RobustResult:
    ratio: float | None
    dispersion: float  # psi, as the regression test takes it
    futility_dispersion: float  # psi, as the futility test takes it (lighter prior)
    regression_z: float  # S / boundary for the regression test: >= 1 rejects
    strong_z: float  # the same at alpha * STRONG_EVIDENCE_FACTOR, ``excess`` taken out
    strong_tail: float  # log bound on the canary's count under the gamma-Poisson null
    confirm_z: float  # the regression test with ``excess`` taken out of the sum
    futility_z: float  # S / boundary for the futility test: >= 1 rules out the MDE
    canary_needed: float | None  # about how many more canary requests rule out the MDE


def null_variance(
    e: SequentialEvidence, rho: float, canary_rho: float, psi: float, bias: float
) -> float:
    """The variance of the test's sum under a null at ratio ``rho`` (the canary's own
    counting noise taken at ``canary_rho``): Poisson, plus ``psi``'s multiplicative noise,
    plus the persistent ``bias`` (per unit ratio squared)."""
    # The incomplete batch's multiplicative noise counts in full: a batch is noisy as a
    # whole, however few of its intervals are in.
    scale = e.dispersion_quadratic + e.batch_canary_variance**2
    noise = _model_variance(e.canary_variance, e.baseline_variance, scale, rho, canary_rho, psi)
    return noise + rho * rho * bias


def _model_variance(
    canary_mass: float,
    baseline_variance: float,
    scale: float,
    rho: float,
    canary_rho: float,
    psi: float,
) -> float:
    """The variance model over any span of intervals: the canary's counting noise (its
    expected errors ``canary_mass`` at ``canary_rho``), the scaled baseline's at ``rho``,
    and each arm's multiplicative noise ``psi`` on the span's squared ``scale``."""
    poisson = canary_rho * canary_mass + rho * rho * baseline_variance
    return poisson + psi * (canary_rho**2 + rho**2) * scale


def evaluate(
    e: SequentialEvidence,
    *,
    tolerance: float,
    mde: float,
    alpha: float,
    beta: float,
    bias: float = 0.0,
    futility_bias: float | None = None,
    excess: float = 0.0,
) -> RobustResult:
    """Both tests on the evidence so far (see the module docstring). ``bias``: the variance,
    per unit ratio squared, of a persistent bias in the sum (the canary's draw of pods,
    :func:`controller.core.analysis.pods.bias_variance`), added under both tests' nulls:
    a canary no worse in code is not rolled back for the pods it drew, and a canary x2
    worse in code is not promoted for lucky pods (left out of the futility test, it let
    0.4% of realistic x2 releases through: ``controller.core.analysis.pods``, point 2).
    ``futility_bias``: the futility test's own bias variance when it differs (the caller
    floors the pod spread there, :func:`controller.core.analysis.pods.promotion_spread`);
    ``bias`` when None. ``excess``: the part of the contrast of the interval where the current
    run of rejections began that a confirmation may not rest on (:func:`interval_excess`),
    taken out of the sum for ``confirm_z`` and
    ``strong_z``: a confirmation, or a single look at ``alpha/100`` during the run, must
    rest on evidence that interval did not carry (0 when no run is under way)."""
    psi = overdispersion(e)
    # The promotion side keeps the fixed prior: measured, a history prior there promoted
    # healthy releases later and never sooner where it mattered (docs/judging.md).
    # It weighs each batch as one: its lighter prior was measured with that weighting,
    # and the promotion targets hold with it (docs/judging.md, ninth session).
    psi_fut = overdispersion(e, FUTILITY_PRIOR_BATCHES, history=False, by_information=False)
    lo, hi = 1.0 + tolerance, 1.0 + mde
    fbias = bias if futility_bias is None else futility_bias

    def var(rho: float, canary_rho: float, psi: float, bias: float = bias) -> float:
        return null_variance(e, rho, canary_rho, psi, bias)

    s_reg = e.canary_errors - lo * e.scaled_baseline_errors
    s_fut = hi * e.scaled_baseline_errors - e.canary_errors
    # Both tests take the canary's variance under their null (score-type): an outage
    # cannot widen its own bound, and a canary that merely looks healthy in a noisy
    # window is not given the narrow variance of a healthy one (the Wald-type choice
    # promoted 3-4% of x2 regressions on the realistic bench families).
    seen = hi
    bound = boundary(var(lo, lo, psi), alpha)
    reg_z = s_reg / bound
    strong_z = (s_reg - max(excess, 0.0)) / boundary(
        var(lo, lo, psi), alpha * STRONG_EVIDENCE_FACTOR
    )
    fut_z = s_fut / boundary(var(hi, seen, psi_fut, fbias), beta, FUTILITY_TARGET_VARIANCE)
    return RobustResult(
        ratio=rate_ratio(e),
        dispersion=psi,
        futility_dispersion=psi_fut,
        regression_z=reg_z,
        strong_z=strong_z,
        strong_tail=count_tail(e, lo, psi),
        confirm_z=(s_reg - max(excess, 0.0)) / bound,
        futility_z=fut_z,
        canary_needed=_canary_needed(e, psi_fut, hi, seen, beta, fbias) if fut_z < 1 else 0.0,
    )


#: How many of its own standard deviations of an interval's contrast a confirmation may
#: rest on (Huber's clipping constant, 95% efficient under normal noise; see
#: :func:`interval_excess`).
CONFIRM_CLIP = 1.345


def interval_excess(
    previous: SequentialEvidence | None, e: SequentialEvidence, lo: float, psi: float
) -> float:
    """What a confirmation may not rest on in the newest interval: its contrast at ratio
    ``lo`` (``x_i(lo)``, canary errors beyond ``lo`` times the scaled baseline's) beyond
    :data:`CONFIRM_CLIP` of its own standard deviations under that null (counting noise
    plus ``psi``'s multiplicative noise on that interval alone), at least 0. ``previous``
    is the evidence before the look (None: the first), ``e`` after it (the running sums
    carry over steps, so the differences are that interval's)."""
    c0 = previous.canary_errors if previous is not None else 0.0
    k0 = previous.scaled_baseline_errors if previous is not None else 0.0
    q0 = previous.canary_variance if previous is not None else 0.0
    b0 = previous.baseline_variance if previous is not None else 0.0
    contrast = (e.canary_errors - c0) - lo * (e.scaled_baseline_errors - k0)
    mass = e.canary_variance - q0
    variance = _model_variance(mass, e.baseline_variance - b0, mass**2, lo, lo, psi)
    return max(0.0, contrast - CONFIRM_CLIP * math.sqrt(max(variance, 0.0)))


def count_tail(e: SequentialEvidence, rho: float, psi: float) -> float:
    """A Chernoff bound on the log-probability of the canary's error count (or more) under
    the null at ratio ``rho``, the count taken as gamma-Poisson (negative binomial, NB2)
    with the null's mean ``rho K`` and the model's own multiplicative noise: ``psi`` times
    the share of the batches' squared scale in the squared total (one batch: ``psi``
    itself), so its variance is the canary's part of :func:`null_variance`.

    Why. The normal-mixture boundary rests on the normal approximation of sums of counts;
    at a few expected errors (a one-pod canary in its first minutes) a count's tail under
    multiplicative noise is exponential, not Gaussian, and single looks at ``alpha/100``
    rejected 6 of 1,000 healthy realistic releases (three of them x11-x12 on about one
    expected error; docs/judging.md, tenth session) where the level says 1 in 10,000.
    The gamma-Poisson log moment generating function
    ``Lambda(l) = -(1/psi) log(1 - psi mu (e^l - 1))`` gives, by Chernoff's bound
    ``P(X >= x) <= exp(-(l x - Lambda(l)))`` at the best tilt ``l`` (Cramer's
    large-deviation rate), a tail that is honest at small counts; at many errors it is
    far below any level and adds nothing. The baseline's own noise is left
    out (it only makes the bound smaller: a guard that errs towards rejecting)."""
    mu = rho * e.scaled_baseline_errors
    x = e.canary_errors
    if mu <= 0:
        return 0.0 if x <= 0 else -math.inf
    if x <= mu:
        return 0.0
    mass = e.canary_variance
    scale = e.dispersion_quadratic + e.batch_canary_variance**2
    share = psi * scale / (mass * mass) if mass > 0 else psi
    if share <= 0:  # Poisson: the rate function at x / mu
        return -(x * math.log(x / mu) - (x - mu))
    top = math.log1p(1.0 / (share * mu))  # the moment generating function ends there

    def rate(tilt: float) -> float:
        return tilt * x + math.log1p(-share * mu * math.expm1(tilt)) / share

    low, high = 0.0, top * (1.0 - 1e-12)
    for _ in range(100):  # the rate is concave in the tilt: ternary search
        a, b = low + (high - low) / 3, high - (high - low) / 3
        if rate(a) < rate(b):
            low = a
        else:
            high = b
    return -max(rate((low + high) / 2), 0.0)


@dataclass(frozen=True)
class Reach:
    """Whether the regression test can still reject at this exposure (the canary's pods as
    they are), however much traffic comes: ``limit_z`` is where its statistic tends, in
    standard deviations, with the canary's ratio at the top of what its noise allows
    (``ratio_high``); ``bound_z`` the lowest the boundary will ever be from now on."""

    ratio_high: float
    limit_z: float
    bound_z: float

    @property
    def out_of_reach(self) -> bool:
        return self.limit_z < self.bound_z


def regression_reach(
    e: SequentialEvidence, *, tolerance: float, alpha: float, psi: float, bias: float
) -> Reach | None:
    """Can the regression test ever reject at this exposure? (None: no pod bias, or no
    baseline errors yet: then more traffic always can.)

    With per-pod evidence the canary's draw of pods is a bias in the sum, and a bias does
    not average out: its standard deviation grows with the traffic like the sum's drift
    does. Counting noise and ``psi`` average away (they grow with the square root of the
    traffic, or of the batches), so with the canary's pods as they are the regression
    statistic tends to ``(r - lo) / (lo sqrt(bias) / K)`` standard deviations (``K`` the
    baseline errors the canary's traffic expects, ``bias`` per unit ratio squared as in
    :func:`evaluate`: ``tau^2 (1 + H_b) K^2`` for one pod). ``r`` is taken at the top of
    the anytime-valid ``alpha`` confidence sequence of the counting and ``psi`` noise
    (a true ratio higher than the observed one is still possible early), and the
    boundary at its lowest for any variance from now on (the normal-mixture boundary in
    standard deviations is smallest near its tuning variance and grows slowly past it).
    When even that limit stays below that boundary, the evidence this step can gather
    will never roll the canary back (at one pod, x2.4 against x1.25 with a 20% pod
    spread is 2.8 sd, the boundary at least 3.6): the step can only wait for a deadline.
    Assumes, as the bias does, that the canary's pods stay the same at this exposure."""
    k = e.scaled_baseline_errors
    if bias <= 0 or k <= 0:
        return None
    lo = 1.0 + tolerance
    noise = null_variance(e, lo, lo, psi, 0.0)  # what more traffic averages away
    ratio_high = (e.canary_errors + boundary(noise, alpha)) / k
    limit = (ratio_high - lo) * k / (lo * math.sqrt(bias))
    variance = null_variance(e, lo, lo, psi, bias)
    return Reach(ratio_high, limit, _lowest_bound_z(variance, alpha))


def _lowest_bound_z(variance: float, level: float) -> float:
    """``min over v >= variance`` of ``boundary(v) / sqrt(v)``. With ``u = v g + 1`` that is
    ``sqrt(2 u / (u - 1) (log(u) / 2 + log(1 / level)))``, smallest where ``u - 1 - log u
    = 2 log(1 / level)`` (solved by Newton's method) and increasing past it."""
    log_inv = math.log(1.0 / level)
    g = (2 * log_inv + math.log(1 + 2 * log_inv)) / TARGET_VARIANCE
    u = 2 * log_inv + 2.0
    for _ in range(50):
        u -= (u - 1 - math.log(u) - 2 * log_inv) / (1 - 1 / u)
    v = max(variance, (u - 1) / g)
    return boundary(v, level) / math.sqrt(v)


def _canary_needed(
    e: SequentialEvidence, psi: float, hi: float, seen: float, beta: float, bias: float
) -> float | None:
    """More canary requests until the futility test would pass if the ratios seen so far
    held (None when the canary's ratio is already at or above the MDE, or no data)."""
    if e.canary_total <= 0 or e.baseline_total <= 0:
        return None
    p_b = (e.baseline_errors + 1.0) / (e.baseline_total + 1.0)
    ratio = rate_ratio(e) or 0.0
    if ratio >= hi:
        return None
    kappa = e.canary_total / e.baseline_total
    drift = (hi - ratio) * p_b  # per canary request
    per_batch = BATCH_INTERVALS * e.canary_total / max(e.intervals, 1)
    # Each further batch adds (p_b * per_batch)^2 of multiplicative scale.
    quadratic = psi * (seen**2 + hi**2) * p_b * p_b * per_batch
    var_rate = p_b * (seen + hi * hi * kappa) + quadratic
    s0 = hi * e.scaled_baseline_errors - e.canary_errors
    v0 = null_variance(e, hi, seen, psi, 0.0)  # the bias is added below, as it grows
    # The pod bias grows with the square of the canary's expected errors (a bias, not
    # noise): scale today's with the traffic still to come.
    expected = max(e.canary_variance, 1e-12)

    def enough(extra: float) -> bool:
        grown = (1.0 + p_b * extra / expected) ** 2
        v = v0 + var_rate * extra + hi * hi * bias * grown
        return s0 + drift * extra >= boundary(v, beta, FUTILITY_TARGET_VARIANCE)

    high = 1.0
    while not enough(high):
        high *= 2
        if high > 1e12:
            return None
    low = 0.0
    for _ in range(40):
        mid = (low + high) / 2
        if enough(mid):
            high = mid
        else:
            low = mid
    return high
