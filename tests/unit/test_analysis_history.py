"""The noise prior from the baseline's history (controller.core.analysis.history): it finds
the noise it is given, never goes out of its bounds, leaves shared incidents out, and the
judge uses it on the regression side only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.analysis.history import (
    DISPERSION_CEILING,
    DISPERSION_FLOOR,
    MAX_HISTORY_BATCHES,
    estimate_prior,
    history_dispersion,
    incident_intervals,
)
from controller.core.analysis.pods import PRIOR_POD_SPREAD
from controller.core.analysis.robust import (
    BATCH_INTERVALS,
    PRIOR_OVERDISPERSION,
    evaluate,
    overdispersion,
)
from controller.core.models import SequentialEvidence

from .test_analysis_robust import fold

HOUR = 120  # 30 s intervals


def history(
    rng: np.random.Generator,
    *,
    psi: float = 0.0,
    requests: float = 3000.0,
    ratio: float = 0.005,
    intervals: int = HOUR,
) -> tuple[list[float], list[float]]:
    """Poisson requests; errors Poisson around a ratio that, with ``psi`` > 0, is multiplied
    per batch by a gamma variate of relative variance ``psi`` (gamma-Poisson batches)."""
    m = rng.poisson(requests, intervals).astype(float)
    batches = -(-intervals // BATCH_INTERVALS)
    factor = rng.gamma(1 / psi, psi, batches) if psi > 0 else np.ones(batches)
    per_interval = np.repeat(factor, BATCH_INTERVALS)[:intervals]
    e = rng.poisson(m * ratio * per_interval).astype(float)
    return [float(x) for x in np.minimum(e, m)], [float(x) for x in m]


def test_pure_poisson_history_reads_almost_no_multiplicative_noise() -> None:
    rng = np.random.default_rng(3)
    raw = [history_dispersion(*history(rng)) for _ in range(60)]
    assert all(r is not None for r in raw)
    assert float(np.median([r for r in raw if r is not None])) < 0.01
    prior = estimate_prior(*history(rng))
    assert prior is not None and prior.dispersion == DISPERSION_FLOOR


@pytest.mark.parametrize("psi", [0.05, 0.15, 0.4])
def test_gamma_poisson_history_finds_the_true_dispersion(psi: float) -> None:
    rng = np.random.default_rng(int(psi * 100))
    raw = [history_dispersion(*history(rng, psi=psi)) for _ in range(80)]
    median = float(np.median([r for r in raw if r is not None]))
    assert 0.6 * psi < median < 1.4 * psi


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    rows=st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 400)), min_size=0, max_size=160)
)
def test_the_prior_is_never_negative_and_stays_in_its_bounds(rows: list[tuple[int, int]]) -> None:
    requests = [float(m) for m, _ in rows]
    errors = [float(e) for _, e in rows]  # may exceed requests: clamped as the judge does
    raw = history_dispersion([min(e, m) for e, m in zip(errors, requests, strict=True)], requests)
    assert raw is None or raw >= 0.0
    prior = estimate_prior(errors, requests)
    if prior is None:
        return
    assert DISPERSION_FLOOR <= prior.dispersion <= DISPERSION_CEILING
    assert 0 < prior.batches <= MAX_HISTORY_BATCHES
    assert prior.baseline_errors <= prior.baseline_requests


def test_shared_incidents_are_left_out_of_the_noise() -> None:
    rng = np.random.default_rng(7)
    quiet, burst = [], []
    for _ in range(40):
        errors, requests = history(rng, psi=0.05)
        quiet.append(history_dispersion(errors, requests))
        bursty = list(errors)
        for start in (10, 50, 90):  # three bursts of a minute at x10
            for i in (start, start + 1):
                bursty[i] = min(requests[i], 15 * 10 + errors[i])
        assert sum(incident_intervals(bursty, requests)) >= 6
        burst.append(history_dispersion(bursty, requests))
    assert float(np.median(burst)) < 1.5 * float(np.median(quiet)) + 0.01  # type: ignore[arg-type]


def test_too_little_history_gives_no_prior() -> None:
    rng = np.random.default_rng(1)
    errors, requests = history(rng, intervals=BATCH_INTERVALS * 4)
    assert estimate_prior(errors, requests) is None  # four batches
    errors, requests = history(rng, requests=10.0, ratio=0.001)
    assert estimate_prior(errors, requests) is None  # a handful of errors in the hour
    assert estimate_prior([], []) is None


def test_bad_history_is_an_error_naming_what_was_expected() -> None:
    with pytest.raises(ValueError, match="errors has 2 intervals, requests 3"):
        estimate_prior([1.0, 2.0], [10.0, 10.0, 10.0])
    with pytest.raises(ValueError, match="interval 1: expected counts >= 0"):
        estimate_prior([1.0, -1.0], [10.0, 10.0])
    errors, requests = history(np.random.default_rng(2))
    with pytest.raises(ValueError, match="pod a has 3 intervals"):
        estimate_prior(errors, requests, {"a": ([0.0] * 3, [1.0] * 3), "b": (errors, requests)})


def test_pods_give_the_spread_of_their_persistent_factors() -> None:
    rng = np.random.default_rng(11)
    spreads = []
    for _ in range(30):
        factors = np.exp(rng.normal(0, 0.3, 10))  # a spread of about 0.09
        pods = {}
        for j, f in enumerate(factors):
            m = rng.poisson(300.0, HOUR).astype(float)
            e = rng.poisson(m * 0.005 * f).astype(float)
            pods[f"p{j}"] = ([float(x) for x in e], [float(x) for x in m])
        errors = [sum(p[0][i] for p in pods.values()) for i in range(HOUR)]
        requests = [sum(p[1][i] for p in pods.values()) for i in range(HOUR)]
        prior = estimate_prior(errors, requests, pods)
        assert prior is not None and prior.pod_spread is not None
        assert prior.history_pods == 10 and prior.pod_weight > 2.0
        spreads.append(prior.pod_spread)
    assert PRIOR_POD_SPREAD < float(np.median(spreads)) < 0.15


def test_the_judge_uses_the_prior_for_the_regression_test_only() -> None:
    rng = np.random.default_rng(5)
    prior = estimate_prior(*history(rng))
    assert prior is not None
    seeded = SequentialEvidence(prior=prior)
    assert overdispersion(seeded) == prior.dispersion  # before any batch of the release
    assert overdispersion(SequentialEvidence()) == PRIOR_OVERDISPERSION
    intervals = [(9.0, 600.0, 3.0, 600.0), (8.0, 600.0, 2.0, 600.0)]  # a x3 canary, one minute
    with_prior = evaluate(
        fold(intervals, prior=prior), tolerance=0.25, mde=1.0, alpha=0.01, beta=0.001
    )
    without = evaluate(fold(intervals), tolerance=0.25, mde=1.0, alpha=0.01, beta=0.001)
    assert with_prior.regression_z > without.regression_z  # a quiet service: less noise
    assert with_prior.futility_z == without.futility_z  # promotion never leans on it
