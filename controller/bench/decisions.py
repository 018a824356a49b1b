"""Decision-quality benchmark: changelane's analysis against Flagger's and Argo Rollouts'
default rules, per release (the whole ramp), on the same generated or recorded traces.

The bench lane: three steps (canary weight 10%, 50%, 100%; minDuration 2m each), checks
every 30 s: a sequential error-ratio check and a relative p95 latency check (maxRatio 1.5),
every other setting at its default. Traffic is replica-weighted as the controller does it:
at weight ``w`` the canary serves ``w : 100`` of the baseline's traffic (about a tenth at
10%, half at 50%, as much at 100%) in the ``steps`` families; the historical families
give both arms the same rate. A family's ``rps`` is the canary's request rate at the
first step (the service's total is constant over the ramp).

Noise families (parameters fixed from what production shows, not from what the judge
tolerates; see docs/judging.md):

- ``overdispersed``: every 10 s scrape's request rate and error ratio are multiplied by
  independent gamma variates per arm (request cv 0.22, error cv 0.71): gamma-Poisson counts;
- ``bursts``: error bursts shared by both arms (4 an hour, about 30 s, error ratio x10
  median, lognormal);
- ``pods``: persistent per-pod heterogeneity of healthy code: each pod's error ratio is
  multiplied by a lognormal factor (sd 0.2) for the whole release; the baseline has 10
  pods, the canary ``ceil(w / 10)`` of its own (1 at 10%, 5 at 50%, 10 at 100%); each
  pod serves an equal share of its arm's requests, and the judge gets per-pod counts
  (the bench lane's error check declares ``podLabel: pod``);
- ``drift``: independent transient drift per arm: an Ornstein-Uhlenbeck log error ratio per
  arm, sd 0.3, correlation time 2 minutes;
- ``diurnal``: traffic and error ratio follow a day curve (x0.5..x1.5) from a random hour;
- ``realistic``: all of the above at once; also at 1 and 0.2 req/s, with regressions of
  x2, x5 and x20, an outage, a x3 regression starting mid-step, one bad pod of five
  (error ratio x10 on it), and a Prometheus outage that ends after 10 minutes;
- ``_3h``: three-hour traces (x2 with equal arms, x2 and healthy realistic) on the bench
  lane with an evidence deadline and inconclusive limit as long as the trace.

Judges, per release, evaluated on the data up to each tick:

- ``changelane``: the bench lane through ``judge`` and ``apply_measurement`` exactly as the
  controller calls them (window = time since the step started, evidence carried in the
  check's status), with the release machine's step rules: a step advances after its
  minDuration once every check's latest verdict at the step is a Pass; the last step
  promotes; Rollback and Pause outcomes end the release; a step without the evidence to
  pass by ``evidenceDeadline`` ends as ``onEvidenceDeadline`` says (default: paused for a
  human).
- ``flagger``: interval 1m; request-success-rate over the last 1m >= 99%; a failed check
  (including a query error or no values) increments a cumulative counter that no success
  resets; rollback when it reaches the threshold 5; promotion after 5 successful checks.
  Its weight follows its own schedule (2 minutes per step).
- ``argo``: interval 1m; success rate over the last 1m; ``successCondition result[0] >=
  0.99``, ``failureCondition result[0] < 0.95`` (between the two is Inconclusive);
  failureLimit 0 (first Fail aborts), consecutiveErrorLimit 4 (the 5th error in a row
  aborts; an empty result is an error), an Inconclusive pauses the rollout; count 5.

Figures per family and judge (per release): false_rollback_rate (families without a
regression), missed_regression_rate (regressions not rolled back within the hour),
promoted_rate, paused_rate, undecided_rate, promote_median_s / promote_p90_s (start to
promotion, over promoted traces), detection_median_s / detection_p90_s (onset to
rollback), and ``endings``: how the traces ended.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from controller.core.analysis import CheckSample, Outcome, apply_measurement, judge, worst
from controller.core.analysis.history import estimate_prior
from controller.core.analysis.sample import QueryResult, Role, SeriesKey, Track, no_data, ok
from controller.core.analysis.stats import fixed_horizon_requests_per_arm
from controller.core.models import (
    AnalysisCheck,
    CheckKind,
    CheckStatus,
    LimitAction,
    SequentialEvidence,
    StrategySpec,
    Verdict,
    parse_duration,
)

Array = npt.NDArray[np.float64]

SCRAPE_S = 10
HORIZON_S = 3600
LONG_HORIZON_S = 3 * 3600
#: The baseline history before each release: what Prometheus holds for the hour before.
HISTORY_S = 3600
#: The history generator's stream, beside the seed (numpy seeds from a sequence).
HISTORY_STREAM = 11
BASE_ERROR_RATIO = 0.005
LATENCY_MEDIAN_S = 0.06
LATENCY_SIGMA = 0.5
BUCKETS: tuple[float, ...] = (
    0.025,
    0.05,
    0.075,
    0.1,
    0.125,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BASELINE_PODS = 10

SELECT = 'namespace="{{ namespace }}", app="{{ workload }}", track="{{ track }}"'
BENCH_CHECKS: list[dict[str, Any]] = [
    {
        "name": "error-rate",
        "kind": "sequential",
        "errorsQuery": "sum(increase(http_requests_total{"
        + SELECT
        + ', code=~"5.."}[{{ window }}]))',
        "totalQuery": "sum(increase(http_requests_total{" + SELECT + "}[{{ window }}]))",
        "podLabel": "pod",
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
BENCH_STEPS: list[dict[str, Any]] = [
    {"weight": 10, "minDuration": "2m"},
    {"weight": 50, "minDuration": "2m"},
    {"weight": 100, "minDuration": "2m"},
]


@dataclass(frozen=True)
class Noise:
    """Which production noise a family carries (see the module docstring)."""

    legacy: bool = False  # the historical noise: per-scrape jitter and a shared walk
    overdispersed: bool = False
    bursts: bool = False
    pods: bool = False
    drift: bool = False
    diurnal: bool = False


REALISTIC = Noise(overdispersed=True, bursts=True, pods=True, drift=True, diurnal=True)


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
    prometheus_down_until_s: float | None = None
    noise: Noise = field(default_factory=lambda: Noise(legacy=True))
    steps_ratio: bool = False  # the arm ratio follows the steps (else equal arms)
    bad_pod: bool = False  # one canary pod of five fails x10
    horizon_s: int = HORIZON_S  # longer traces run on a lane whose deadline allows them


def _const(k: float) -> Callable[[Array], Array]:
    return lambda t: np.full_like(t, k)


def _gradual(t: Array) -> Array:
    # from 3 min on, the canary's error ratio climbs linearly to 10x over 15 minutes
    return np.clip(1 + 9 * (t - 180) / 900, 1, 10)


def _outage(t: Array) -> Array:
    return np.where(t >= 120, 1 / BASE_ERROR_RATIO, 1.0)


def _from(onset: float, k: float) -> Callable[[Array], Array]:
    return lambda t: np.where(t >= onset, k, 1.0)


def _realistic(name: str, rps: float, regression: bool = False, **kw: Any) -> Scenario:
    return Scenario(name, rps, regression, noise=REALISTIC, steps_ratio=True, **kw)


def _steps(name: str, noise: Noise) -> Scenario:
    return Scenario(name, 10, False, noise=noise, steps_ratio=True)


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
    _steps("poisson_steps_10rps", Noise()),
    _steps("overdispersed_10rps", Noise(overdispersed=True)),
    _steps("shared_bursts_10rps", Noise(bursts=True)),
    _steps("pod_spread_10rps", Noise(pods=True)),
    _steps("arm_drift_10rps", Noise(drift=True)),
    _steps("diurnal_10rps", Noise(diurnal=True)),
    _realistic("realistic_10rps", 10),
    _realistic("realistic_1rps", 1),
    _realistic("realistic_0.2rps", 0.2),
    _realistic("realistic_x2_10rps", 10, True, onset_s=0, error_multiplier=_const(2)),
    _realistic("realistic_x5_10rps", 10, True, onset_s=0, error_multiplier=_const(5)),
    _realistic("realistic_x20_10rps", 10, True, onset_s=0, error_multiplier=_const(20)),
    _realistic("realistic_outage_10rps", 10, True, onset_s=120, error_multiplier=_outage),
    _realistic("realistic_midstep_x3_10rps", 10, True, onset_s=150, error_multiplier=_from(150, 3)),
    _realistic("realistic_bad_pod_10rps", 10, True, onset_s=0, bad_pod=True),
    # "long enough" for x2, in numbers: three-hour traces on a lane whose evidence
    # deadline is three hours (docs/judging.md has the arithmetic)
    Scenario("errors_x2_10rps_3h", 10, True, 0, _const(2), horizon_s=LONG_HORIZON_S),
    _realistic(
        "realistic_x2_10rps_3h",
        10,
        True,
        onset_s=0,
        error_multiplier=_const(2),
        horizon_s=LONG_HORIZON_S,
    ),
    _realistic("realistic_10rps_3h", 10, horizon_s=LONG_HORIZON_S),
    _realistic(
        "realistic_prometheus_outage_10rps",
        10,
        prometheus_down_from_s=60,
        prometheus_down_until_s=660,
    ),
]
JUDGES = ("changelane", "flagger", "argo")
QUICK = (
    "healthy_10rps",
    "errors_x5_10rps",
    "outage_10rps",
    "realistic_10rps",
    "realistic_x2_10rps",
    "realistic_x20_10rps",
    "realistic_bad_pod_10rps",
    "realistic_prometheus_outage_10rps",
    "no_data",
)


# --------------------------------------------------------------------------- traces


@dataclass(frozen=True)
class PodArrays:
    """One arm's per-pod counts: shape (steps, traces, scrapes, pods), pods named in
    order. A pod with no request in a step's slice does not exist at that step."""

    names: tuple[str, ...]
    requests: npt.NDArray[np.int32]
    errors: npt.NDArray[np.int32]


@dataclass(frozen=True)
class History:
    """The baseline's counts over the hour before each release starts, per interval of
    ``interval_s``: shape (traces, intervals), and per pod (traces, intervals, pods) when
    the family splits by pod. What a range query of the check's baseline queries returns
    (``controller.core.analysis.history`` estimates the judge's noise prior from it)."""

    requests: Array
    errors: Array
    interval_s: float = SCRAPE_S
    pod_names: tuple[str, ...] = ()
    pod_requests: npt.NDArray[np.int32] | None = None
    pod_errors: npt.NDArray[np.int32] | None = None


@dataclass(frozen=True)
class Traces:
    """Per-scrape counts for each step's traffic split: shape (steps, traces, scrapes) and
    (steps, traces, scrapes, buckets+1). Step ``s``'s slice is what the arms served if the
    release was at step ``s`` at that time; a driver reads the slice of its current step."""

    scenario: Scenario
    canary_requests: Array
    canary_errors: Array
    baseline_requests: Array
    baseline_errors: Array
    canary_buckets: npt.NDArray[np.int32] | None = None
    baseline_buckets: npt.NDArray[np.int32] | None = None
    interval_s: float = SCRAPE_S
    canary_pods: PodArrays | None = None
    baseline_pods: PodArrays | None = None
    history: History | None = None

    @property
    def traces(self) -> int:
        return int(self.canary_requests.shape[1])

    @property
    def scrapes(self) -> int:
        return int(self.canary_requests.shape[2])


def _bucket_probabilities(median: float) -> Array:
    edges = np.log(np.array(BUCKETS) / median) / LATENCY_SIGMA
    cdf = np.array([0.5 * (1 + math.erf(e / math.sqrt(2))) for e in edges])
    return np.diff(np.concatenate([[0.0], cdf, [1.0]]))


def _ou(rng: np.random.Generator, shape: tuple[int, int], sd: float, tau_s: float) -> Array:
    """A stationary Ornstein-Uhlenbeck process sampled every scrape, per row."""
    a = math.exp(-SCRAPE_S / tau_s)
    eps = rng.normal(0, sd * math.sqrt(1 - a * a), shape)
    out = np.empty(shape)
    out[:, 0] = rng.normal(0, sd, shape[0])
    for k in range(1, shape[1]):
        out[:, k] = a * out[:, k - 1] + eps[:, k]
    return out


def _gamma(rng: np.random.Generator, shape: tuple[int, ...], cv: float) -> Array:
    k = 1 / (cv * cv)
    return rng.gamma(k, 1 / k, shape)


def _conditions(
    rng: np.random.Generator, noise: Noise, t: Array, traces: int, arms: tuple[str, ...]
) -> tuple[Array, Array, dict[str, Array]]:
    """The family's load curve, shared error ratio and each arm's own noise at times ``t``
    (the draws in a fixed order: a release's traces depend only on the seed)."""
    shape = (traces, t.shape[0])
    load = np.ones(shape)
    shared = np.full(shape, BASE_ERROR_RATIO)
    if noise.legacy:
        phase = rng.uniform(0, 2 * np.pi, (traces, 1))
        load = 1 + 0.2 * np.sin(2 * np.pi * t / 1800 + phase)
        walk = np.cumsum(rng.normal(0, 0.03, shape), axis=1)
        shared = BASE_ERROR_RATIO * np.exp(np.clip(walk, -0.5, 0.5))
    if noise.diurnal:
        hour = rng.uniform(0, 24, (traces, 1)) + t / 3600
        day = np.sin(2 * np.pi * (hour - 9) / 24)
        load = load * (1 + 0.5 * day)
        shared = shared * (1 + 0.3 * day)
    if noise.bursts:
        per_scrape = 4 / 3600 * SCRAPE_S
        starts_mask = rng.random(shape) < per_scrape
        lengths = np.maximum(1, rng.exponential(30 / SCRAPE_S, shape).round()).astype(int)
        factor = np.ones(shape)
        for i, k in zip(*np.nonzero(starts_mask), strict=True):
            factor[i, k : k + lengths[i, k]] *= 10 * math.exp(rng.normal(0, 0.5))
        shared = np.clip(shared * factor, 0, 1)
    arm_noise = {arm: np.ones(shape) for arm in arms}
    if noise.drift:
        for arm in arm_noise:
            arm_noise[arm] = arm_noise[arm] * np.exp(_ou(rng, shape, 0.3, 120.0))
    return load, shared, arm_noise


def generate(
    scenario: Scenario,
    traces: int,
    rng: np.random.Generator,
    weights: tuple[int, ...],
    history_rng: np.random.Generator | None = None,
) -> Traces:
    """Each step's traces; with ``history_rng``, also the baseline's hour before the
    release (drawn from that generator, so the release's traces are the same with or
    without it)."""
    scrapes = scenario.horizon_s // SCRAPE_S
    t = np.arange(1, scrapes + 1, dtype=np.float64) * SCRAPE_S
    starts = t - SCRAPE_S  # a scrape reports the interval that ended at t
    shape = (traces, scrapes)
    noise = scenario.noise
    steps = len(weights)
    load, shared, arm_noise = _conditions(rng, noise, t, traces, ("canary", "baseline"))
    # persistent per-pod factors: each pod serves an equal share of its arm's traffic
    per_pod = noise.pods or scenario.bad_pod
    canary_pod_factors: list[Array] = [np.ones((traces, 1))] * steps
    baseline_pod_factors = np.ones((traces, 1))
    if per_pod:
        sd = 0.2 if noise.pods else 0.0
        baseline_pod_factors = np.exp(rng.normal(0, sd, (traces, BASELINE_PODS)))
        canary_pods = np.exp(rng.normal(0, sd, (traces, BASELINE_PODS)))
        for s, w in enumerate(weights):
            k = 5 if scenario.bad_pod else max(1, math.ceil(w * BASELINE_PODS / 100))
            pods = canary_pods[:, :k].copy()
            if scenario.bad_pod:
                pods[:, 0] *= 10
            canary_pod_factors[s] = pods
    history = (
        _history(
            history_rng, scenario, traces, weights[0], baseline_pod_factors if per_pod else None
        )
        if history_rng is not None
        else None
    )
    pod_out: dict[str, list[npt.NDArray[np.int32]]] = {k: [] for k in ("cr", "ce", "br", "be")}
    mult = (
        np.broadcast_to(scenario.error_multiplier(starts), shape)
        if scenario.error_multiplier is not None
        else np.ones(shape)
    )
    total = scenario.rps * (100 + weights[0]) / weights[0] if scenario.steps_ratio else 0.0
    out: dict[str, list[Array]] = {k: [] for k in ("cr", "ce", "br", "be")}
    cb: list[npt.NDArray[np.int32]] = []
    bb: list[npt.NDArray[np.int32]] = []
    c_probs = _bucket_probabilities(LATENCY_MEDIAN_S * scenario.latency_multiplier)
    b_probs = _bucket_probabilities(LATENCY_MEDIAN_S)
    cache: dict[tuple[float, float], tuple[Any, ...]] = {}
    for s, w in enumerate(weights):
        if scenario.steps_ratio:
            c_rps, b_rps = total * w / (100 + w), total * 100 / (100 + w)
        else:
            c_rps = b_rps = scenario.rps
        key = (c_rps, b_rps)
        if per_pod:
            c_ratio = shared * mult * arm_noise["canary"]
            b_ratio = shared * arm_noise["baseline"]
            cpr, cpe = _pods(rng, c_rps * load, c_ratio, noise, canary_pod_factors[s])
            bpr, bpe = _pods(rng, b_rps * load, b_ratio, noise, baseline_pod_factors)
            for name, a in (("cr", cpr), ("ce", cpe), ("br", bpr), ("be", bpe)):
                pod_out[name].append(_pad_pods(a, BASELINE_PODS))
            cr, ce = cpr.sum(axis=-1, dtype=np.float64), cpe.sum(axis=-1, dtype=np.float64)
            br, be = bpr.sum(axis=-1, dtype=np.float64), bpe.sum(axis=-1, dtype=np.float64)
            cache[key] = (cr, ce, br, be, _buckets(rng, cr, c_probs), _buckets(rng, br, b_probs))
        elif key not in cache:
            c_ratio = shared * mult * arm_noise["canary"]
            b_ratio = shared * arm_noise["baseline"]
            cr, ce = _arm(rng, c_rps * load, c_ratio, noise)
            br, be = _arm(rng, b_rps * load, b_ratio, noise)
            cache[key] = (cr, ce, br, be, _buckets(rng, cr, c_probs), _buckets(rng, br, b_probs))
        cr, ce, br, be, cbk, bbk = cache[key]
        out["cr"].append(cr)
        out["ce"].append(ce)
        out["br"].append(br)
        out["be"].append(be)
        cb.append(cbk)
        bb.append(bbk)
    return Traces(
        scenario,
        np.stack(out["cr"]),
        np.stack(out["ce"]),
        np.stack(out["br"]),
        np.stack(out["be"]),
        np.stack(cb),
        np.stack(bb),
        canary_pods=_pod_arrays("canary", pod_out["cr"], pod_out["ce"]),
        baseline_pods=_pod_arrays("baseline", pod_out["br"], pod_out["be"]),
        history=history,
    )


def _history(
    rng: np.random.Generator,
    scenario: Scenario,
    traces: int,
    first_weight: int,
    pod_factors: Array | None,
) -> History:
    """The baseline's hour before the release, under the family's own noise model: the
    same load, shared and per-arm noise processes (a fresh draw of them: the history is
    not continuous with the release's trace) and the same baseline pods, serving the
    whole service (no canary yet). No regression: the canary does not exist yet."""
    t = np.arange(1, HISTORY_S // SCRAPE_S + 1, dtype=np.float64) * SCRAPE_S - HISTORY_S
    load, shared, arm_noise = _conditions(rng, scenario.noise, t, traces, ("baseline",))
    if scenario.steps_ratio:
        rps = scenario.rps * (100 + first_weight) / first_weight
    else:
        rps = scenario.rps
    ratio = shared * arm_noise["baseline"]
    if pod_factors is None:
        requests, errors = _arm(rng, rps * load, ratio, scenario.noise)
        return History(requests, errors)
    pod_requests, pod_errors = _pods(rng, rps * load, ratio, scenario.noise, pod_factors)
    names = tuple(f"baseline-{j}" for j in range(pod_requests.shape[-1]))
    return History(
        pod_requests.sum(axis=-1, dtype=np.float64),
        pod_errors.sum(axis=-1, dtype=np.float64),
        pod_names=names,
        pod_requests=pod_requests,
        pod_errors=pod_errors,
    )


def _pod_arrays(
    arm: str, requests: list[npt.NDArray[np.int32]], errors: list[npt.NDArray[np.int32]]
) -> PodArrays | None:
    if not requests:
        return None
    names = tuple(f"{arm}-{j}" for j in range(requests[0].shape[-1]))
    return PodArrays(names, np.stack(requests), np.stack(errors))


def _pad_pods(a: npt.NDArray[np.int32], pods: int) -> npt.NDArray[np.int32]:
    return np.pad(a, [(0, 0), (0, 0), (0, pods - a.shape[-1])])


def _pods(
    rng: np.random.Generator, rps: Array, ratio: Array, noise: Noise, factors: Array
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """Per-pod counts (traces, scrapes, pods): the arm's requests (with the arm's
    over-dispersion) split evenly over its pods, each pod's errors at the arm's ratio
    times the pod's persistent factor."""
    mean = rps * SCRAPE_S
    if noise.overdispersed:
        mean = mean * _gamma(rng, mean.shape, 0.22)
        ratio = ratio * _gamma(rng, ratio.shape, 0.71)
    requests = rng.poisson(mean)
    k = factors.shape[1]
    split = rng.multinomial(requests, np.full(k, 1.0 / k)).astype(np.int32)
    p = np.clip(ratio[:, :, None] * factors[:, None, :], 0, 1)
    return split, rng.binomial(split, p).astype(np.int32)


def _arm(rng: np.random.Generator, rps: Array, ratio: Array, noise: Noise) -> tuple[Array, Array]:
    mean = rps * SCRAPE_S
    if noise.overdispersed:
        mean = mean * _gamma(rng, mean.shape, 0.22)
        ratio = ratio * _gamma(rng, ratio.shape, 0.71)
    if noise.legacy:
        ratio = ratio * np.exp(rng.normal(0, 0.15, ratio.shape))
    requests = rng.poisson(mean).astype(np.float64)
    errors = rng.binomial(requests.astype(np.int64), np.clip(ratio, 0, 1)).astype(np.float64)
    return requests, errors


def _buckets(rng: np.random.Generator, requests: Array, probs: Array) -> npt.NDArray[np.int32]:
    return rng.multinomial(requests.astype(np.int64), probs).astype(np.int32)


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


ENDINGS = ("promote", "rollback", "pause", "undecided")


@dataclass(frozen=True)
class BenchLane:
    checks: list[AnalysisCheck]
    interval_s: float
    strategy: StrategySpec

    @property
    def min_durations(self) -> list[float]:
        return [parse_duration(s.min_duration) for s in self.strategy.steps]

    @property
    def weights(self) -> tuple[int, ...]:
        return tuple(s.weight for s in self.strategy.steps)


def with_noise_prior(lane: BenchLane, noise_prior: str | None) -> BenchLane:
    """The lane with every sequential check's ``noisePrior`` set (None: as declared)."""
    if noise_prior is None:
        return lane
    checks = [
        c.model_copy(update={"noise_prior": noise_prior}) if c.kind is CheckKind.SEQUENTIAL else c
        for c in lane.checks
    ]
    return BenchLane(checks, lane.interval_s, lane.strategy)


def bench_lane() -> BenchLane:
    from controller.core.models import AnalysisSpec

    spec = AnalysisSpec.model_validate({"checks": BENCH_CHECKS})
    strategy = StrategySpec.model_validate({"steps": BENCH_STEPS})
    return BenchLane(spec.checks, parse_duration(spec.interval), strategy)


def _down(s: Scenario, t: float) -> bool:
    start = s.prometheus_down_from_s
    if start is None or t < start:
        return False
    return s.prometheus_down_until_s is None or t < s.prometheus_down_until_s


def _cumulative(x: npt.NDArray[Any]) -> Array:
    """Cumulative sums over the last time axis with a leading zero: window = c[k] - c[k0]."""
    pad = [(0, 0)] * (x.ndim - 1)
    axis = 2
    pad.insert(axis, (1, 0))
    if x.ndim == 4:
        pad = [(0, 0), (0, 0), (1, 0), (0, 0)]
    return np.pad(np.cumsum(x, axis=axis, dtype=np.float64), pad)


def run_changelane(tr: Traces, lane: BenchLane) -> list[Decision]:
    cum = {
        (Track.CANARY, Role.TOTAL): _cumulative(tr.canary_requests),
        (Track.CANARY, Role.ERRORS): _cumulative(tr.canary_errors),
        (Track.BASELINE, Role.TOTAL): _cumulative(tr.baseline_requests),
        (Track.BASELINE, Role.ERRORS): _cumulative(tr.baseline_errors),
    }
    buckets = {
        Track.CANARY: None if tr.canary_buckets is None else _cumulative(tr.canary_buckets),
        Track.BASELINE: None if tr.baseline_buckets is None else _cumulative(tr.baseline_buckets),
    }
    s = tr.scenario
    horizon = tr.scrapes * tr.interval_s
    steps = len(lane.weights)
    durations = lane.min_durations
    deadline = parse_duration(lane.strategy.evidence_deadline)
    on_deadline = lane.strategy.on_evidence_deadline
    out: list[Decision] = []
    split = tr.canary_pods is not None and tr.baseline_pods is not None
    for i in range(tr.traces):
        pod_windows = _pod_windows(tr, i) if split else None
        statuses = {
            c.name: CheckStatus(name=c.name, evidence=history_evidence(tr, i, c, lane))
            for c in lane.checks
        }
        decision = Decision("undecided", None)
        step, step_start = 0, 0.0
        t = lane.interval_s
        while t <= horizon + 1e-9:
            k = int(t // tr.interval_s + 1e-9)
            k0 = int(step_start // tr.interval_s + 1e-9)
            window = max(1, math.ceil(t - step_start))
            down = _down(s, t)
            outcomes = []
            out_of_reach = False
            for c in lane.checks:
                if down:
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
                            arr = cum[(track, role)]
                            value = float(arr[step, i, k] - arr[step, i, k0])
                            results[key] = no_data() if missing else ok(value)
                        b = buckets[track]
                        if b is not None:
                            p95 = float(histogram_quantile(0.95, b[step, i, k] - b[step, i, k0]))
                            key = SeriesKey(track, Role.VALUE, window)
                            results[key] = no_data() if missing or math.isnan(p95) else ok(p95)
                    pods = (
                        pod_windows(step, k0, k)
                        if pod_windows is not None
                        and c.pod_label is not None
                        and not s.canary_missing
                        else {}
                    )
                    sample = CheckSample("bench", c.name, window, results=results, pods=pods)
                st = statuses[c.name]
                m = judge(
                    c,
                    sample,
                    step=step,
                    now=T0 + timedelta(seconds=t),
                    evidence=st.evidence,
                    final_step=step == steps - 1,
                )
                statuses[c.name], outcome, _ = apply_measurement(c, st, m)
                outcomes.append(outcome)
                out_of_reach |= m.out_of_reach and m.verdict is Verdict.INCONCLUSIVE
            o = worst(outcomes)
            if o is Outcome.ROLLBACK:
                decision = Decision("rollback", t)
                break
            if o is Outcome.PAUSE:
                decision = Decision("pause", t)
                break
            elapsed = t - step_start
            if elapsed >= durations[step]:
                verdicts = [
                    st.last_verdict if st.last_step == step else None for st in statuses.values()
                ]
                if all(v is Verdict.PASS for v in verdicts):
                    if step == steps - 1:
                        decision = Decision("promote", t)
                        break
                    step, step_start = step + 1, t
                elif elapsed >= deadline or (out_of_reach and on_deadline != "promote"):
                    # Out of reach at this step: the deadline's ending, at once, unless it
                    # would move traffic sooner (as the release machine does).
                    ending = _deadline_ending(on_deadline, verdicts)
                    if ending == "advance":
                        if step == steps - 1:
                            decision = Decision("promote", t)
                            break
                        step, step_start = step + 1, t
                    else:
                        decision = Decision(ending, t)
                        break
            t += lane.interval_s
        out.append(decision)
    return out


def history_evidence(
    tr: Traces, i: int, check: AnalysisCheck, lane: BenchLane
) -> SequentialEvidence | None:
    """A sequential check's starting evidence: the noise prior trace ``i``'s baseline
    history gives, at the lane's interval (None: no history, the fixed prior), as the
    controller seeds it when a release's analysis starts."""
    h = tr.history
    if h is None or check.kind is not CheckKind.SEQUENTIAL or check.noise_prior != "history":
        return None
    per = lane.interval_s / h.interval_s
    if per < 1 or abs(per - round(per)) > 1e-9:
        return None
    per = round(per)
    n = h.requests.shape[1] // per

    def coarse(a: npt.NDArray[Any]) -> list[float]:
        rows = np.asarray(a[i, : n * per], dtype=np.float64)
        return [float(x) for x in rows.reshape(n, per, *rows.shape[1:]).sum(axis=1)]

    pods = None
    if check.pod_label is not None and h.pod_requests is not None and h.pod_errors is not None:
        pod_req = h.pod_requests[i, : n * per].reshape(n, per, -1).sum(axis=1)
        pod_err = h.pod_errors[i, : n * per].reshape(n, per, -1).sum(axis=1)
        pods = {
            name: ([float(x) for x in pod_err[:, j]], [float(x) for x in pod_req[:, j]])
            for j, name in enumerate(h.pod_names)
        }
    prior = estimate_prior(coarse(h.errors), coarse(h.requests), pods)
    return None if prior is None else SequentialEvidence(prior=prior)


PodWindows = Callable[[int, int, int], dict[Track, dict[str, tuple[float, float]]]]


def _pod_windows(tr: Traces, i: int) -> PodWindows:
    """Trace ``i``'s per-pod ``(errors, total)`` between two scrapes of a step, per track,
    for the pods that exist at that step (what ``sum by (pod)`` would return)."""
    arms: list[tuple[Track, tuple[str, ...], Array, Array, npt.NDArray[np.bool_]]] = []
    for track, pods in ((Track.CANARY, tr.canary_pods), (Track.BASELINE, tr.baseline_pods)):
        assert pods is not None
        req, err = pods.requests[:, i], pods.errors[:, i]  # (steps, scrapes, pods)
        pad = [(0, 0), (1, 0), (0, 0)]
        cum_req = np.pad(np.cumsum(req, axis=1, dtype=np.float64), pad)
        cum_err = np.pad(np.cumsum(err, axis=1, dtype=np.float64), pad)
        arms.append((track, pods.names, cum_req, cum_err, cum_req[:, -1, :] > 0))

    def window(step: int, k0: int, k: int) -> dict[Track, dict[str, tuple[float, float]]]:
        out: dict[Track, dict[str, tuple[float, float]]] = {}
        for track, names, cum_req, cum_err, exists in arms:
            n = cum_req[step, k] - cum_req[step, k0]
            e = cum_err[step, k] - cum_err[step, k0]
            out[track] = {
                name: (float(e[j]), float(n[j])) for j, name in enumerate(names) if exists[step, j]
            }
        return out

    return window


def _deadline_ending(action: LimitAction | str, verdicts: list[Verdict | None]) -> str:
    """The release machine's evidence-deadline rule: promote only when nothing failed
    and nothing is missing (inconclusive is the only shortfall)."""
    if action == "rollback":
        return "rollback"
    if action == "promote" and all(v in (Verdict.PASS, Verdict.INCONCLUSIVE) for v in verdicts):
        return "advance"
    return "pause"


def _canary_on_schedule(tr: Traces) -> tuple[Array, Array]:
    """The canary's per-interval counts when its weight follows Flagger's/Argo's own
    schedule: 2 minutes per step (two passing 1m checks)."""
    steps = tr.canary_requests.shape[0]
    times = np.arange(tr.scrapes) * tr.interval_s
    index = np.minimum(times // 120, steps - 1).astype(int)
    cols = np.arange(tr.scrapes)
    return tr.canary_requests[index, :, cols].T, tr.canary_errors[index, :, cols].T


def _success_rate_1m(tr: Traces) -> tuple[Array, Array]:
    """Success rate over the last minute at each 1m tick, and whether the query had data."""
    req, err = _canary_on_schedule(tr)
    cr, ce = (
        np.pad(np.cumsum(req, axis=1), [(0, 0), (1, 0)]),
        np.pad(np.cumsum(err, axis=1), [(0, 0), (1, 0)]),
    )
    minutes = int(tr.scrapes * tr.interval_s // 60)
    ends = np.array([int((j + 1) * 60 // tr.interval_s) for j in range(minutes)], dtype=int)
    begins = np.array([int(j * 60 // tr.interval_s) for j in range(minutes)], dtype=int)
    r = cr[:, ends] - cr[:, begins]
    e = ce[:, ends] - ce[:, begins]
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = 1 - e / r
    has_data = np.full(r.shape, not tr.scenario.canary_missing)
    return rate, has_data


def run_flagger(tr: Traces) -> list[Decision]:
    rate, has_data = _success_rate_1m(tr)
    out = []
    for i in range(rate.shape[0]):
        failed = succeeded = 0
        decision = Decision("undecided", None)
        for j in range(rate.shape[1]):
            t = 60.0 * (j + 1)
            query_failed = _down(tr.scenario, t) or not has_data[i, j]
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
    out = []
    for i in range(rate.shape[0]):
        consecutive_errors = successes = 0
        decision = Decision("undecided", None)
        for j in range(rate.shape[1]):
            t = 60.0 * (j + 1)
            if _down(tr.scenario, t) or not has_data[i, j]:
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


def _pct(times: list[float], q: float) -> float | None:
    return float(np.percentile(times, q)) if times else None


def figures(
    name: str, judge_name: str, decisions: list[Decision], *, regression: bool, onset_s: float
) -> dict[str, Any]:
    n = len(decisions)
    rolled = [d for d in decisions if d.kind == "rollback"]
    promoted = [d.at_s or 0.0 for d in decisions if d.kind == "promote"]
    endings = {k: sum(d.kind == k for d in decisions) for k in ENDINGS}
    row: dict[str, Any] = {
        "scenario": name,
        "judge": judge_name,
        "traces": n,
        "false_rollback_rate": None,
        "missed_regression_rate": None,
        "promoted_rate": len(promoted) / n if n else None,
        "paused_rate": endings["pause"] / n if n else None,
        "undecided_rate": endings["undecided"] / n if n else None,
        "promote_median_s": _pct(promoted, 50),
        "promote_p90_s": _pct(promoted, 90),
        "detection_median_s": None,
        "detection_p90_s": None,
        "endings": endings,
    }
    if not n:
        return row
    if regression:
        row["missed_regression_rate"] = (n - len(rolled)) / n
        times = [max(0.0, (d.at_s or 0.0) - onset_s) for d in rolled]
        row["detection_median_s"] = _pct(times, 50)
        row["detection_p90_s"] = _pct(times, 90)
    else:
        row["false_rollback_rate"] = len(rolled) / n
    return row


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


def run_scenario(
    scenario: Scenario,
    traces: int,
    rng: np.random.Generator,
    lane: BenchLane,
    history_rng: np.random.Generator | None = None,
) -> list[dict[str, Any]]:
    tr = generate(scenario, traces, rng, lane.weights, history_rng)
    if scenario.horizon_s > HORIZON_S:
        # the lane a team would declare for such a service: an evidence deadline and an
        # inconclusive limit as long as the trace
        deadline = f"{scenario.horizon_s // 60}m"
        strategy = lane.strategy.model_copy(update={"evidence_deadline": deadline})
        looks = math.ceil(scenario.horizon_s / lane.interval_s)
        checks = [c.model_copy(update={"inconclusive_limit": looks}) for c in lane.checks]
        lane = BenchLane(checks, lane.interval_s, strategy)
    onset = scenario.onset_s or 0.0
    results = {
        "changelane": run_changelane(tr, lane),
        "flagger": run_flagger(tr),
        "argo": run_argo(tr),
    }
    return [
        figures(scenario.name, name, ds, regression=scenario.regression, onset_s=onset)
        for name, ds in results.items()
    ]


def at_multiplier(scenario: Scenario, multiplier: float) -> Scenario:
    """A healthy family's twin whose canary's errors are ``multiplier`` times as many from
    the start, named ``family@xM``: the family's noise, a fresh draw of it (the binomial
    draws consume the random stream differently at another error ratio)."""
    return replace(
        scenario, name=f"{scenario.name}@x{multiplier:g}", error_multiplier=_const(multiplier)
    )


def run(
    traces: int = 500,
    seed: int = 1,
    quick: bool = False,
    noise_prior: str = "fixed",
    only: tuple[str, ...] = (),
    canary_errors_x: float | None = None,
) -> dict[str, Any]:
    """Every family (or the quick slice, or ``only`` these). With ``noise_prior="history"``
    the bench lane's sequential check declares ``noisePrior: history`` and each trace comes
    with the baseline's hour of history before it, drawn from its own generator seeded
    from ``seed``: the releases' traces are the same either way. With ``canary_errors_x``
    only the healthy families run, as twins whose canary makes that many times the errors
    (:func:`at_multiplier`; at ``1 + tolerance`` their rollback rate is the judge's level
    at the boundary of its null); the regression families are drawn and dropped."""
    rng = np.random.default_rng(seed)
    history = noise_prior == "history"
    history_rng = np.random.default_rng([seed, HISTORY_STREAM]) if history else None
    lane = with_noise_prior(bench_lane(), noise_prior)
    rows = []
    started = time.monotonic()
    chosen = [s for s in SCENARIOS if not quick or s.name in QUICK]
    for scenario in chosen:
        twin_skips = canary_errors_x is not None and scenario.regression
        if (only and scenario.name not in only) or twin_skips:
            # drawn and dropped: a family run alone sees the same traces as in the full run
            generate(scenario, traces, rng, lane.weights, history_rng)
            continue
        if canary_errors_x is not None:
            scenario = at_multiplier(scenario, canary_errors_x)
        rows.extend(run_scenario(scenario, traces, rng, lane, history_rng))
    n_floor, s_floor = sample_size_floor()
    n_floor_strict, s_floor_strict = sample_size_floor(alpha=lane.checks[0].alpha, two_sided=False)
    return {
        "scenarios": rows,
        "settings": {
            "traces": traces,
            "seed": seed,
            "quick": quick,
            "scrape_interval_s": SCRAPE_S,
            "horizon_s": HORIZON_S,
            "base_error_ratio": BASE_ERROR_RATIO,
            "changelane_interval_s": lane.interval_s,
            "noise_prior": noise_prior,
            "canary_errors_x": canary_errors_x,
            "changelane_checks": [c.to_wire() for c in lane.checks],
            "changelane_strategy": lane.strategy.to_wire(),
        },
        "sample_size_floor": {
            "effect": "errors x5 at 10 req/s per arm (0.5% -> 2.5%)",
            "requests_per_arm": n_floor,
            "seconds": s_floor,
            "convention": "fixed horizon, alpha 0.05 two-sided, power 0.8",
            "strict_requests_per_arm": n_floor_strict,
            "strict_seconds": s_floor_strict,
            "strict_convention": f"fixed horizon, alpha {lane.checks[0].alpha:g} one-sided, "
            "power 0.8",
        },
        "elapsed_s": time.monotonic() - started,
    }


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.1f}%" if pct else f"{x:.0f}"


def table(result: dict[str, Any]) -> str:
    head = (
        f"{'scenario':<34} {'judge':<10} {'traces':>6} {'false rb':>8} {'missed':>7} "
        f"{'promoted':>8} {'paused':>7} {'undecid':>7} {'prom p50':>8} {'prom p90':>8} "
        f"{'det p50':>7} {'det p90':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in result["scenarios"]:
        lines.append(
            f"{r['scenario']:<34} {r['judge']:<10} {r['traces']:>6} "
            f"{_fmt(r['false_rollback_rate'], True):>8} "
            f"{_fmt(r['missed_regression_rate'], True):>7} "
            f"{_fmt(r['promoted_rate'], True):>8} {_fmt(r['paused_rate'], True):>7} "
            f"{_fmt(r['undecided_rate'], True):>7} {_fmt(r['promote_median_s']):>8} "
            f"{_fmt(r['promote_p90_s']):>8} {_fmt(r['detection_median_s']):>7} "
            f"{_fmt(r['detection_p90_s']):>7}"
        )
    floor = result.get("sample_size_floor")
    if floor:
        lines.append("")
        lines.append(
            f"fixed-horizon floor for {floor['effect']}: {floor['requests_per_arm']:.0f} "
            f"requests per arm = {floor['seconds']:.0f} s ({floor['convention']}); "
            f"{floor['strict_requests_per_arm']:.0f} = {floor['strict_seconds']:.0f} s "
            f"({floor['strict_convention']})"
        )
    settings = result["settings"]
    lines.append(
        f"{settings['traces']} traces per scenario, seed {settings.get('seed')}, "
        f"{result['elapsed_s']:.0f} s"
    )
    for note in result.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)
