"""Grouped instant queries: one PromQL query answering for every release of a lane.

The query is POSTed (a lane's alternation of workload names can outgrow a URL), evaluated
at the tick's own timestamp (so back-to-back tick windows neither overlap nor leave gaps),
under the adapter's retry policy. The answer is split by the labels that carry namespace,
workload and track; a series missing one of them is ignored (its release then has no data,
which is inconclusive, never a pass).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect

from controller.adapters.metrics.baseline_history import BaselineHistory
from controller.adapters.metrics.prometheus import PrometheusMetrics, PrometheusRequestError
from controller.adapters.metrics.prometheus_range import PrometheusHistory
from controller.core.analysis import CheckSample, ReleaseParams
from controller.core.lane_analysis import GroupAnswer
from controller.core.models import AnalysisCheck, ChangeLane, LaneRelease, NoisePrior


def _post_query(client: PrometheusConnect, promql: str, at: float, timeout: float) -> Any:
    response = client._session.post(
        f"{client.url}/api/v1/query",
        data={"query": promql, "time": f"{at:.3f}"},
        headers=client.headers,
        auth=client.auth,
        timeout=timeout,
    )
    if response.status_code != 200:
        raise PrometheusApiClientException(
            f"HTTP Status Code {response.status_code} ({response.content!r})"
        )
    return response.json()["data"]


def query_groups(
    metrics: PrometheusMetrics,
    promql: str,
    labels: Mapping[str, str],
    at: float,
    what: str,
) -> GroupAnswer | str:
    """``{(namespace, workload, track): value}`` from one grouped query, or why it failed."""
    try:
        data = metrics.request(what, lambda c: _post_query(c, promql, at, metrics.timeout_s))
    except PrometheusRequestError as exc:
        return str(exc)
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        return f"{what}: grouped query returned {kind}; expected an instant vector"
    names = (labels["namespace"], labels["workload"], labels["track"])
    out: dict[tuple[str, str, str], float] = {}
    for series in data.get("result") or []:
        metric = series.get("metric") or {}
        if not all(name in metric for name in names):
            continue
        try:
            value = float(series["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            return f"{what}: non-numeric value in {str(series)[:100]}"
        key = (str(metric[names[0]]), str(metric[names[1]]), str(metric[names[2]]))
        out[key] = math.nan if math.isnan(value) else value
    return out


class PrometheusLaneMetrics:
    """The scheduler's metrics port on one Prometheus: grouped queries, and the adapter's
    own single-release ``fetch`` for templates without a grouped form."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self.metrics = metrics
        self.min_window_seconds = metrics.min_window_seconds
        self.history = BaselineHistory(PrometheusHistory(metrics), metrics.min_window_seconds)

    def query_groups(
        self, promql: str, labels: Mapping[str, str], at: float, what: str
    ) -> GroupAnswer | str:
        return query_groups(self.metrics, promql, labels, at, what)

    def fetch(self, check: AnalysisCheck, params: ReleaseParams) -> CheckSample:
        return self.metrics.fetch(check, params)

    def prefetch_priors(
        self, lane: ChangeLane, releases: list[LaneRelease], check: AnalysisCheck, now: datetime
    ) -> None:
        """The baseline history of the lane's releases that start analysing now, grouped."""
        self.history.prefetch(lane, releases, check, now)

    def noise_prior(
        self, lane: ChangeLane, release: LaneRelease, check: AnalysisCheck, now: datetime
    ) -> NoisePrior | None:
        return self.history.prior(lane, release, check, now)
