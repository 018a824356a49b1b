"""Per-pod evidence for the sequential error-ratio check: a random-effects view of pods (pure).

Why. Healthy pods of one Deployment differ persistently (node, noisy neighbour, a warm or
cold cache): each pod's error ratio is the service's times a pod factor ``f_j`` that lasts
the whole release. The interval-level test in :mod:`controller.core.analysis.robust` sees
the canary arm as one unit, so (a) a canary of one pod that happens to sit 20% above the
baseline's average is, to it, a canary 20% worse, and only the tolerance absorbs it; and
(b) one bad pod of five (x10 on it) is diluted into an arm x2.8 that drift can hide for
long. When a lane declares the label naming the pod (``podLabel``), the check's counts
also come split by pod, and this module uses them in two ways.

Model (random effects; DerSimonian & Laird 1986, Controlled Clinical Trials 7:177; the
"between-study variance" of meta-analysis with pods as studies). Pod ``j`` serving
``n_j`` requests has errors with mean ``n_j p f_j``, ``log f_j`` spread with variance
``tau^2`` across pods, independently of the code. ``tau^2`` is the relative variance of
a pod's error ratio around its arm's, the **pod spread**.

1. *The pod spread, estimated from the baseline's own pods* by the method of moments:
   Cochran's ``Q = sum_j (e_j - n_j p)^2 / (n_j p)`` around the pooled ratio ``p``, and

       tau^2 = max(0, Q - (k - 1)) / (p (N - sum_j n_j^2 / N))

   (DerSimonian-Laird, on the relative scale; Poisson counting noise inside a pod is what
   ``k - 1`` subtracts). Arm-wide noise (drift, bursts, over-dispersion) multiplies every
   pod of an arm alike within an interval and cancels in ``Q``; pod-level transient noise
   would inflate it, which errs on the safe side. The baseline's pods are the stable copy
   of the same service on the same nodes: their spread is what a healthy canary's pods
   show. Few pods or few errors make the estimate noisy, and under-estimating it is what
   causes false rollbacks, so it is shrunk towards :data:`PRIOR_POD_SPREAD` with the
   weight of :data:`PRIOR_POD_DOF` pods, the data weighing ``(k - 1)`` times their
   reliability (the share of a pod's observed variance that is spread, not counting
   noise, under the prior: empirical-Bayes shrinkage, Efron & Morris 1975).

2. *The canary's pods are a random draw of pods*: their average factor differs from the
   baseline's by a persistent bias whose variance, in the test's sum, is

       tau^2 rho^2 (sum_j E_j^2 + E^2 H_b),

   ``E_j`` the errors canary pod ``j`` would have made at the baseline's ratio (its
   expected count over the release), ``E = sum_j E_j``, ``H_b = sum_b s_b^2`` the
   concentration of the baseline's traffic over its pods. It is added to the variance of
   both tests of :func:`controller.core.analysis.robust.evaluate`. The null is then "the
   *code* is no worse than ``1 + tolerance``", not "these particular pods are": a one-pod
   canary 20% off with a spread of 20% is one standard deviation, not a regression. The
   term grows with the square of the counts, like a bias does: evidence from one pod
   never rules out more than the spread allows, and more pods (later steps) shrink it.
   The futility (promotion) test takes the spread no lower than the prior
   (:func:`promotion_spread`): ten baseline pods estimate it loosely, and a promotion
   must not rest on pods that merely look close together.

3. *Each canary pod is tested against the other canary pods* (when the canary runs two
   pods or more), interval by interval: noise of the whole canary arm (drift, a burst,
   over-dispersion) cancels, as it does in ``Q``. The pod's sum is
   ``c_j - (1 + tolerance) sum_i (n_ij / r_i) d_i`` (``d_i``, ``r_i`` the other pods'
   errors and requests), with the pod's counting noise and its own spread
   ``tau^2 E_j^2 (1 + H)`` in the variance, at level ``alpha / k`` (Bonferroni over the
   ``k`` canary pods). One pod x10 of five stands ``(10 - 1.25) / (1.25 tau)`` spread
   deviations out (35 at 20%) and is rejected as soon as its own counts allow, a few
   minutes at 10 req/s. Small counts also need the counting-tail guard
   (:func:`poisson_z`): the normal approximation under-states Poisson tails there. The
   pod's own spread and the guard's null mean are taken at the pod's expected errors
   *at its neighbours' ratio* (``guard_expected``), not at the baseline's: a baseline
   whose release average one long burst of its own had inflated made a pod at x7 of its
   neighbours uncatchable (realistic_bad_pod_10rps trace 289; docs/judging.md, eleventh
   session). The counting variance keeps the baseline's floor, where larger only widens.

Assumptions, stated: pod factors are independent of one another and of the code, and
constant over the release (a pod that degrades later looks like a pod regression, which it
is); the baseline's pods are exchangeable with the canary's (same nodes, same traffic mix);
the bias enters the mixture bound through its variance, which is exact for a bias fixed
once (a mean-one random factor times a nonnegative supermartingale keeps Ville's bound)
and approximate when the canary's pod set grows between steps; the pod label's values
name pods stably for the release. Status stays bounded: at most :data:`MAX_CANARY_PODS`
canary pods by name (more fold into one ``*`` tally, which over-states their bias
variance, never under-states it) and :data:`MAX_BASELINE_PODS` baseline pods (a sample
of the baseline is enough for a variance component).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from controller.core.analysis.robust import boundary
from controller.core.models import PodEvidence, PodTally, SequentialEvidence
from controller.core.models.release import MAX_BASELINE_PODS, MAX_CANARY_PODS

#: The pod spread assumed before the baseline's pods say otherwise (a relative variance:
#: 0.03 is pods differing by about 17%, what pods of one Deployment on one node pool
#: usually show), and how many pods' worth of evidence it weighs.
PRIOR_POD_SPREAD = 0.03
PRIOR_POD_DOF = 2.0
#: The name of the tally that folds canary pods beyond :data:`MAX_CANARY_PODS`.
FOLDED = "*"
#: One look at this fraction of a pod's level rejects without confirmation (as the arm's).
STRONG_EVIDENCE_FACTOR = 0.01

Counts = Mapping[str, tuple[float, float]]


@dataclass(frozen=True)
class IntervalReference:
    """The baseline arm in one interval: errors, requests, and the reference ratio ``q``."""

    errors: float
    total: float
    ratio: float


def interval_reference(
    before: SequentialEvidence | None, after: SequentialEvidence
) -> IntervalReference | None:
    """The baseline interval the arm-level evidence just folded in (None when the look
    added no interval: no traffic in an arm, or nothing new)."""
    if after.intervals <= (before.intervals if before is not None else 0):
        return None
    b0 = before.baseline_errors if before is not None else 0.0
    m0 = before.baseline_total if before is not None else 0.0
    b, m = after.baseline_errors - b0, after.baseline_total - m0
    if m <= 0:
        return None
    q = max((after.baseline_errors + 1.0) / (after.baseline_total + 1.0), b / m)
    return IntervalReference(b, m, q)


def observe_pods(
    previous: PodEvidence | None,
    *,
    step: int,
    window_seconds: int,
    canary: Counts,
    baseline: Counts,
    reference: IntervalReference | None,
) -> PodEvidence:
    """Fold one look's per-pod cumulative window counts ``{pod: (errors, total)}`` into the
    evidence, as :func:`controller.core.analysis.robust.observe` does for the arms."""
    e = previous.model_copy(deep=True) if previous is not None else PodEvidence()
    fresh = previous is None or step != e.step or window_seconds < e.window_seconds
    e.step, e.window_seconds = step, window_seconds
    if fresh:
        for tally in (*e.canary, *e.baseline):
            tally.last_errors = tally.last_total = 0.0
    steps = [
        (t, *_advance(t, errors, total))
        for t, (errors, total) in _place(e.canary, canary, MAX_CANARY_PODS, fold=True)
    ]
    arm_errors = sum(d_errors for _, d_errors, _ in steps)
    arm_total = sum(d_total for _, _, d_total in steps)
    for tally, d_errors, d_total in steps:
        if reference is None or d_total <= 0:
            continue
        tally.errors += d_errors
        tally.total += d_total
        tally.expected += reference.ratio * d_total
        # The pod's reference is the rest of the canary in the same interval: noise of
        # the whole canary arm (drift, a burst, over-dispersion) cancels, as in Q.
        rest_errors, rest_total = arm_errors - d_errors, arm_total - d_total
        if rest_total <= 0:
            continue
        kappa = d_total / rest_total
        q = max(reference.ratio, rest_errors / rest_total)
        tally.scaled_baseline_errors += kappa * rest_errors
        tally.baseline_variance += q * d_total * kappa
        tally.compared_expected += q * d_total
        tally.compared_errors += d_errors
    if reference is not None:
        _guard_expected(e.canary, steps, arm_errors, arm_total)
    for tally, (errors, total) in _place(e.baseline, baseline, MAX_BASELINE_PODS):
        d_errors, d_total = _advance(tally, errors, total)
        tally.errors += d_errors
        tally.total += d_total
    return e


def _guard_expected(
    canary: list[PodTally],
    steps: list[tuple[PodTally, float, float]],
    arm_errors: float,
    arm_total: float,
) -> None:
    """Add this interval to each canary pod's expected errors at its neighbours' ratio
    (the scale of its bias variance and the counting-tail guard's null mean): its traffic
    at the other canary pods' ratio in this interval, never below their release average.

    Not at ``q`` (the baseline's ratio, never below *its* release average): that floor is
    right for a variance, where larger is only conservative, but as the guard's null
    mean it tracks the baseline's history, and one long burst in the baseline alone kept
    it at 2.4 times the canary's usual ratio for the rest of the release: a pod at x7 of
    its neighbours then looked unremarkable to the guard and was never caught
    (realistic_bad_pod_10rps trace 289, docs/judging.md, eleventh session). The other
    canary pods are the pod test's own reference; their release average smooths their
    small counts as the baseline's did."""
    cum_errors = sum(t.errors for t in canary)
    cum_total = sum(t.total for t in canary)
    for tally, d_errors, d_total in steps:
        rest_errors, rest_total = arm_errors - d_errors, arm_total - d_total
        if tally.name == FOLDED or d_total <= 0 or rest_total <= 0:
            continue
        if tally.guard_expected is None:
            continue  # a tally from before the guard's mean was kept: compared_expected
        usual = (cum_errors - tally.errors + 1.0) / (cum_total - tally.total + 1.0)
        tally.guard_expected += max(rest_errors / rest_total, usual) * d_total


def _place(
    tallies: list[PodTally], counts: Counts, cap: int, *, fold: bool = False
) -> list[tuple[PodTally, tuple[float, float]]]:
    """Each pod's counts against its tally; new pods take free places in name order,
    then fold into :data:`FOLDED` (canary) or are left out (baseline sample)."""
    by_name = {t.name: t for t in tallies}
    placed: dict[str, tuple[float, float]] = {}
    for name in sorted(counts):
        errors, total = counts[name]
        if name not in by_name:
            named = sum(t.name != FOLDED for t in tallies)
            # Canary tallies (``fold``) keep the counting-tail guard's mean from their start.
            guard = 0.0 if fold else None
            if named < cap:
                by_name[name] = PodTally(name=name, guard_expected=guard)
                tallies.append(by_name[name])
            elif fold:
                name = FOLDED
                if name not in by_name:
                    by_name[name] = PodTally(name=name, guard_expected=guard)
                    tallies.append(by_name[name])
            else:
                continue
        e0, n0 = placed.get(name, (0.0, 0.0))
        placed[name] = (e0 + max(0.0, errors), n0 + max(0.0, total))
    return [(by_name[name], counts) for name, counts in placed.items()]


def _advance(tally: PodTally, errors: float, total: float) -> tuple[float, float]:
    d_total = max(0.0, total - tally.last_total)
    d_errors = min(max(0.0, errors - tally.last_errors), d_total)
    tally.last_errors = max(errors, tally.last_errors)
    tally.last_total = max(total, tally.last_total)
    return d_errors, d_total


def between_pod_variance(
    baseline: list[PodTally],
    prior: float = PRIOR_POD_SPREAD,
    prior_weight: float = PRIOR_POD_DOF,
) -> float:
    """The pod spread ``tau^2`` (see the module docstring, point 1), shrunk towards
    ``prior`` with the weight of ``prior_weight`` pods (the fixed prior, or the one the
    baseline's history gave: :mod:`controller.core.analysis.history`)."""
    pods = [t for t in baseline if t.total > 0]
    k = len(pods)
    n = sum(t.total for t in pods)
    errors = sum(t.errors for t in pods)
    if k < 2 or errors <= 0:
        return prior
    p = errors / n
    q = sum((t.errors - t.total * p) ** 2 / (t.total * p) for t in pods)
    spread_n = n - sum(t.total**2 for t in pods) / n
    if spread_n <= 0:
        return prior
    estimate = max(0.0, q - (k - 1)) / (p * spread_n)
    per_pod = errors / k
    reliability = per_pod * PRIOR_POD_SPREAD / (1.0 + per_pod * PRIOR_POD_SPREAD)
    weight = (k - 1) * reliability
    return (prior_weight * prior + weight * estimate) / (prior_weight + weight)


def promotion_spread(spread: float) -> float:
    """The pod spread the futility (promotion) test assumes: the estimate, never below
    :data:`PRIOR_POD_SPREAD`. Ten baseline pods estimate ``tau^2`` loosely (one release in
    the bench's realistic x2 family read 0.008 where the truth is 0.04, and promoted a
    x2 whose pods looked x1.1); under-estimating it is on the promoting side there, as it
    is on the rolling-back side for the regression test, which the shrinkage guards."""
    return max(spread, PRIOR_POD_SPREAD)


def baseline_concentration(baseline: list[PodTally]) -> float:
    """``H_b``: the sum of the squared traffic shares of the baseline's (sampled) pods."""
    n = sum(t.total for t in baseline)
    if n <= 0:
        return 1.0
    return sum((t.total / n) ** 2 for t in baseline)


def bias_variance(pods: PodEvidence, spread: float) -> float:
    """The variance, per unit ``rho^2``, that the canary's draw of pods adds to the arm's
    sum (point 2): ``tau^2 (sum_j E_j^2 + E^2 H_b)``."""
    expected = [t.expected for t in pods.canary]
    total = sum(expected)
    return spread * (
        sum(x * x for x in expected) + total * total * baseline_concentration(pods.baseline)
    )


#: The tilts of the counting-tail test (rate ratios 2 to 32), each at an equal share of
#: the level.
_TILTS = tuple(math.log(2.0**k) for k in range(1, 6))


def poisson_z(count: float, null_mean: float, level: float) -> float:
    """A counting-tail guard for small counts, >= 1 when it rejects "mean <= null_mean".

    A pod sees few errors early, where the normal approximation under-states how often
    Poisson counts land far out (6 errors where 0.75 were due happens 1 time in 10,000,
    not 1 in a billion). For each tilt ``l``, ``exp(l X_t - mu_t (e^l - 1))`` is a
    nonnegative martingale under a Poisson null, so by Ville's inequality ``l X_t -
    mu_t (e^l - 1) >= log(L / level)`` at some look has probability at most
    ``level / L``; a union over the ``L`` tilts keeps ``level``. The pod test rejects only
    where this guard and the normal-mixture bound both do, so it keeps the guarantee of
    each: the normal one on over-dispersed counts, this one in the far tail of small
    counts."""
    threshold = math.log(len(_TILTS) / level)
    best = max(t * count - null_mean * (math.exp(t) - 1.0) for t in _TILTS)
    return best / threshold


@dataclass(frozen=True)
class PodResult:
    """The most suspicious canary pod's test (point 3): ``z`` is its sum over its bound
    (>= 1 rejects), ``strong_z`` the same at :data:`STRONG_EVIDENCE_FACTOR` of its level."""

    name: str
    ratio: float | None
    z: float
    strong_z: float


def worst_pod(
    e: SequentialEvidence, *, psi: float, spread: float, tolerance: float, alpha: float
) -> PodResult | None:
    """Each canary pod against the baseline at ``alpha / k``; the one nearest rejection.
    None when the canary runs fewer than two pods (the arm's test is that pod's test)."""
    pods = e.pods
    if pods is None or len(pods.canary) < 2:
        return None
    lo = 1.0 + tolerance
    level = alpha / len(pods.canary)
    best: PodResult | None = None
    for t in pods.canary:
        if t.name == FOLDED or t.compared_expected <= 0:
            continue
        others = [o.total for o in pods.canary if o is not t]
        concentration = baseline_concentration([PodTally(name="-", total=n) for n in others])
        # The pod's expected errors at its neighbours' ratio: the scale of its persistent
        # bias and the counting-tail guard's null mean. The counting variance keeps ``q``
        # (the baseline's ratio, never below its release average: larger is only
        # conservative there, linearly); squared in the bias term, one long burst in the
        # baseline alone inflated it 25-fold and no pod could ever be caught
        # (:func:`_guard_expected`).
        expected = t.compared_expected if t.guard_expected is None else t.guard_expected
        variance = (
            lo * t.compared_expected
            + lo * lo * t.baseline_variance
            + spread * lo * lo * expected**2 * (1.0 + concentration)
        )
        c, k = t.compared_errors, t.scaled_baseline_errors
        s = c - lo * k
        null_mean = lo * expected
        result = PodResult(
            name=t.name,
            ratio=c / k if k > 0 else None,
            z=min(s / boundary(variance, level), poisson_z(c, null_mean, level)),
            strong_z=min(
                s / boundary(variance, level * STRONG_EVIDENCE_FACTOR),
                poisson_z(c, null_mean, level * STRONG_EVIDENCE_FACTOR),
            ),
        )
        if best is None or result.z > best.z:
            best = result
    return best
