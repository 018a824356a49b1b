"""Synthetic but realistic Prometheus history for backtests, with known outcomes.

One Deployment (``docs/docs``, labels as the docs-site lane's queries select them) with
stable pods labelled ``track="baseline"`` and, during each release, one canary pod labelled
``track="canary"``. Per pod: ``http_requests_total{code}`` and the latency histogram
``http_request_duration_seconds_bucket{le}``, scraped every ``scrape_s``.

The noise is the kind production has, not Poisson: each pod has a persistent error-rate
multiplier (lognormal), every scrape interval's rate is gamma-distributed around it
(negative-binomial counts), and now and then one pod has a burst of errors for a few
minutes (a retrying client). Releases are *good* (canary like the baseline) or *bad*
(errors x6 or latency x4 on the canary); a promoted release replaces the stable pods.

Written as OpenMetrics, one file per day (``promtool tsdb create-blocks-from
openmetrics`` re-reads its whole input once per two-hour block, so small files keep it
linear), with the releases as the backtest's CSV.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0)
NAMESPACE = "docs"
WORKLOAD = "docs"


@dataclass(frozen=True)
class HistoryConfig:
    days: float = 3.0
    start: datetime = datetime(2026, 10, 1, tzinfo=UTC)
    scrape_s: int = 30
    stable_pods: int = 3
    rps_per_pod: float = 40.0
    error_ratio: float = 0.01
    latency_median_s: float = 0.03
    release_every_s: float = 6 * 3600.0
    release_length_s: float = 25 * 60.0
    bad_every: int = 3  # every third release is bad, alternating errors and latency
    burst_probability: float = 0.0005  # per pod per interval: a few per pod per week
    pod_sigma: float = 0.25  # spread of the persistent per-pod error-rate multiplier
    dispersion_shape: float = 4.0  # gamma shape of the per-interval rate (lower: burstier)
    seed: int = 7
    #: kube-state-metrics series (ReplicaSets, generation) every this many seconds; 0: none.
    kube_state_metrics_s: int = 300
    #: ReplicaSets kept per Deployment, like its revisionHistoryLimit (10) plus the live one.
    replicaset_history: int = 11


@dataclass(frozen=True)
class KnownRelease:
    start: datetime
    end: datetime
    expect: str  # promote | rollback
    kind: str  # good | errors | latency
    canary_pod: str
    replicaset: str  # the ReplicaSet of the release's pod template (kube-state-metrics)


@dataclass
class _Pod:
    name: str
    track: str
    error_multiplier: float
    latency_multiplier: float
    requests: float = 0.0
    errors: float = 0.0
    buckets: np.ndarray | None = None
    burst_left: int = 0


def plan_releases(config: HistoryConfig) -> list[KnownRelease]:
    end = config.start + timedelta(days=config.days)
    releases: list[KnownRelease] = []
    t = config.start + timedelta(seconds=config.release_every_s / 2)
    i = 0
    while t + timedelta(seconds=config.release_length_s) < end:
        bad = (i + 1) % config.bad_every == 0
        kind = ("errors" if (i // config.bad_every) % 2 == 0 else "latency") if bad else "good"
        releases.append(
            KnownRelease(
                t,
                t + timedelta(seconds=config.release_length_s),
                "rollback" if bad else "promote",
                kind,
                f"{WORKLOAD}-r{i + 1:03d}-canary",
                f"{WORKLOAD}-{_template_hash(config.seed, i + 1)}",
            )
        )
        t += timedelta(seconds=config.release_every_s)
        i += 1
    return releases


def _template_hash(seed: int, revision: int) -> str:
    """A pod-template-hash-like suffix (9 hex digits) for a release's ReplicaSet."""
    return hashlib.sha256(f"{seed}/{revision}".encode()).hexdigest()[:9]


@functools.lru_cache(maxsize=1024)
def _bucket_shares(median: float) -> tuple[float, ...]:
    """The share of requests in each latency bucket (and above the last) for a lognormal
    latency with this median (sigma 0.6)."""
    sigma = 0.6
    cdf = [0.5 * (1 + math.erf(math.log(b / median) / (sigma * math.sqrt(2)))) for b in BUCKETS]
    edges = [0.0, *cdf, 1.0]
    return tuple(b - a for a, b in itertools.pairwise(edges))


def _labels(pod: _Pod) -> str:
    return f'namespace="{NAMESPACE}",app="{WORKLOAD}",track="{pod.track}",pod="{pod.name}"'


def generate(config: HistoryConfig, out_dir: Path) -> tuple[list[Path], list[KnownRelease]]:
    """Write the history as one OpenMetrics file per day; returns the files and releases."""
    rng = np.random.default_rng(config.seed)
    releases = plan_releases(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    version = 0

    def new_pod(name: str, track: str) -> _Pod:
        return _Pod(
            name,
            track,
            float(rng.lognormal(0.0, config.pod_sigma)),
            float(rng.lognormal(0.0, 0.05)),
            buckets=np.zeros(len(BUCKETS) + 1),
        )

    stable = [
        new_pod(f"{WORKLOAD}-v{version:03d}-{i}", "baseline") for i in range(config.stable_pods)
    ]
    canary: _Pod | None = None
    release_iter: Iterator[KnownRelease] = iter(releases)
    current = next(release_iter, None)
    steps = int(config.days * 86400 // config.scrape_s)
    per_day = int(86400 // config.scrape_s)
    median_of: dict[str, float] = {}
    lines: dict[str, list[str]] = {"requests": [], "latency": []}
    lines |= {family: [] for family in KSM_FAMILIES}
    # The Deployment's ReplicaSets (name, creation time) and generation, for discovery.
    replicasets = [
        (f"{WORKLOAD}-{_template_hash(config.seed, 0)}", config.start - timedelta(days=1))
    ]
    generation = 1
    day = 0

    def flush() -> None:
        nonlocal day
        if not lines["requests"]:
            return
        path = out_dir / f"history-{day:03d}.om"
        with path.open("w") as f:
            f.write("# TYPE http_requests counter\n")
            f.writelines(lines["requests"])
            f.write("# TYPE http_request_duration_seconds histogram\n")
            f.writelines(lines["latency"])
            for family in KSM_FAMILIES:
                if lines[family]:
                    f.write(f"# TYPE {family} gauge\n")
                    f.writelines(lines[family])
            f.write("# EOF\n")
        files.append(path)
        for kept in lines.values():
            kept.clear()
        day += 1

    for step in range(steps):
        t = config.start + timedelta(seconds=step * config.scrape_s)
        ts = int(t.timestamp())
        if current is not None and canary is None and t >= current.start:
            canary = new_pod(current.canary_pod, "canary")
            replicasets = [*replicasets, (current.replicaset, t)][-config.replicaset_history :]
            generation += 1
        every = config.kube_state_metrics_s
        if every and ts % every == 0:
            for family, found in _kube_state_metrics(replicasets, generation, ts).items():
                lines[family].extend(found)
        if current is not None and canary is not None and t >= current.end:
            if current.expect == "promote":
                version += 1
                stable = [
                    new_pod(f"{WORKLOAD}-v{version:03d}-{i}", "baseline")
                    for i in range(config.stable_pods)
                ]
            canary = None
            current = next(release_iter, None)
        pods = [*stable, *([canary] if canary is not None else [])]
        for pod in pods:
            median_of.setdefault(pod.name, config.latency_median_s * pod.latency_multiplier)
            kind = current.kind if (pod is canary and current is not None) else "good"
            n = rng.poisson(config.rps_per_pod * config.scrape_s)
            if pod.burst_left == 0 and rng.random() < config.burst_probability:
                pod.burst_left = int(rng.integers(2, 8))
            ratio = (
                config.error_ratio
                * pod.error_multiplier
                * rng.gamma(config.dispersion_shape, 1 / config.dispersion_shape)
            )
            if pod.burst_left:
                ratio *= 6.0
                pod.burst_left -= 1
            if kind == "errors":
                ratio *= 6.0
            bad = rng.binomial(n, min(ratio, 1.0))
            pod.requests += n
            pod.errors += bad
            slow = 4.0 if kind == "latency" else 1.0
            within = rng.multinomial(n, _bucket_shares(median_of[pod.name] * slow))
            assert pod.buckets is not None
            pod.buckets += within
            labels = _labels(pod)
            ok = pod.requests - pod.errors
            lines["requests"].append(f'http_requests_total{{{labels},code="200"}} {ok:.0f} {ts}\n')
            lines["requests"].append(
                f'http_requests_total{{{labels},code="500"}} {pod.errors:.0f} {ts}\n'
            )
            cumulative = np.cumsum(pod.buckets)
            for le, count in zip((*map(str, BUCKETS), "+Inf"), cumulative, strict=True):
                lines["latency"].append(
                    f'http_request_duration_seconds_bucket{{{labels},le="{le}"}} {count:.0f} {ts}\n'
                )
        if (step + 1) % per_day == 0:
            flush()
    flush()
    return files, releases


KSM_FAMILIES = (
    "kube_replicaset_created",
    "kube_replicaset_owner",
    "kube_deployment_metadata_generation",
)


def _kube_state_metrics(
    replicasets: list[tuple[str, datetime]], generation: int, ts: int
) -> dict[str, list[str]]:
    """kube-state-metrics' lines at ``ts``, by family (OpenMetrics forbids interleaving)."""
    where = f'namespace="{NAMESPACE}"'
    out: dict[str, list[str]] = {family: [] for family in KSM_FAMILIES}
    for name, created in replicasets:
        rs = f'{where},replicaset="{name}"'
        out["kube_replicaset_created"].append(
            f"kube_replicaset_created{{{rs}}} {int(created.timestamp())} {ts}\n"
        )
        out["kube_replicaset_owner"].append(
            f'kube_replicaset_owner{{{rs},owner_kind="Deployment",owner_name="{WORKLOAD}",'
            f'owner_is_controller="true"}} 1 {ts}\n'
        )
    deployment = f'{where},deployment="{WORKLOAD}"'
    out["kube_deployment_metadata_generation"].append(
        f"kube_deployment_metadata_generation{{{deployment}}} {generation} {ts}\n"
    )
    return out


def releases_csv(releases: list[KnownRelease]) -> str:
    rows = ["namespace,workload,start,end,expect"]
    for r in releases:
        start = r.start.isoformat().replace("+00:00", "Z")
        end = r.end.isoformat().replace("+00:00", "Z")
        rows.append(f"{NAMESPACE},{WORKLOAD},{start},{end},{r.expect}")
    return "\n".join(rows) + "\n"


def create_blocks(files: list[Path], blocks_dir: Path, promtool: str = "promtool") -> None:
    """TSDB blocks from the OpenMetrics files, with Prometheus's own promtool."""
    blocks_dir.mkdir(parents=True, exist_ok=True)
    for path in files:
        subprocess.run(
            [
                promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "-q",
                str(path),
                str(blocks_dir),
            ],
            check=True,
            capture_output=True,
        )
