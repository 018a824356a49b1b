"""Decision-quality benchmark: changelane's analysis against Flagger's and Argo Rollouts'
default rules, on the same generated traces.

Traces are per-scrape (every 10 s) request counts, error counts and latency-histogram
bucket counts for a canary and a baseline arm receiving the same request rate, for one
hour, with realistic noise (Poisson traffic, per-arm per-scrape overdispersion of the
error ratio) and drift shared by both arms (a traffic swing and a random walk of the
error ratio, as a dependency or diurnal load would cause). Healthy error ratio 0.5%,
latency lognormal with p95 about 140 ms.

Judges, evaluated on the data up to each tick:

- ``changelane``: the bench lane below (a sequential error-rate check and a relative p95
  latency check, every other setting at its default), driven through ``judge`` and
  ``apply_measurement`` exactly as the controller does, with the window the runtime passes
  (time since the step started), every 30 s (the lane default interval); a step of 5 min
  minimum; promotion when every check's latest verdict at the step is a Pass.
- ``flagger``: interval 1m; request-success-rate over the last 1m >= 99%; a failed check
  (including a query error or no values) increments a cumulative counter that no success
  resets; rollback when it reaches the threshold 5; promotion after 5 successful checks.
- ``argo``: interval 1m; success rate over the last 1m; ``successCondition result[0] >=
  0.99``, ``failureCondition result[0] < 0.95`` (between the two is Inconclusive);
  failureLimit 0 (first Fail aborts), consecutiveErrorLimit 4 (the 5th error in a row
  aborts; an empty result is an error, as ``result[0]`` of an empty vector is), an
  Inconclusive pauses the rollout; count 5 (promoted after 5 successful measurements).

Figures per scenario and judge: false_rollback_rate (scenarios without a regression),
missed_regression_rate (share of regression traces not rolled back within the hour:
promoted, paused or still undecided), promoted_rate, and the median and p90 of the time
from regression onset to the rollback decision.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from controller.core.analysis import (
    CheckSample,
    Outcome,
    apply_measurement,
    judge,
    worst,
)
from controller.core.analysis.sample import QueryResult, Role, SeriesKey, Track, no_data, ok
from controller.core.analysis.stats import fixed_horizon_requests_per_arm
from controller.core.models import AnalysisCheck, AnalysisSpec, CheckStatus, Verdict, parse_duration

Array = npt.NDArray[np.float64]

SCRAPE_S = 10
HORIZON_S = 3600
BASE_ERROR_RATIO = 0.005
LATENCY_MEDIAN_S = 0.06
LATENCY_SIGMA = 0.5
BUCKETS = (0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0)
MIN_STEP_S = 300  # the bench lane's one analysed step: minDuration 5m
T0 = datetime(2026, 1, 1, tzinfo=UTC)

SELECT = 'namespace="{{ namespace }}", app="{{ workload }}", track="{{ track }}"'
BENCH_CHECKS: list[dict[str, Any]] = [
    {
        "name": "error-rate",
        "kind": "sequential",
        "errorsQuery": "sum(increase(http_requests_total{"
        + SELECT
        + ', code=~"5.."}[{{ window }}]))',
        "totalQuery": "sum(increase(http_requests_total{" + SELECT + "}[{{ window }}]))",
    },
    {
        "name": "latency-p95",
        "kind": "relative",
        "query": "histogram_quantile(0.95, sum by (le) (rate("
        "http_request_duration_seconds_bucket{" + SELECT + "}[{{ window }}])))",
        "totalQuery": "sum(increase(http_requests_total{" + SELECT + "}[{{ window }}]))",
        "maxRatio": 1.5,
        "threshold": 0.1,
        "minSamples": 200,
    },
]


@dataclass(frozen=True)
class Scenario:
    name: str
    rps: float
    regression: bool
    onset_s: float | None = None
    error_multiplier: Callable[[Array], Array] | None = None  # canary, of time (s)
    latency_multiplier: float = 1.0
    canary_missing: bool = False
    prometheus_down_from_s: float | None = None


def _const(k: float) -> Callable[[Array], Array]:
    return lambda t: np.full_like(t, k)


def _gradual(t: Array) -> Array:
    # from 3 min on, the canary's error ratio climbs linearly to 10x over 15 minutes
    return np.clip(1 + 9 * (t - 180) / 900, 1, 10)


def _outage(t: Array) -> Array:
    return np.where(t >= 120, 1 / BASE_ERROR_RATIO, 1.0)


SCENARIOS = [
    Scenario("healthy_10rps", 10, False),
    Scenario("healthy_1rps", 1, False),
    Scenario("errors_x2_10rps", 10, True, 0, _const(2)),
    Scenario("errors_x5_10rps", 10, True, 0, _const(5)),
    Scenario("errors_x20_10rps", 10, True, 0, _const(20)),
    Scenario("outage_10rps", 10, True, 120, _outage),
    Scenario("latency_x2_10rps", 10, True, 0, latency_multiplier=2.0),
    Scenario("gradual_10rps", 10, True, 180, _gradual),
    Scenario("no_data", 10, False, canary_missing=True),
    Scenario("prometheus_outage", 10, False, prometheus_down_from_s=60),
]
JUDGES = ("changelane", "flagger", "argo")


# --------------------------------------------------------------------------- traces


@dataclass(frozen=True)
class Traces:
    """Per-scrape counts, shape (traces, scrapes) and (traces, scrapes, buckets+1)."""

    scenario: Scenario
    canary_requests: Array
    canary_errors: Array
    baseline_requests: Array
    baseline_errors: Array
    canary_buckets: Array
    baseline_buckets: Array

    @property
    def times(self) -> Array:
        return np.arange(1, self.canary_requests.shape[1] + 1, dtype=np.float64) * SCRAPE_S


def _bucket_probabilities(median: float) -> Array:
    edges = np.log(np.array(BUCKETS) / median) / LATENCY_SIGMA
    cdf = np.array([0.5 * (1 + math.erf(e / math.sqrt(2))) for e in edges])
    return np.diff(np.concatenate([[0.0], cdf, [1.0]]))


def generate(scenario: Scenario, traces: int, rng: np.random.Generator) -> Traces:
    scrapes = HORIZON_S // SCRAPE_S
    t = np.arange(1, scrapes + 1, dtype=np.float64) * SCRAPE_S
    shape = (traces, scrapes)
    # shared drift: a traffic swing of +/-20% and a random walk of the error ratio
    phase = rng.uniform(0, 2 * np.pi, (traces, 1))
    load = 1 + 0.2 * np.sin(2 * np.pi * t / 1800 + phase)
    walk = np.cumsum(rng.normal(0, 0.03, shape), axis=1)
    shared_ratio = BASE_ERROR_RATIO * np.exp(np.clip(walk, -0.5, 0.5))
    mean_requests = scenario.rps * SCRAPE_S * load

    def arm(multiplier: Array, latency_mult: float) -> tuple[Array, Array, Array]:
        requests = rng.poisson(mean_requests).astype(np.float64)
        overdispersion = np.exp(rng.normal(0, 0.15, shape))
        ratio = np.clip(shared_ratio * overdispersion * multiplier, 0, 1)
        errors = rng.binomial(requests.astype(np.int64), ratio).astype(np.float64)
        probs = _bucket_probabilities(LATENCY_MEDIAN_S * latency_mult)
        buckets = rng.multinomial(requests.astype(np.int64), probs).astype(np.float64)
        return requests, errors, buckets

    ones = np.ones(scrapes)
    # a scrape reports the interval that ended at t: a regression starting at the onset
    # first shows in the scrape whose interval starts there
    starts = t - SCRAPE_S
    canary_mult = scenario.error_multiplier(starts) if scenario.error_multiplier else ones
    c_req, c_err, c_buckets = arm(np.broadcast_to(canary_mult, shape), scenario.latency_multiplier)
    b_req, b_err, b_buckets = arm(np.broadcast_to(ones, shape), 1.0)
    return Traces(scenario, c_req, c_err, b_req, b_err, c_buckets, b_buckets)


def histogram_quantile(q: float, cumulative_buckets: Array) -> Array:
    """Prometheus's histogram_quantile over the last axis of per-bucket counts (finite
    buckets then +Inf): NaN when empty; the last finite bound when in the +Inf bucket."""
    counts = np.cumsum(cumulative_buckets, axis=-1)
    total = counts[..., -1]
    rank = q * total
    index = np.argmax(counts >= rank[..., None], axis=-1)
    bounds = np.array((0.0, *BUCKETS))
    finite = index < len(BUCKETS)
    safe = np.minimum(index, len(BUCKETS) - 1)
    lower = bounds[safe]
    upper = bounds[safe + 1]
    below = np.where(
        safe > 0, np.take_along_axis(counts, np.maximum(safe - 1, 0)[..., None], -1)[..., 0], 0.0
    )
    inside = np.take_along_axis(counts, safe[..., None], -1)[..., 0] - below
    with np.errstate(divide="ignore", invalid="ignore"):
        value = lower + (upper - lower) * (rank - below) / inside
    value = np.where(finite, value, BUCKETS[-1])
    return np.where(total > 0, value, np.nan)


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Decision:
    kind: str  # "rollback", "promote", "pause", "undecided"
    at_s: float | None


def _ticks(interval_s: float) -> Iterator[tuple[float, int]]:
    t = interval_s
    while t <= HORIZON_S:
        yield t, int(t // SCRAPE_S) - 1  # index of the last scrape at or before t
        t += interval_s


def run_changelane(tr: Traces, checks: list[AnalysisCheck], interval_s: float) -> list[Decision]:
    n = tr.canary_requests.shape[0]
    cum = {
        (Track.CANARY, Role.TOTAL): np.cumsum(tr.canary_requests, axis=1),
        (Track.CANARY, Role.ERRORS): np.cumsum(tr.canary_errors, axis=1),
        (Track.BASELINE, Role.TOTAL): np.cumsum(tr.baseline_requests, axis=1),
        (Track.BASELINE, Role.ERRORS): np.cumsum(tr.baseline_errors, axis=1),
    }
    p95 = {
        Track.CANARY: histogram_quantile(0.95, np.cumsum(tr.canary_buckets, axis=1)),
        Track.BASELINE: histogram_quantile(0.95, np.cumsum(tr.baseline_buckets, axis=1)),
    }
    s = tr.scenario
    down_from = s.prometheus_down_from_s
    out: list[Decision] = []
    for i in range(n):
        statuses = {c.name: CheckStatus(name=c.name) for c in checks}
        decision = Decision("undecided", None)
        for t, k in _ticks(interval_s):
            window = int(t)
            outcomes = []
            for c in checks:
                if down_from is not None and t >= down_from:
                    sample = CheckSample(
                        "bench",
                        c.name,
                        window,
                        error=f"lane bench, check {c.name}: Prometheus "
                        "at http://127.0.0.1:9090 failed 3 attempts: ConnectionError",
                    )
                else:
                    results: dict[SeriesKey, QueryResult] = {}
                    for track in (Track.CANARY, Track.BASELINE):
                        missing = track is Track.CANARY and s.canary_missing
                        for role in (Role.ERRORS, Role.TOTAL):
                            key = SeriesKey(track, role, window)
                            results[key] = (
                                no_data() if missing else ok(float(cum[(track, role)][i, k]))
                            )
                        value = float(p95[track][i, k])
                        key = SeriesKey(track, Role.VALUE, window)
                        results[key] = no_data() if missing or math.isnan(value) else ok(value)
                    sample = CheckSample("bench", c.name, window, results=results)
                m = judge(c, sample, step=0, now=T0 + timedelta(seconds=t))
                statuses[c.name], outcome, _ = apply_measurement(c, statuses[c.name], m)
                outcomes.append(outcome)
            o = worst(outcomes)
            if o is Outcome.ROLLBACK:
                decision = Decision("rollback", t)
                break
            if o is Outcome.PAUSE:
                decision = Decision("pause", t)
                break
            all_passed = all(
                st.last_verdict is Verdict.PASS and st.passes_at_step > 0
                for st in statuses.values()
            )
            if t >= MIN_STEP_S and all_passed:
                decision = Decision("promote", t)
                break
        out.append(decision)
    return out


def _success_rate_1m(tr: Traces) -> tuple[Array, Array]:
    """Success rate over the last minute at each 1m tick, and whether the query had data."""
    per_min = 60 // SCRAPE_S
    scrapes = tr.canary_requests.shape[1]
    minutes = scrapes // per_min
    req = tr.canary_requests[:, : minutes * per_min].reshape(-1, minutes, per_min).sum(axis=2)
    err = tr.canary_errors[:, : minutes * per_min].reshape(-1, minutes, per_min).sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = 1 - err / req
    has_data = np.full(req.shape, not tr.scenario.canary_missing)
    return rate, has_data


def run_flagger(tr: Traces) -> list[Decision]:
    rate, has_data = _success_rate_1m(tr)
    down = tr.scenario.prometheus_down_from_s
    out = []
    for i in range(rate.shape[0]):
        failed = succeeded = 0
        decision = Decision("undecided", None)
        for j in range(rate.shape[1]):
            t = 60.0 * (j + 1)
            query_failed = (down is not None and t >= down) or not has_data[i, j]
            # rate() over a window without requests is NaN: Flagger reports no values (fail)
            if query_failed or math.isnan(rate[i, j]) or rate[i, j] * 100 < 99:
                failed += 1
                if failed >= 5:
                    decision = Decision("rollback", t)
                    break
            else:
                succeeded += 1
                if succeeded >= 5:
                    decision = Decision("promote", t)
                    break
        out.append(decision)
    return out


def run_argo(tr: Traces) -> list[Decision]:
    rate, has_data = _success_rate_1m(tr)
    down = tr.scenario.prometheus_down_from_s
    out = []
    for i in range(rate.shape[0]):
        consecutive_errors = successes = 0
        decision = Decision("undecided", None)
        for j in range(rate.shape[1]):
            t = 60.0 * (j + 1)
            if (down is not None and t >= down) or not has_data[i, j]:
                consecutive_errors += 1
                if consecutive_errors > 4:
                    decision = Decision("rollback", t)
                    break
                continue
            consecutive_errors = 0
            value = rate[i, j]
            if value >= 0.99:
                successes += 1
                if successes >= 5:
                    decision = Decision("promote", t)
                    break
            elif value < 0.95:
                decision = Decision("rollback", t)  # failureLimit 0: the first Fail aborts
                break
            else:
                decision = Decision("pause", t)  # Inconclusive (NaN too): waits for a human
                break
        out.append(decision)
    return out


# --------------------------------------------------------------------------- figures


def figures(scenario: Scenario, judge_name: str, decisions: list[Decision]) -> dict[str, Any]:
    n = len(decisions)
    rolled = [d for d in decisions if d.kind == "rollback"]
    promoted = sum(d.kind == "promote" for d in decisions)
    row: dict[str, Any] = {
        "scenario": scenario.name,
        "judge": judge_name,
        "traces": n,
        "false_rollback_rate": None,
        "missed_regression_rate": None,
        "promoted_rate": promoted / n,
        "detection_median_s": None,
        "detection_p90_s": None,
    }
    if scenario.regression:
        row["missed_regression_rate"] = (n - len(rolled)) / n
        onset = scenario.onset_s or 0.0
        times = [max(0.0, (d.at_s or 0.0) - onset) for d in rolled]
        if times:
            row["detection_median_s"] = float(np.median(times))
            row["detection_p90_s"] = float(np.percentile(times, 90))
    else:
        row["false_rollback_rate"] = len(rolled) / n
    return row


def bench_checks() -> tuple[list[AnalysisCheck], float]:
    spec = AnalysisSpec.model_validate({"checks": BENCH_CHECKS})
    return spec.checks, parse_duration(spec.interval)


def sample_size_floor(
    multiplier: float = 5.0, rps: float = 10.0, *, alpha: float = 0.05, two_sided: bool = True
) -> tuple[float, float]:
    """Requests per arm and seconds a fixed-horizon test needs to detect the x5 error
    regression at power 0.8 (DESIGN.md's convention: alpha 0.05 two-sided)."""
    p0 = BASE_ERROR_RATIO
    n = fixed_horizon_requests_per_arm(
        p0, p0 * multiplier, alpha=alpha, power=0.8, two_sided=two_sided
    )
    return n, n / rps


def run(traces: int = 200, seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    checks, interval_s = bench_checks()
    rows = []
    started = time.monotonic()
    for scenario in SCENARIOS:
        tr = generate(scenario, traces, rng)
        rows.append(figures(scenario, "changelane", run_changelane(tr, checks, interval_s)))
        rows.append(figures(scenario, "flagger", run_flagger(tr)))
        rows.append(figures(scenario, "argo", run_argo(tr)))
    n_floor, s_floor = sample_size_floor()
    n_floor_strict, s_floor_strict = sample_size_floor(alpha=checks[0].alpha, two_sided=False)
    return {
        "scenarios": rows,
        "settings": {
            "traces": traces,
            "seed": seed,
            "scrape_interval_s": SCRAPE_S,
            "horizon_s": HORIZON_S,
            "base_error_ratio": BASE_ERROR_RATIO,
            "changelane_interval_s": interval_s,
            "changelane_checks": [c.to_wire() for c in checks],
        },
        "sample_size_floor": {
            "effect": "errors x5 at 10 req/s per arm (0.5% -> 2.5%)",
            "requests_per_arm": n_floor,
            "seconds": s_floor,
            "convention": "fixed horizon, alpha 0.05 two-sided, power 0.8",
            "strict_requests_per_arm": n_floor_strict,
            "strict_seconds": s_floor_strict,
            "strict_convention": f"fixed horizon, alpha {checks[0].alpha:g} one-sided, power 0.8",
        },
        "elapsed_s": time.monotonic() - started,
    }


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.1f}%" if pct else f"{x:.0f}"


def table(result: dict[str, Any]) -> str:
    head = (
        f"{'scenario':<19} {'judge':<11} {'traces':>6} {'false rb':>9} {'missed':>8} "
        f"{'promoted':>9} {'detect p50':>10} {'detect p90':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in result["scenarios"]:
        false_rb = _fmt(r["false_rollback_rate"], True)
        missed = _fmt(r["missed_regression_rate"], True)
        lines.append(
            f"{r['scenario']:<19} {r['judge']:<11} {r['traces']:>6} {false_rb:>9} {missed:>8} "
            f"{_fmt(r['promoted_rate'], True):>9} {_fmt(r['detection_median_s']):>10} "
            f"{_fmt(r['detection_p90_s']):>10}"
        )
    floor = result["sample_size_floor"]
    by = {(r["scenario"], r["judge"]): r for r in result["scenarios"]}
    ours = by[("errors_x5_10rps", "changelane")]["detection_median_s"]
    theirs = by[("errors_x5_10rps", "flagger")]["detection_median_s"]
    lines.append("")
    lines.append(
        f"fixed-horizon floor for {floor['effect']}: {floor['requests_per_arm']:.0f} requests "
        f"per arm = {floor['seconds']:.0f} s ({floor['convention']}); "
        f"{floor['strict_requests_per_arm']:.0f} = {floor['strict_seconds']:.0f} s "
        f"({floor['strict_convention']})"
    )
    if ours and theirs:
        lines.append(
            f"errors_x5_10rps median detection: changelane {ours:.0f} s, flagger {theirs:.0f} s "
            f"({theirs / ours:.1f}x faster); {ours / floor['seconds']:.2f}x the floor"
        )
    lines.append(
        f"{result['settings']['traces']} traces per scenario, seed {result['settings']['seed']}, "
        f"{result['elapsed_s']:.0f} s"
    )
    return "\n".join(lines)
