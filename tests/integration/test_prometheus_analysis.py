"""The analysis against a real Prometheus scraping real (synthetic) workloads.

One Prometheus (scrape interval 1 s) scrapes several workloads, each a track of an app:
``web`` (healthy canary and baseline), ``bad`` (canary with 5x the errors) and ``gone``
(a canary the test stops). The judges run exactly as the controller runs them:
``PrometheusMetrics.fetch`` -> ``judge`` -> ``apply_measurement``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from controller.adapters.metrics import PrometheusMetrics
from controller.adapters.metrics.prometheus_process import (
    PrometheusProcess,
    ScrapeTarget,
    SyntheticWorkload,
)
from controller.core.analysis import Outcome, ReleaseParams, ResultKind, apply_measurement, judge
from controller.core.models import (
    AnalysisCheck,
    CheckStatus,
    Measurement,
    SequentialEvidence,
    Verdict,
)

pytestmark = pytest.mark.prometheus

SELECT = 'namespace="{{ namespace }}", app="{{ workload }}", track="{{ track }}"'
ERRORS = "sum(increase(http_requests_total{" + SELECT + ', code=~"5.."}[{{ window }}]))'
TOTAL = "sum(increase(http_requests_total{" + SELECT + "}[{{ window }}]))"
P95 = (
    "histogram_quantile(0.95, sum by (le) "
    "(rate(http_request_duration_seconds_bucket{" + SELECT + "}[{{ window }}])))"
)
RATE = "sum(rate(http_requests_total{" + SELECT + "}[{{ window }}]))"


def check(**fields: Any) -> AnalysisCheck:
    return AnalysisCheck.model_validate(fields)


SEQUENTIAL = check(
    name="error-rate",
    kind="sequential",
    errorsQuery=ERRORS,
    totalQuery=TOTAL,
    minSamples=200,
    critical=True,
)
LATENCY = check(name="latency-p95", kind="relative", query=P95, totalQuery=TOTAL, maxRatio=1.5)
LATENCY_LIMIT = check(name="latency-limit", kind="threshold", query=P95, threshold=0.25)


@dataclass
class Env:
    prom: PrometheusProcess
    metrics: PrometheusMetrics
    workloads: dict[tuple[str, str], SyntheticWorkload]
    started: float

    def params(self, app: str, window_s: int | None = None) -> ReleaseParams:
        window = window_s or max(5, int(time.monotonic() - self.started))
        return ReleaseParams(
            lane="docs-site",
            namespace="docs",
            workload=app,
            window_seconds=window,
            min_window_seconds=3,
        )

    def measure(
        self,
        c: AnalysisCheck,
        app: str,
        window_s: int | None = None,
        evidence: SequentialEvidence | None = None,
    ) -> Measurement:
        sample = self.metrics.fetch(c, self.params(app, window_s))
        return judge(c, sample, step=0, now=datetime.now(UTC), evidence=evidence)


SPECS = {
    # (app, track): (rps, error ratio, latency)
    ("web", "baseline"): (400, 0.05, 0.04),
    ("web", "canary"): (400, 0.05, 0.04),
    ("bad", "baseline"): (400, 0.05, 0.04),
    ("bad", "canary"): (400, 0.25, 0.04),
    ("gone", "canary"): (100, 0.0, 0.04),
}


@pytest.fixture(scope="module")
def env(prometheus_bin: str) -> Iterator[Env]:
    workloads = {
        key: SyntheticWorkload(rps=rps, error_ratio=err, latency_s=lat).start()
        for key, (rps, err, lat) in SPECS.items()
    }
    targets = [
        ScrapeTarget(w.address, {"namespace": "docs", "app": app, "track": track})
        for (app, track), w in workloads.items()
    ]
    try:
        with PrometheusProcess(targets, scrape_interval="1s", binary=prometheus_bin) as prom:
            started = time.monotonic()
            prom.wait_for_samples('sum(http_requests_total{app="bad",track="canary"})', minimum=400)
            metrics = PrometheusMetrics(prom.url, timeout_s=2, attempts=2, max_backoff_s=0.2)
            yield Env(prom, metrics, workloads, started)
            metrics.close()
    finally:
        for w in workloads.values():
            w.stop()


def poll_until(
    env: Env, c: AnalysisCheck, app: str, want: Verdict, timeout_s: float = 20
) -> list[Measurement]:
    """Judge every second (as often as the controller could) until ``want``; the
    anytime-valid test allows this."""
    seen: list[Measurement] = []
    deadline = time.monotonic() + timeout_s
    evidence = None  # carried from look to look, as the check's status carries it
    while time.monotonic() < deadline:
        seen.append(env.measure(c, app, evidence=evidence))
        evidence = seen[-1].evidence
        if seen[-1].verdict is want:
            return seen
        time.sleep(1)
    raise AssertionError(f"no {want} within {timeout_s}s: {[m.message for m in seen[-3:]]}")


def test_healthy_canary_passes_every_check(env: Env) -> None:
    # Every look is a one-second interval; the judge assumes every interval carries
    # multiplicative noise, so ruling out x2 takes a few dozen of them at any traffic.
    seen = poll_until(env, SEQUENTIAL, "web", Verdict.PASS, timeout_s=90)
    assert all(m.verdict in (Verdict.INCONCLUSIVE, Verdict.PASS) for m in seen)
    assert "x2 regression is ruled out" in seen[-1].message
    latency = env.measure(LATENCY, "web")
    assert latency.verdict is Verdict.PASS, latency.message
    assert latency.canary == pytest.approx(0.04, rel=0.3)
    assert env.measure(LATENCY_LIMIT, "web").verdict is Verdict.PASS


def test_error_regression_fails_with_the_right_sentence_and_rolls_back(env: Env) -> None:
    seen = poll_until(env, SEQUENTIAL, "bad", Verdict.FAIL, timeout_s=10)
    m = seen[-1]
    assert re.search(
        r"ratio 2[45]\.\d\d% canary vs [45]\.\d\d% baseline \(x[45]\.\d\d\)", m.message
    ), m.message
    assert "canary worse than x1.25 the baseline" in m.message
    assert m.query is not None and 'app="bad"' in m.query
    _, outcome, reason = apply_measurement(SEQUENTIAL, CheckStatus(name="error-rate"), m)
    assert outcome is Outcome.ROLLBACK
    assert reason.startswith("critical check error-rate Fail: canary=0.2")
    assert "alpha=0.01" in reason and "statistic confidence sequence" in reason
    assert m.alpha == 0.01 and m.threshold == SEQUENTIAL.threshold


def test_a_series_that_disappears_is_no_data_and_inconclusive(env: Env) -> None:
    rate = check(
        name="canary-traffic", kind="threshold", query=RATE, threshold=1, direction="higherIsBetter"
    )
    assert env.measure(rate, "gone", window_s=3).verdict is Verdict.PASS
    env.workloads[("gone", "canary")].stop()
    time.sleep(4.5)  # the target is down: no new samples, the 3 s window empties
    gone = env.measure(rate, "gone", window_s=3)
    assert gone.verdict is Verdict.INCONCLUSIVE and "no data for canary value" in gone.message
    sample = env.metrics.fetch(SEQUENTIAL, env.params("gone", 3))
    assert all(r.kind is ResultKind.NO_DATA for r in sample.results.values())
    assert judge(SEQUENTIAL, sample, step=0, now=datetime.now(UTC)).verdict is Verdict.INCONCLUSIVE


HOSTILE = [
    'web"} or vector(1) or up{job="',
    'web"}) or vector(1) #',
    "web\\",
    'web\n"} or vector(1)',
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_injection_attempts_in_parameters_are_neutralised(env: Env, hostile: str) -> None:
    template = "sum(http_requests_total{" + SELECT + "})"
    c = check(name="traffic", kind="threshold", query=template, threshold=0)
    sample = env.metrics.fetch(c, env.params(hostile))
    (result,) = sample.results.values()
    # Escaped, the hostile text is one label value that matches no series: no data.
    assert result.kind is ResultKind.NO_DATA, result
    assert result.query in env.prom.queries_received()
    escaped = hostile.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    assert f'app="{escaped}"' in result.query


def test_the_same_injection_unescaped_would_have_changed_the_answer(env: Env) -> None:
    """The contrast that shows the test above can fail: naive substitution is exploitable."""
    naive = 'sum(http_requests_total{namespace="docs", app="' + HOSTILE[0] + '"})'
    result = env.metrics.query(naive)
    # the injected `or` matchers pull in other series: data where the escaped query had none
    assert result.kind is ResultKind.OK and result.value is not None and result.value > 1


def test_promql_prometheus_rejects_is_an_error_naming_lane_and_check_and_holds(env: Env) -> None:
    # Broken syntax is refused offline when the lane is validated (promql-parser); what is
    # left for Prometheus to refuse is, e.g., a function this Prometheus (2.42) lacks.
    broken = check(
        name="broken",
        kind="threshold",
        query="sum(mad_over_time(x{" + SELECT + "}[{{ window }}]))",
        threshold=1,
    )
    m = env.measure(broken, "web")
    assert m.verdict is Verdict.ERROR
    assert "lane docs-site, check broken" in m.message
    assert "Prometheus rejected the query (HTTP 400)" in m.message
    _, outcome, _ = apply_measurement(broken, CheckStatus(name="broken"), m)
    assert outcome is Outcome.HOLD


def test_a_parameter_the_release_lacks_is_an_error_naming_lane_and_check(env: Env) -> None:
    per_pod = check(name="per-pod", kind="threshold", query='up{pod="{{ pod }}"}', threshold=1)
    m = env.measure(per_pod, "web")
    assert m.verdict is Verdict.ERROR
    assert m.message.startswith("lane docs-site, check per-pod: cannot render its PromQL safely")
    assert "{{ pod }}" in m.message


def test_prometheus_stopped_mid_analysis_gives_error_never_pass(prometheus_bin: str) -> None:
    with (
        SyntheticWorkload(rps=200, error_ratio=0.05) as canary,
        SyntheticWorkload(rps=200, error_ratio=0.05) as baseline,
    ):
        targets = [
            ScrapeTarget(canary.address, {"namespace": "docs", "app": "web", "track": "canary"}),
            ScrapeTarget(
                baseline.address, {"namespace": "docs", "app": "web", "track": "baseline"}
            ),
        ]
        with PrometheusProcess(targets, binary=prometheus_bin) as prom:
            prom.wait_for_samples('sum(http_requests_total{track="baseline"})', minimum=0)
            metrics = PrometheusMetrics(prom.url, timeout_s=1, attempts=2, max_backoff_s=0.1)
            params = ReleaseParams(
                lane="docs-site",
                namespace="docs",
                workload="web",
                window_seconds=10,
                min_window_seconds=3,
            )
            first = judge(
                SEQUENTIAL, metrics.fetch(SEQUENTIAL, params), step=0, now=datetime.now(UTC)
            )
            assert first.verdict is not Verdict.ERROR, first.message
            prom.stop()
            status = CheckStatus(name="error-rate")
            outcomes = []
            for _ in range(SEQUENTIAL.consecutive_error_limit + 1):
                m = judge(
                    SEQUENTIAL, metrics.fetch(SEQUENTIAL, params), step=0, now=datetime.now(UTC)
                )
                assert m.verdict is Verdict.ERROR
                assert "lane docs-site, check error-rate: Prometheus at" in m.message
                assert "failed 2 attempts" in m.message
                status, outcome, _ = apply_measurement(SEQUENTIAL, status, m)
                outcomes.append(outcome)
            assert outcomes[:-1] == [Outcome.HOLD] * SEQUENTIAL.consecutive_error_limit
            assert outcomes[-1] is Outcome.PAUSE
            metrics.close()


def test_runtime_analyzer_judges_the_docs_site_lane_on_a_release(env: Env, repo: Any) -> None:
    """The port the runtime calls, with the checked-in lane's own checks and templates."""
    from datetime import timedelta

    import yaml

    from controller.adapters.metrics import PrometheusAnalyzer
    from controller.core.models import ChangeLane, LaneRelease

    lane = ChangeLane.model_validate(
        yaml.safe_load((repo / "lanes" / "docs-site.yaml").read_text())
    )
    now = datetime.now(UTC)
    release = LaneRelease.model_validate(
        {
            "metadata": {"name": "bad-1", "namespace": "docs"},
            "spec": {
                "lane": "docs-site",
                "target": {"name": "bad", "namespace": "docs"},
                "from": {"podTemplateHash": "aaa"},
                "to": {"podTemplateHash": "bbb"},
            },
            "status": {
                "phase": "Progressing",
                "currentStep": 1,
                "stepStartedAt": (
                    now - timedelta(seconds=time.monotonic() - env.started)
                ).isoformat(),
            },
        }
    )
    analyzer = PrometheusAnalyzer(
        PrometheusMetrics(env.prom.url, timeout_s=2, min_window_seconds=3)
    )
    error_rate = next(c for c in lane.spec.analysis.checks if c.name == "error-rate")
    # the runtime folds each look's evidence into the check's status and the next look
    # reads it from there: a confirmed Fail within a few looks, never a Pass
    status = CheckStatus(name="error-rate")
    for look in range(10):
        m = analyzer.measure(lane, release, error_rate, now + timedelta(seconds=2 * look))
        assert m.step == 1 and m.verdict is not Verdict.PASS, m.message
        if m.verdict is Verdict.FAIL:
            break
        status, _, _ = apply_measurement(error_rate, status, m)
        release.status.checks = [status]
        time.sleep(2)
    assert m.verdict is Verdict.FAIL, m.message
    assert m.evidence is not None and m.evidence.intervals >= 2
    assert m.query is not None and 'app="bad"' in m.query and 'track="canary"' in m.query
