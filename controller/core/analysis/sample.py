"""What a check needs from Prometheus, and what came back (pure).

``plan_queries`` says which queries a check needs for a given analysis window, rendered
with the release's parameters through :mod:`controller.core.promql` (the one place that
escapes). The metrics adapter executes the plan and hands the judge a :class:`CheckSample`;
the decision benchmark builds the same samples from generated traces, so both exercise
the judges through one shape.

The window assumption: ``window_seconds`` is the time since the canary reached its
*current step* (``LaneReleaseStatus.step_started_at``). Within a step the traffic split is
constant, which is what makes the sequential test exact on cumulative counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from controller.core.models import AnalysisCheck, CheckKind, LaneRelease
from controller.core.promql import ParamValue, render

#: Below this a window holds too few scrapes for ``rate``/``increase`` to mean anything.
DEFAULT_MIN_WINDOW_SECONDS = 30


class Track(StrEnum):
    CANARY = "canary"
    BASELINE = "baseline"


class Role(StrEnum):
    VALUE = "value"  # the checked value itself (threshold, relative)
    ERRORS = "errors"  # bad events over the window
    TOTAL = "total"  # all events over the window


class ResultKind(StrEnum):
    OK = "ok"
    NO_DATA = "no_data"
    ERROR = "error"


@dataclass(frozen=True)
class SeriesKey:
    track: Track
    role: Role
    window_seconds: int

    def __str__(self) -> str:
        return f"{self.track.value} {self.role.value} [{promql_duration(self.window_seconds)}]"


@dataclass(frozen=True)
class PlannedQuery:
    key: SeriesKey
    query: str


@dataclass(frozen=True)
class QueryResult:
    """One query's answer. ``value`` is set only for OK; ``detail`` says why otherwise."""

    query: str
    kind: ResultKind
    value: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class ReleaseParams:
    """The release's parameters that templates may name (see ``promql.KNOWN_PARAMETERS``)."""

    lane: str
    namespace: str
    workload: str
    canary_revision: str = ""
    baseline_revision: str = ""
    window_seconds: int = 60
    min_window_seconds: int = DEFAULT_MIN_WINDOW_SECONDS
    pod: str | None = None

    def for_track(self, track: Track, window_seconds: int) -> dict[str, ParamValue]:
        revision = self.canary_revision if track is Track.CANARY else self.baseline_revision
        values: dict[str, ParamValue] = {
            "lane": self.lane,
            "namespace": self.namespace,
            "workload": self.workload,
            "track": track.value,
            "revision": revision,
            "window": promql_duration(window_seconds),
            "interval": promql_duration(window_seconds),
        }
        if self.pod is not None:
            values["pod"] = self.pod
        return values


def params_for_window(
    lane: str, release: LaneRelease, window_seconds: int, min_window_seconds: int
) -> ReleaseParams:
    """What a template may name for ``release`` of ``lane``, over ``window_seconds``."""
    return ReleaseParams(
        lane=lane,
        namespace=release.spec.target.namespace,
        workload=release.spec.target.name,
        canary_revision=release.spec.to_revision.pod_template_hash or "",
        baseline_revision=release.spec.from_revision.pod_template_hash or "",
        window_seconds=window_seconds,
        min_window_seconds=min_window_seconds,
    )


@dataclass(frozen=True)
class CheckSample:
    """What the adapter fetched for one check: every planned series' result, or one error
    that stopped the fetch (a template that cannot render, an unreachable Prometheus)."""

    lane: str
    check: str
    window_seconds: int
    min_window_seconds: int = DEFAULT_MIN_WINDOW_SECONDS
    results: Mapping[SeriesKey, QueryResult] = field(default_factory=dict)
    error: str | None = None
    #: Per track, each pod's ``(errors, total)`` over the window, when the check declares
    #: a ``podLabel`` and the counts could be split by it (empty otherwise).
    pods: Mapping[Track, Mapping[str, tuple[float, float]]] = field(default_factory=dict)

    def get(self, track: Track, role: Role, window_seconds: int | None = None) -> QueryResult:
        key = SeriesKey(
            track, role, self.window_seconds if window_seconds is None else window_seconds
        )
        result = self.results.get(key)
        if result is None:
            return QueryResult(query="", kind=ResultKind.NO_DATA, detail=f"{key} was not fetched")
        return result

    @property
    def queries(self) -> list[str]:
        seen: list[str] = []
        for result in self.results.values():
            if result.query and result.query not in seen:
                seen.append(result.query)
        return seen


def promql_duration(seconds: int) -> str:
    """``seconds`` as a PromQL duration (``95s``); at least one second."""
    return f"{max(1, int(seconds))}s"


def analysis_window_seconds(step_started_at: datetime, now: datetime) -> int:
    """The window the runtime passes: whole seconds since the canary reached its step."""
    return max(1, math.ceil((now - step_started_at).total_seconds()))


@dataclass(frozen=True)
class BurnTier:
    """One multi-window burn-rate condition: both windows must burn at ``factor`` or more."""

    name: str
    factor: float
    long_seconds: int
    short_seconds: int


def burn_rate_tiers(
    check: AnalysisCheck, window_seconds: int, min_window_seconds: int
) -> list[BurnTier]:
    """The SRE workbook's two page tiers (14.4x over 1h/5m, 6x over 6h/30m) scaled to the
    canary: the slow tier's long window is the whole analysis window, the fast tier's is a
    sixth of it, each short window a twelfth of its long one, none under the scrape floor.
    The factors keep the workbook's ratio to ``maxBurnRate``."""

    def clamp(seconds: float) -> int:
        return max(min_window_seconds, min(window_seconds, math.ceil(seconds)))

    fast = check.max_burn_rate
    slow = check.max_burn_rate * 6.0 / 14.4
    long_fast = clamp(window_seconds / 6)
    return [
        BurnTier("fast", fast, long_fast, clamp(long_fast / 12)),
        BurnTier("slow", slow, clamp(window_seconds), clamp(window_seconds / 12)),
    ]


def series_templates(
    check: AnalysisCheck, window_s: int, min_window_s: int
) -> list[tuple[SeriesKey, str]]:
    """Every series the check's judge reads, with the template that answers it: one list
    for the single-release plan (:func:`plan_queries`) and the grouped one per lane."""
    out: list[tuple[SeriesKey, str]] = []

    def add(track: Track, role: Role, template: str, seconds: int) -> None:
        key = SeriesKey(track, role, seconds)
        if all(k != key for k, _ in out):
            out.append((key, template))

    if check.kind in (CheckKind.THRESHOLD, CheckKind.RELATIVE):
        assert check.query is not None  # the model guarantees it for these kinds
        add(Track.CANARY, Role.VALUE, check.query, window_s)
        if check.kind is CheckKind.RELATIVE:
            add(Track.BASELINE, Role.VALUE, check.baseline_query or check.query, window_s)
        if check.total_query is not None:
            add(Track.CANARY, Role.TOTAL, check.total_query, window_s)
            if check.kind is CheckKind.RELATIVE:
                add(Track.BASELINE, Role.TOTAL, check.total_query, window_s)
    elif check.kind is CheckKind.BURN_RATE:
        assert check.errors_query is not None and check.total_query is not None
        seconds = {window_s}
        for tier in burn_rate_tiers(check, window_s, min_window_s):
            seconds |= {tier.long_seconds, tier.short_seconds}
        for s in sorted(seconds, reverse=True):
            add(Track.CANARY, Role.ERRORS, check.errors_query, s)
            add(Track.CANARY, Role.TOTAL, check.total_query, s)
    else:
        assert check.errors_query is not None and check.total_query is not None
        for track in (Track.CANARY, Track.BASELINE):
            add(track, Role.ERRORS, check.errors_query, window_s)
            add(track, Role.TOTAL, check.total_query, window_s)
    return out


def plan_queries(check: AnalysisCheck, params: ReleaseParams) -> list[PlannedQuery]:
    """Every query the check needs, rendered; raises ``TemplateError`` on a bad template."""
    series = series_templates(check, params.window_seconds, params.min_window_seconds)
    return [
        PlannedQuery(key, render(template, params.for_track(key.track, key.window_seconds)))
        for key, template in series
    ]


def ok(value: float, query: str = "") -> QueryResult:
    return QueryResult(query=query, kind=ResultKind.OK, value=value)


def no_data(query: str = "", detail: str = "empty result") -> QueryResult:
    return QueryResult(query=query, kind=ResultKind.NO_DATA, detail=detail)


def failed(detail: str, query: str = "") -> QueryResult:
    return QueryResult(query=query, kind=ResultKind.ERROR, detail=detail)


def counts_sample(
    lane: str,
    check: str,
    window_seconds: int,
    *,
    canary: tuple[float, float] | None,
    baseline: tuple[float, float] | None,
) -> CheckSample:
    """A sample of (errors, total) per arm over the window; ``None`` means no data."""
    results: dict[SeriesKey, QueryResult] = {}
    for track, counts in ((Track.CANARY, canary), (Track.BASELINE, baseline)):
        for role, index in ((Role.ERRORS, 0), (Role.TOTAL, 1)):
            key = SeriesKey(track, role, window_seconds)
            results[key] = no_data() if counts is None else ok(counts[index])
    return CheckSample(lane=lane, check=check, window_seconds=window_seconds, results=results)
