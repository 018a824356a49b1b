"""The judge's noise prior from the baseline's history, against a real Prometheus.

An hour of baseline counters before each release (backfilled with ``promtool tsdb
create-blocks-from openmetrics``, per pod, scraped every 15 s): a quiet service whose
errors are Poisson, and a noisy one whose error ratio moves by a gamma factor of relative
variance 0.3 every two minutes. The runtime's range queries (grouped per lane, and per
release for a check split by pod) must find the one quiet and the other noisy, put the
prior in the first evidence, fetch once, and fall back to the fixed prior when Prometheus
cannot answer.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from controller.adapters.metrics import PrometheusMetrics
from controller.adapters.metrics.baseline_history import BaselineHistory
from controller.adapters.metrics.grouped import PrometheusLaneMetrics
from controller.adapters.metrics.prometheus_process import PrometheusProcess, free_port
from controller.adapters.metrics.prometheus_range import PrometheusHistory
from controller.core.analysis import judge_release
from controller.core.analysis.history import DISPERSION_FLOOR
from controller.core.analysis.sample import counts_sample
from controller.core.models import LaneRelease, Phase, SequentialEvidence
from tests.unit.lane_fixtures import lane

pytestmark = pytest.mark.prometheus

START = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)  # the releases start here
PODS = 4
RPS_PER_POD = 10.0
ERROR_RATIO = 0.01
SCRAPE_S = 15
DOCS = lane("docs-site")
ERROR_CHECK = next(c for c in DOCS.spec.analysis.checks if c.name == "error-rate").model_copy(
    update={"noise_prior": "history"}
)
POD_CHECK = ERROR_CHECK.model_copy(update={"name": "error-rate-pods", "pod_label": "pod"})


def openmetrics(path: Path, seed: int) -> None:
    """Per pod of each workload, cumulative counters every 15 s over the hour before."""
    rng = np.random.default_rng(seed)
    steps = 3600 // SCRAPE_S + 8  # a little more than an hour, so the first interval has a rate
    lines = ["# TYPE http_requests counter\n"]
    for app, psi in (("quiet", 0.0), ("noisy", 0.3)):
        per_batch = 120 // SCRAPE_S
        batches = -(-steps // per_batch)
        factor = rng.gamma(1 / psi, psi, batches) if psi else np.ones(batches)
        ratio = ERROR_RATIO * np.repeat(factor, per_batch)[:steps]
        pod_factors = np.exp(rng.normal(0, 0.2, PODS))
        for j in range(PODS):
            requests = rng.poisson(RPS_PER_POD * SCRAPE_S, steps)
            errors = rng.binomial(requests, np.clip(ratio * pod_factors[j], 0, 1))
            ok, bad = np.cumsum(requests - errors), np.cumsum(errors)
            labels = f'namespace="docs",app="{app}",track="baseline",pod="{app}-{j}"'
            for k in range(steps):
                ts = int((START - timedelta(seconds=(steps - 1 - k) * SCRAPE_S)).timestamp())
                lines.append(f'http_requests_total{{{labels},code="200"}} {ok[k]} {ts}\n')
                lines.append(f'http_requests_total{{{labels},code="500"}} {bad[k]} {ts}\n')
    lines.append("# EOF\n")
    path.write_text("".join(lines))


@pytest.fixture(scope="module")
def prom(prometheus_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("history")
    source = tmp / "history.om"
    openmetrics(source, seed=7)
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    blocks = tmp / "blocks"
    blocks.mkdir()
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(blocks)],
        check=True,
        capture_output=True,
    )
    with PrometheusProcess(binary=prometheus_bin, blocks=blocks, retention="3650d") as p:
        yield p.url


def release(app: str, **status: Any) -> LaneRelease:
    return LaneRelease.model_validate(
        {
            "metadata": {"name": f"{app}-new", "namespace": "docs"},
            "spec": {
                "lane": "docs-site",
                "target": {"name": app, "namespace": "docs"},
                "from": {"podTemplateHash": "old"},
                "to": {"podTemplateHash": "new"},
            },
            "status": {
                "phase": Phase.PROGRESSING.value,
                "startedAt": START.isoformat(),
                "stepStartedAt": START.isoformat(),
                **status,
            },
        }
    )


def metrics(url: str) -> PrometheusMetrics:
    return PrometheusMetrics(url, timeout_s=5, attempts=2, max_backoff_s=0.2)


def test_grouped_history_finds_the_quiet_and_the_noisy_service_in_two_queries(
    prom: str,
) -> None:
    port = PrometheusLaneMetrics(metrics(prom))
    releases = [release("quiet"), release("noisy"), release("absent")]
    port.prefetch_priors(DOCS, releases, ERROR_CHECK, START)
    assert port.history.queries == 2  # errors and total, for every release of the lane
    quiet, noisy, absent = (port.noise_prior(DOCS, r, ERROR_CHECK, START) for r in releases)
    assert port.history.queries == 2  # fetched once
    assert quiet is not None and noisy is not None
    assert absent is None  # no history: the fixed prior
    assert quiet.dispersion == DISPERSION_FLOOR  # Poisson errors
    assert 0.12 < noisy.dispersion < 0.75  # a relative variance of 0.3 per two minutes
    assert quiet.history_batches >= 28  # the hour, at the lane's 30 s interval
    # every pod's traffic: 4 pods x 10 req/s over about an hour
    assert 0.9 * 4 * 10 * 3600 < quiet.baseline_requests < 1.1 * 4 * 10 * 3600


def test_per_pod_history_gives_the_pod_spread_and_rides_in_the_first_evidence(
    prom: str,
) -> None:
    history = BaselineHistory(PrometheusHistory(metrics(prom)), 30)
    quiet = release("quiet")
    prior = history.prior(DOCS, quiet, POD_CHECK, START)
    assert history.queries == 2  # the two per-pod queries; the arm is their sum
    assert prior is not None and prior.pod_spread is not None and prior.history_pods == PODS
    sample = counts_sample(
        "docs-site", POD_CHECK.name, 30, canary=(1.0, 300.0), baseline=(3.0, 1200.0)
    )
    measured = judge_release(DOCS, quiet, POD_CHECK, sample, START + timedelta(seconds=30), prior)
    assert measured.evidence is not None and measured.evidence.prior == prior
    assert "noise prior from the baseline's history" in (measured.statistic or "")
    # A release whose status holds evidence (after a restart) is not asked again.
    restarted = release(
        "quiet",
        checks=[{"name": POD_CHECK.name, "evidence": measured.evidence.to_wire()}],
    )
    assert history.prior(DOCS, restarted, POD_CHECK, START) is None
    assert history.queries == 2


def test_an_unreachable_prometheus_keeps_the_fixed_prior() -> None:
    dead = PrometheusMetrics(
        f"http://127.0.0.1:{free_port()}", timeout_s=0.5, attempts=1, max_backoff_s=0.01
    )
    history = BaselineHistory(PrometheusHistory(dead), 30)
    noisy = release("noisy")
    assert history.prior(DOCS, noisy, ERROR_CHECK, START) is None
    assert history.prior(DOCS, noisy, ERROR_CHECK, START) is None
    assert history.queries == 1  # once: the failure is remembered, not retried every look
    sample = counts_sample(
        "docs-site", ERROR_CHECK.name, 30, canary=(1.0, 300.0), baseline=(3.0, 1200.0)
    )
    measured = judge_release(DOCS, noisy, ERROR_CHECK, sample, START, None)
    assert isinstance(measured.evidence, SequentialEvidence)
    assert measured.evidence.prior is None
    assert "fixed noise prior" in (measured.statistic or "")
