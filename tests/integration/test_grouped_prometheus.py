"""Grouped queries against a real Prometheus: one query per check answers for every
release, and each release's share of the answer is what its own single-release query says
at the same evaluation time."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from controller.adapters.metrics import PrometheusMetrics
from controller.adapters.metrics.grouped import _post_query, query_groups
from controller.adapters.metrics.prometheus_process import (
    PrometheusProcess,
    ScrapeTarget,
    SyntheticWorkload,
)
from controller.core.promql import render
from controller.core.promql_grouped import grouped_template

pytestmark = pytest.mark.prometheus

SELECT = 'namespace="{{ namespace }}", app="{{ workload }}", track="{{ track }}"'
TEMPLATES = {
    "errors": "sum(increase(http_requests_total{" + SELECT + ', code=~"5.."}[{{ window }}]))',
    "total": "sum(increase(http_requests_total{" + SELECT + "}[{{ window }}]))",
    "p95": "histogram_quantile(0.95, sum by (le) "
    "(rate(http_request_duration_seconds_bucket{" + SELECT + "}[{{ window }}])))",
}
SPECS = {
    ("web", "baseline"): (300, 0.05, 0.04),
    ("web", "canary"): (300, 0.05, 0.04),
    ("bad", "canary"): (300, 0.25, 0.2),
    # Selected by neither query: a name that a regex without escaping would match.
    ("wexb", "canary"): (300, 0.5, 0.04),
}


@pytest.fixture(scope="module")
def prom(prometheus_bin: str) -> Iterator[PrometheusMetrics]:
    workloads = [
        SyntheticWorkload(rps=rps, error_ratio=err, latency_s=lat).start()
        for rps, err, lat in SPECS.values()
    ]
    targets = [
        ScrapeTarget(w.address, {"namespace": "docs", "app": app, "track": track})
        for (app, track), w in zip(SPECS, workloads, strict=True)
    ]
    try:
        with PrometheusProcess(targets, scrape_interval="1s", binary=prometheus_bin) as p:
            p.wait_for_samples('sum(http_requests_total{app="bad",track="canary"})', minimum=300)
            time.sleep(3)  # a few scrapes for every target
            metrics = PrometheusMetrics(p.url, timeout_s=2, attempts=2, max_backoff_s=0.2)
            yield metrics
            metrics.close()
    finally:
        for w in workloads:
            w.stop()


def test_each_release_gets_what_its_own_query_says(prom: PrometheusMetrics) -> None:
    at = time.time() - 1.0
    workloads = ("web", "bad", "we.b")  # "we.b" is escaped: it must not match "wexb"
    for role, template in TEMPLATES.items():
        grouped = grouped_template(template)
        assert not isinstance(grouped, str), grouped
        query = grouped.render(
            namespaces=("docs",),
            workloads=workloads,
            tracks=("canary", "baseline"),
            window="5s",
            lane="docs-site",
        )
        answer = query_groups(prom, query, grouped.labels, at, f"role {role}")
        assert not isinstance(answer, str), answer
        assert {app for _, app, _ in answer} <= {"web", "bad"}, answer
        for app, track in (("web", "canary"), ("web", "baseline"), ("bad", "canary")):
            single = render(
                template,
                {"namespace": "docs", "workload": app, "track": track, "window": "5s"},
            )
            data = prom.request("single", lambda c, q=single: _post_query(c, q, at, 2.0))
            expected = float(data["result"][0]["value"][1])
            assert answer[("docs", app, track)] == pytest.approx(expected), (role, app, track)
    errors = query_groups(
        prom,
        grouped_template(TEMPLATES["errors"]).render(  # type: ignore[union-attr]
            namespaces=("docs",), workloads=("bad",), tracks=("canary",), window="5s", lane="l"
        ),
        {"namespace": "namespace", "workload": "app", "track": "track"},
        at,
        "errors",
    )
    total = query_groups(
        prom,
        grouped_template(TEMPLATES["total"]).render(  # type: ignore[union-attr]
            namespaces=("docs",), workloads=("bad",), tracks=("canary",), window="5s", lane="l"
        ),
        {"namespace": "namespace", "workload": "app", "track": "track"},
        at,
        "total",
    )
    assert not isinstance(errors, str) and not isinstance(total, str)
    ratio = errors[("docs", "bad", "canary")] / total[("docs", "bad", "canary")]
    assert ratio == pytest.approx(0.25, abs=0.08)


def test_a_grouped_query_prometheus_rejects_is_an_error_naming_it(prom: PrometheusMetrics) -> None:
    answer = query_groups(
        prom, "sum by (app) (rate(x[5s]) +)", {"namespace": "n", "workload": "w", "track": "t"},
        time.time(), "lane l, check c",
    )  # fmt: skip
    assert isinstance(answer, str) and answer.startswith("lane l, check c: ")
    assert "rejected the query (HTTP 400)" in answer
