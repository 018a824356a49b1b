"""History from Prometheus for backtests: range queries, bounded, through the adapter's policy.

Every request goes through :meth:`PrometheusMetrics.request`, so a backtest has exactly the
controller's timeout, retry and error classification (tenacity; 5xx and connection errors
retried, 4xx not). Queries arrive already rendered by ``controller.core.promql``.

Bounded: a range query never asks for more than ``max_points`` points per series (longer
ranges are split into consecutive queries; Prometheus itself refuses more than 11,000), and
the step is whatever the caller asks for, which the backtest sets to the lane's interval.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controller.adapters.metrics.prometheus import PrometheusMetrics, PrometheusRequestError
from controller.backtest.series import Timeline, range_chunks

#: Points per series per request; Prometheus's own hard limit is 11,000.
DEFAULT_MAX_POINTS = 10_000


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    points: Timeline


class PrometheusHistory:
    """Range queries, instant queries at a past time and label values; counts its requests."""

    def __init__(self, metrics: PrometheusMetrics, *, max_points: int = DEFAULT_MAX_POINTS) -> None:
        if max_points < 1:
            raise ValueError("max_points must be at least 1")
        self.metrics = metrics
        self.max_points = max_points
        self.queries = 0
        self._lock = threading.Lock()  # the engine fetches from several threads

    def _count(self) -> None:
        with self._lock:
            self.queries += 1

    @property
    def url(self) -> str:
        return self.metrics.url

    def range(self, query: str, start: int, end: int, step_s: int, *, what: str) -> list[Series]:
        """Every series ``query`` returns at ``start, start + step, ... <= end`` (epoch s)."""
        merged: dict[tuple[tuple[str, str], ...], dict[int, float]] = {}
        for a, b in range_chunks(start, end, step_s, self.max_points):
            self._count()
            data = self.metrics.request(what, _range_call(query, a, b, step_s))
            for labels, points in _matrix(data, what):
                merged.setdefault(labels, {}).update(points)
        return [Series(dict(k), v) for k, v in merged.items()]

    def one(self, query: str, start: int, end: int, step_s: int, *, what: str) -> Timeline:
        """The single series a check query must return (empty when there is no data)."""
        found = self.range(query, start, end, step_s, what=what)
        if len(found) > 1:
            raise PrometheusRequestError(
                f"{what}: query returned {len(found)} series; aggregate it to one, e.g. sum(...)"
            )
        return found[0].points if found else {}

    def instant(self, query: str, at: int, *, what: str) -> list[tuple[Mapping[str, str], float]]:
        self._count()
        data = self.metrics.request(what, lambda c: c.custom_query(query, params={"time": str(at)}))
        out: list[tuple[Mapping[str, str], float]] = []
        for item in data if isinstance(data, list) else []:
            if isinstance(item, dict) and "value" in item:
                out.append((item.get("metric") or {}, float(item["value"][1])))
        return out


def _range_call(query: str, start: int, end: int, step_s: int) -> Callable[[Any], Any]:
    def call(client: Any) -> Any:
        return client.custom_query_range(
            query, start_time=_at(start), end_time=_at(end), step=f"{step_s}s"
        )

    return call


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _matrix(data: Any, what: str) -> list[tuple[tuple[tuple[str, str], ...], dict[int, float]]]:
    if not isinstance(data, list):
        raise PrometheusRequestError(f"{what}: unexpected range result {str(data)[:100]!r}")
    out = []
    for series in data:
        if not isinstance(series, dict) or "values" not in series:
            raise PrometheusRequestError(f"{what}: unexpected range result {str(series)[:100]!r}")
        points: dict[int, float] = {}
        for t, raw in series["values"]:
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            if not math.isnan(value):
                points[round(float(t))] = value
        labels = tuple(sorted((series.get("metric") or {}).items()))
        out.append((labels, points))
    return out
