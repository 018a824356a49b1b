"""The history adapter: bounded range queries under the Prometheus adapter's retry policy."""

from __future__ import annotations

from typing import Any

import pytest

from controller.adapters.metrics.prometheus import PrometheusRequestError
from controller.adapters.metrics.prometheus_range import PrometheusHistory
from tests.unit.test_prometheus_adapter import Script, metrics, server

__all__ = ["server"]  # the scripted HTTP server fixture


def matrix(*series: list[tuple[int, str]]) -> dict[str, Any]:
    result = [{"metric": {"i": str(i)}, "values": s} for i, s in enumerate(series)]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def test_long_ranges_are_split_under_the_point_cap(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, matrix([(0, "1"), (30, "NaN"), (60, "2")]))]
    history = PrometheusHistory(metrics(url), max_points=10)
    points = history.one("q", 0, 30 * 25, 30, what="check x")
    assert history.queries == script.requests == 3  # 26 points, at most 10 per query
    assert points == {0: 1.0, 60: 2.0}  # NaN is no data


def test_5xx_is_retried_then_reported_as_unreachable(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(503, {"status": "error", "error": "busy"})]
    history = PrometheusHistory(metrics(url, attempts=3))
    with pytest.raises(PrometheusRequestError) as caught:
        history.one("q", 0, 60, 30, what="lane l, check c (canary total [30s])")
    assert caught.value.unreachable and script.requests == 3
    assert str(caught.value).startswith(
        f"lane l, check c (canary total [30s]): Prometheus at {url} failed 3 attempts"
    )


def test_4xx_is_not_retried_and_says_what_prometheus_said(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(400, {"status": "error", "error": "parse error at char 3"})]
    history = PrometheusHistory(metrics(url))
    with pytest.raises(PrometheusRequestError, match=r"check c: .*HTTP 400.*parse error"):
        history.one("q(", 0, 60, 30, what="check c")
    assert script.requests == 1


def test_a_check_query_must_return_one_series(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, matrix([(0, "1")], [(0, "2")]))]
    with pytest.raises(PrometheusRequestError, match="returned 2 series; aggregate it"):
        PrometheusHistory(metrics(url)).one("q", 0, 60, 30, what="check c")
