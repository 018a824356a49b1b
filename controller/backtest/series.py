"""Which range queries a replay needs, and the sample each check sees at each tick (pure).

The controller asks Prometheus, at every analysis tick, for the check's queries over the
window since the canary reached its step (``{{ window }}`` = that many seconds). History
cannot be fetched that way in bulk, because the windows depend on the decisions being
replayed. So the backtest fetches each query once per release as a range query at the
lane's interval and rebuilds the windows from it:

- **counts** (the ``errorsQuery``/``totalQuery`` of a check: events over the window) are
  fetched with ``{{ window }}`` = one interval, and a window of ``n`` intervals is the sum
  of the last ``n`` points. Events add up over time, so this is the controller's number
  up to ``increase()``'s extrapolation at the edges.
- **values** (``query``/``baselineQuery``: a latency quantile, a ratio) do not add up.
  They are fetched at windows of 1, 2, 4, ... intervals, and a tick uses the longest that
  fits inside the current step: the controller's window, or at least half of it, never
  reaching back before the step started.

Every sample is built from ``plan_queries`` (the controller's own planner) so the judges
see exactly the keys, windows and rendered queries they see in the controller.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from controller.core.analysis import CheckSample, ReleaseParams
from controller.core.analysis.sample import (
    QueryResult,
    ResultKind,
    Role,
    SeriesKey,
    Track,
    plan_queries,
)
from controller.core.models import AnalysisCheck
from controller.core.promql import TemplateError

#: epoch seconds -> value; a missing point is no data.
Timeline = Mapping[int, float]

COUNT_ROLES = frozenset({Role.ERRORS, Role.TOTAL})


def range_chunks(start: int, end: int, step_s: int, max_points: int) -> Iterator[tuple[int, int]]:
    """``[start, end]`` split so no range query returns more than ``max_points`` per series."""
    if step_s <= 0 or max_points <= 0:
        raise ValueError("step and max_points must be positive")
    span = step_s * (max_points - 1)
    a = start
    while a <= end:
        b = min(end, a + span)
        yield a, b
        a = b + step_s


def coalesce(spans: Sequence[tuple[int, int]], step_s: int) -> list[tuple[int, int]]:
    """Merge ``[start, end]`` spans (on one grid) that overlap or lie closer than the
    longer of the two: one range query then fetches both, wasting at most half of it."""
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged:
            pa, pb = merged[-1]
            if a - pb <= max(pb - pa, b - a, step_s):
                merged[-1] = (pa, max(pb, b))
                continue
        merged.append((a, b))
    return merged


def value_windows(interval_s: int, longest_s: int) -> tuple[int, ...]:
    """1, 2, 4, ... intervals, up to the first one that covers ``longest_s``."""
    windows = [interval_s]
    while windows[-1] < longest_s:
        windows.append(windows[-1] * 2)
    return tuple(windows)


@dataclass(frozen=True)
class Fetch:
    """One rendered query to fetch as a range at the lane's interval."""

    query: str
    check: str
    key: SeriesKey  # the track, role and [window] it was rendered for

    @property
    def series(self) -> str:
        return str(self.key)  # e.g. "canary errors [30s]", for messages


class SeriesPlan:
    """The fetches one replay needs, and the per-tick samples built from what came back."""

    def __init__(
        self,
        checks: Sequence[AnalysisCheck],
        params: ReleaseParams,
        *,
        interval_s: int,
        longest_window_s: int,
    ) -> None:
        self.checks = tuple(checks)
        self.params = params
        self.interval_s = interval_s
        self.windows = value_windows(interval_s, longest_window_s)
        self._counts: dict[tuple[str, Track, Role], str] = {}
        self._values: dict[tuple[str, Track, int], str] = {}
        self.problems: dict[str, str] = {}
        fetches: dict[str, Fetch] = {}
        for check in self.checks:
            try:
                self._plan(check, fetches)
            except TemplateError as exc:
                where = f"lane {params.lane}, check {check.name}"
                self.problems[check.name] = f"{where}: cannot render its PromQL safely: {exc}"
        self.fetches = tuple(fetches.values())

    def _plan(self, check: AnalysisCheck, fetches: dict[str, Fetch]) -> None:
        for planned in plan_queries(check, self._at(self.interval_s)):
            key = planned.key
            if key.role in COUNT_ROLES and key.window_seconds == self.interval_s:
                self._counts[(check.name, key.track, key.role)] = planned.query
                fetches.setdefault(planned.query, Fetch(planned.query, check.name, key))
        for window in self.windows:
            for planned in plan_queries(check, self._at(window)):
                key = planned.key
                if key.role is Role.VALUE:
                    self._values[(check.name, key.track, window)] = planned.query
                    fetches.setdefault(planned.query, Fetch(planned.query, check.name, key))

    def _at(self, window_s: int) -> ReleaseParams:
        return replace(self.params, window_seconds=window_s)

    def sample(
        self, check: AnalysisCheck, now: int, window_s: int, data: Mapping[str, Timeline]
    ) -> CheckSample:
        """What the controller's adapter would have handed the judge at ``now``."""
        params = self._at(window_s)
        if check.name in self.problems:
            return CheckSample(
                lane=params.lane,
                check=check.name,
                window_seconds=window_s,
                min_window_seconds=params.min_window_seconds,
                error=self.problems[check.name],
            )
        results: dict[SeriesKey, QueryResult] = {}
        for planned in plan_queries(check, params):
            key = planned.key
            if key.role in COUNT_ROLES:
                source = self._counts.get((check.name, key.track, key.role))
                n = max(1, round(key.window_seconds / self.interval_s))
                times = [now - k * self.interval_s for k in range(n)]
            else:
                fitting = [w for w in self.windows if w <= window_s] or [self.windows[0]]
                source = self._values.get((check.name, key.track, fitting[-1]))
                times = [now]
            results[key] = _sum_of(planned.query, source, times, data)
        return CheckSample(
            lane=params.lane,
            check=check.name,
            window_seconds=window_s,
            min_window_seconds=params.min_window_seconds,
            results=results,
        )


def _sum_of(
    query: str, source: str | None, times: list[int], data: Mapping[str, Timeline]
) -> QueryResult:
    timeline = data.get(source, {}) if source is not None else {}
    present = [timeline[t] for t in times if t in timeline and not math.isnan(timeline[t])]
    if not present:
        return QueryResult(query, ResultKind.NO_DATA, detail="no points in the history")
    return QueryResult(query, ResultKind.OK, value=math.fsum(present))


def has_points(data: Mapping[str, Timeline], queries: Sequence[str], start: int, end: int) -> bool:
    """Whether any of ``queries`` has a point in ``(start, end]``."""
    return any(start < t <= end for q in queries for t in data.get(q, {}))
