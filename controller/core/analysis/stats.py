"""Anytime-valid comparison of canary and baseline event counts (pure, stdlib only).

The model (after Lindon et al., "Rapid regression detection in software deployments
through sequential testing", 2022): bad events in each arm form Poisson processes whose
rates are proportional to the arm's traffic. Given the total number of bad events ``k``,
each one came from the canary with probability

    theta(rho) = rho * q / (rho * q + 1 - q),   q = canary share of the traffic,

where ``rho`` is the ratio of the canary's error ratio to the baseline's. Whatever the
baseline error ratio, drifting or not, ``rho = 1`` means "no worse". For each alternative
``rho_j`` the likelihood ratio against the null is a test martingale in the sequence of
bad events, and so is any mixture of them; by Ville's inequality the chance that the
mixture *ever* reaches ``1/alpha`` under the null is at most ``alpha``. That is why looking
at every interval does not inflate false rollbacks, and why the statistic only needs the
cumulative counts of the window (the traffic split is constant within a canary step).

Two such tests run side by side:

- *regression*: null ``rho <= 1`` against a grid of ``rho > 1``; crossing 1/alpha fails.
- *futility*: null ``rho >= 1 + mde`` against a grid of ``rho < 1 + mde``; crossing
  1/(1 - power) means a regression as large as the declared minimum detectable effect is
  ruled out, which is the only way a sequential check passes. A canary exactly at the
  MDE therefore passes with probability at most 1 - power (0.1% by default).

For a grid point beyond the null the per-event likelihood ratio of a composite null's
other members is at most that of its boundary, so testing at the boundary covers it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

#: Grid half-steps on the log scale: rho = (1 + mde) ** (j / 2).
_HALF_STEPS_UP = 12
_HALF_STEPS_DOWN = 6


def regression_grid(mde: float) -> list[float]:
    base = 1.0 + mde
    return [base ** (j / 2) for j in range(1, _HALF_STEPS_UP + 1)]


def futility_grid(mde: float) -> list[float]:
    base = 1.0 + mde
    return [base ** (1 - j / 2) for j in range(1, _HALF_STEPS_DOWN + 1)]


def theta(rho: float, share: float) -> float:
    return rho * share / (rho * share + 1.0 - share)


def log_mixture_lr(
    canary_bad: float, baseline_bad: float, share: float, null_rho: float, grid: Sequence[float]
) -> float:
    """log of the equal-weight mixture likelihood ratio of ``grid`` against ``null_rho``."""
    t0 = theta(null_rho, share)
    terms = []
    for rho in grid:
        t = theta(rho, share)
        terms.append(canary_bad * math.log(t / t0) + baseline_bad * math.log((1 - t) / (1 - t0)))
    top = max(terms)
    return top + math.log(sum(math.exp(x - top) for x in terms)) - math.log(len(terms))


@dataclass(frozen=True)
class SequentialResult:
    canary_ratio: float | None
    baseline_ratio: float | None
    rate_ratio: float | None
    p_regression: float  # anytime-valid p-value of "canary no worse"
    p_futility: float  # anytime-valid p-value of "canary worse by the MDE or more"
    beta: float  # the futility test's level: 1 - power
    bad_events: float
    required_bad_events: float  # fixed-horizon floor for the MDE (for the message)


def sequential_test(
    canary_bad: float,
    canary_total: float,
    baseline_bad: float,
    baseline_total: float,
    *,
    mde: float,
    alpha: float,
    power: float = 0.999,
) -> SequentialResult:
    """Both anytime-valid p-values for cumulative counts of one window.

    Needs positive totals in both arms; counts may be fractional (``increase()``
    extrapolates), the likelihood is used as a formula in them.
    """
    if canary_total <= 0 or baseline_total <= 0:
        raise ValueError("both arms need traffic")
    share = canary_total / (canary_total + baseline_total)
    mde_rho = 1.0 + mde
    log_reg = log_mixture_lr(canary_bad, baseline_bad, share, 1.0, regression_grid(mde))
    log_fut = log_mixture_lr(canary_bad, baseline_bad, share, mde_rho, futility_grid(mde))
    canary_ratio = canary_bad / canary_total
    baseline_ratio = baseline_bad / baseline_total
    rate_ratio = canary_ratio / baseline_ratio if baseline_ratio > 0 else None
    return SequentialResult(
        canary_ratio=canary_ratio,
        baseline_ratio=baseline_ratio,
        rate_ratio=rate_ratio,
        p_regression=min(1.0, math.exp(-log_reg)),
        p_futility=min(1.0, math.exp(-log_fut)),
        beta=1.0 - power,
        bad_events=canary_bad + baseline_bad,
        required_bad_events=fixed_horizon_bad_events(share, mde_rho, alpha=alpha, power=0.8),
    )


def fixed_horizon_bad_events(share: float, rho: float, *, alpha: float, power: float) -> float:
    """Bad events (both arms) a one-sided fixed-horizon conditional binomial test needs to
    detect a rate ratio ``rho`` with this power: the floor no sequential test can beat."""
    t0, t1 = theta(1.0, share), theta(rho, share)
    z_a = NormalDist().inv_cdf(1 - alpha)
    z_b = NormalDist().inv_cdf(power)
    root = z_a * math.sqrt(t0 * (1 - t0)) + z_b * math.sqrt(t1 * (1 - t1))
    return (root / (t1 - t0)) ** 2


def fixed_horizon_requests_per_arm(
    p0: float, p1: float, *, alpha: float, power: float, two_sided: bool
) -> float:
    """Requests per arm a fixed-horizon two-proportion z-test needs to tell p0 from p1."""
    z_a = NormalDist().inv_cdf(1 - alpha / 2 if two_sided else 1 - alpha)
    z_b = NormalDist().inv_cdf(power)
    mean = (p0 + p1) / 2
    root = z_a * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))
    return (root / (p1 - p0)) ** 2


def ratio_upper_bound(bad: float, total: float, alpha: float) -> float:
    """One-sided (1 - alpha) Chernoff upper bound on an error ratio from ``bad``/``total``:
    the largest u with total * KL(bad/total || u) <= log(1/alpha)."""
    if total <= 0:
        return 1.0
    p_hat = min(1.0, max(0.0, bad / total))
    target = math.log(1 / alpha) / total

    def kl(p: float, q: float) -> float:
        out = 0.0
        if p > 0:
            out += p * math.log(p / q)
        if p < 1:
            out += (1 - p) * math.log((1 - p) / (1 - q))
        return out

    lo, hi = p_hat, 1.0 - 1e-12
    if kl(p_hat, hi) <= target:
        return 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if kl(p_hat, mid) > target:
            hi = mid
        else:
            lo = mid
    return hi
