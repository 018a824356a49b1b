"""Per-pod evidence against a real Prometheus: the check's queries split by the pod label.

Ten canary pods and five baseline pods of one app, each a synthetic workload scraped with
its own ``pod`` label. One canary pod fails at x4: the canary arm as a whole is only x1.3,
at the check's x1.25 tolerance, so the arm-level test cannot tell; the per-pod test can,
and the rollback message names the pod.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from controller.adapters.metrics import PrometheusMetrics
from controller.adapters.metrics.prometheus_process import (
    PrometheusProcess,
    ScrapeTarget,
    SyntheticWorkload,
)
from controller.bench.decisions import BENCH_CHECKS
from controller.core.analysis import ReleaseParams, Track, judge
from controller.core.models import AnalysisCheck, Measurement, Verdict

pytestmark = pytest.mark.prometheus

# The decision bench's error check, podLabel included: the test runs what the bench measures.
CHECK = AnalysisCheck.model_validate(BENCH_CHECKS[0])
CANARY_PODS = 10
BASELINE_PODS = 5
BAD_POD = "shop-canary-3"


@pytest.fixture(scope="module")
def prom(prometheus_bin: str) -> Iterator[tuple[PrometheusMetrics, float]]:
    workloads: list[tuple[SyntheticWorkload, dict[str, str]]] = []
    for track, pods in (("canary", CANARY_PODS), ("baseline", BASELINE_PODS)):
        for j in range(pods):
            pod = f"shop-{track}-{j}"
            ratio = 0.08 if pod == BAD_POD else 0.02
            labels = {"namespace": "shop", "app": "shop", "track": track, "pod": pod}
            workloads.append((SyntheticWorkload(rps=50, error_ratio=ratio).start(), labels))
    targets = [ScrapeTarget(w.address, labels) for w, labels in workloads]
    try:
        with PrometheusProcess(targets, scrape_interval="1s", binary=prometheus_bin) as p:
            started = time.monotonic()
            p.wait_for_samples('count(http_requests_total{app="shop"})', minimum=15)
            metrics = PrometheusMetrics(p.url, timeout_s=2, attempts=2, max_backoff_s=0.2)
            yield metrics, started
            metrics.close()
    finally:
        for w, _ in workloads:
            w.stop()


def test_one_bad_pod_is_caught_by_its_own_counts(prom: tuple[PrometheusMetrics, float]) -> None:
    metrics, started = prom
    seen: list[Measurement] = []
    evidence = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        window = max(3, int(time.monotonic() - started))
        params = ReleaseParams(
            lane="shop", namespace="shop", workload="shop", window_seconds=window,
            min_window_seconds=3,
        )  # fmt: skip
        sample = metrics.fetch(CHECK, params)
        assert sample.error is None, sample.error
        seen.append(judge(CHECK, sample, step=0, now=datetime.now(UTC), evidence=evidence))
        evidence = seen[-1].evidence
        if seen[-1].verdict is Verdict.FAIL:
            break
        time.sleep(1)
    # every pod of both arms answered by name
    assert set(sample.pods[Track.CANARY]) == {f"shop-canary-{j}" for j in range(CANARY_PODS)}
    assert set(sample.pods[Track.BASELINE]) == {f"shop-baseline-{j}" for j in range(BASELINE_PODS)}
    last = seen[-1]
    assert last.verdict is Verdict.FAIL, [m.message for m in seen[-3:]]
    assert f"canary pod {BAD_POD} worse than x1.25" in last.message, last.message
    assert last.evidence is not None and last.evidence.pods is not None
    assert len(last.evidence.pods.canary) == CANARY_PODS
    assert last.query is not None and "sum(increase(" in last.query  # the arm-level queries
