"""One analysis tick of a lane: which grouped queries answer for all its releases, and what
each release's judge gets from their answers (pure).

A lane is analysed on its own tick (every ``interval``), not per release. Each check is
asked once per tick for every release of the lane with its grouped template
(:mod:`controller.core.promql_grouped`); the answers are split per release into the
:class:`CheckSample` the judges already take, so the judges and their inputs (cumulative
counts over the release's window) do not change.

Windows never reach before the release's step started (a window that did would judge a
release partly on whatever ran under the same track before it, e.g. a rolled-back canary):

- **Counting checks** (``sequential``) accumulate. Each tick asks for the increase over the
  tick's own window ``(t - W, t]`` (evaluated at ``t``, ticks back to back), and adds each
  release's answer to its running counts. A release is counted from the first tick window
  that lies wholly inside its step, so its counts are exactly the step's after that point;
  the judge gets the running counts and their span as its window, as before.
- **Windowed checks** (``threshold``, ``relative``, ``burnRate``: a quantile or a rate
  cannot be summed from ticks) use the longest window from a fixed ladder
  (``unit`` x 1, 2, 3, 4, 6, 8, 12, 16, 24, ...; ``unit`` = the interval, at least the minimum
  window) that fits inside the release's step so far. Releases on the same rung share a
  query, so a check costs at most one query per rung in use, whatever the number of
  releases, and the window covers at least two thirds of the step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from controller.core.analysis.sample import (
    CheckSample,
    QueryResult,
    ResultKind,
    Role,
    SeriesKey,
    Track,
    no_data,
    ok,
    series_templates,
)
from controller.core.models import AnalysisCheck, CheckKind
from controller.core.promql_grouped import GroupedTemplate, grouped_template

#: Releases one grouped query answers for at most: a lane with more is asked in chunks, so
#: a query's alternation of names (and its answer) stays a bounded size.
MAX_RELEASES_PER_QUERY = 2000

#: (namespace, workload, track) -> the value of the series labelled so.
GroupAnswer = Mapping[tuple[str, str, str], float]


@dataclass(frozen=True)
class DueRelease:
    """A release whose step is analysed at this tick."""

    namespace: str
    name: str
    workload: str
    step: int
    #: Epoch seconds at which the release's current step started.
    step_started: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class Accumulated:
    """A release's running counts for one counting check, since ``since`` (epoch s)."""

    step: int
    since: int
    until: int
    counts: Mapping[tuple[Track, Role], float] = field(default_factory=dict)

    @property
    def span(self) -> int:
        return self.until - self.since


def accumulates(check: AnalysisCheck) -> bool:
    """Counts that add up tick by tick (the sequential test's errors and totals)."""
    return check.kind is CheckKind.SEQUENTIAL


def window_rung(elapsed_s: float, unit_s: int) -> int | None:
    """The longest ladder window (``unit_s`` x 1, 2, 3, 4, 6, 8, 12, ...: powers of two and
    three times them, so each rung is at most 1.5x the last) that fits in ``elapsed_s``;
    None when even one unit does not (too early to measure without reaching before the
    step)."""
    if unit_s <= 0 or elapsed_s < unit_s:
        return None
    best = unit_s
    power = 1
    while True:
        for seconds in (unit_s * power * 2, unit_s * power * 3):
            if seconds > elapsed_s:
                return best
            best = seconds
        power *= 2


def groupable(check: AnalysisCheck) -> dict[str, GroupedTemplate] | str:
    """The grouped form of each of the check's templates, or why one has none."""
    if check.pod_label is not None:
        return f"check {check.name}: split by pod ({check.pod_label}), queried per release"
    out: dict[str, GroupedTemplate] = {}
    templates = (check.query, check.baseline_query, check.errors_query, check.total_query)
    for template in templates:
        if template is None or template in out:
            continue
        grouped = grouped_template(template)
        if isinstance(grouped, str):
            return f"check {check.name}: {grouped}"
        out[template] = grouped
    return out


@dataclass(frozen=True)
class GroupedQuery:
    """One query of a tick: ``template`` over ``seconds`` for ``releases`` and ``tracks``;
    its answer fills the ``role`` series of each of those releases and tracks."""

    check: str
    template: GroupedTemplate
    seconds: int
    tracks: tuple[Track, ...]
    role: Role
    releases: tuple[DueRelease, ...]

    @cached_property
    def members(self) -> frozenset[tuple[str, str]]:
        return frozenset(r.key for r in self.releases)

    def render(self, lane: str) -> str:
        return self.template.render(
            namespaces=tuple(sorted({r.namespace for r in self.releases})),
            workloads=tuple(sorted({r.workload for r in self.releases})),
            tracks=tuple(t.value for t in self.tracks),
            window=f"{self.seconds}s",
            lane=lane,
        )


@dataclass
class CheckTick:
    """What one check needs at one tick: its grouped queries, the window each measured
    release's judge is told, and the releases left to single-release queries."""

    check: AnalysisCheck
    queries: list[GroupedQuery] = field(default_factory=list)
    #: release key -> the window (seconds) its judge is told
    windows: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Releases measured with single-release queries, and their window in seconds.
    single: list[tuple[DueRelease, int]] = field(default_factory=list)


def plan_check(
    check: AnalysisCheck,
    releases: Sequence[DueRelease],
    *,
    tick_end: int,
    tick_window: int,
    unit_s: int,
    min_window_s: int,
    accumulated: Mapping[tuple[str, str], Accumulated],
) -> CheckTick:
    """The queries of one check at the tick ending at ``tick_end`` (epoch seconds)."""
    plan = CheckTick(check)
    templates = groupable(check)
    if accumulates(check) and not isinstance(templates, str):
        counted = tuple(
            r for r in releases if _counted_at(r, accumulated.get(r.key), tick_end, tick_window)
        )
        if not counted:
            return plan
        tracks_of: dict[tuple[str, Role], list[Track]] = {}
        for key, template in series_templates(check, tick_window, min_window_s):
            tracks_of.setdefault((template, key.role), []).append(key.track)
        for (template, role), tracks in tracks_of.items():
            for chunk in _chunks(counted):
                plan.queries.append(
                    GroupedQuery(
                        check.name, templates[template], tick_window, tuple(tracks), role, chunk
                    )
                )
        plan.windows = {r.key: tick_window for r in counted}
        return plan
    if accumulates(check):  # not groupable: the step's whole window, one release a time
        for r in releases:
            window = math.floor(tick_end - r.step_started)
            if window >= min_window_s:
                plan.single.append((r, window))
        return plan
    rungs: dict[int, list[DueRelease]] = {}
    for r in releases:
        rung = window_rung(tick_end - r.step_started, unit_s)
        if rung is not None:
            rungs.setdefault(rung, []).append(r)
    if isinstance(templates, str):
        plan.single = [(r, rung) for rung, members in rungs.items() for r in members]
        return plan
    shared: dict[tuple[str, int, Role], tuple[list[Track], dict[tuple[str, str], DueRelease]]]
    shared = {}
    for rung, members in sorted(rungs.items()):
        for key, template in series_templates(check, rung, min_window_s):
            tracks, who = shared.setdefault((template, key.window_seconds, key.role), ([], {}))
            if key.track not in tracks:
                tracks.append(key.track)
            who.update((r.key, r) for r in members)
        plan.windows.update((r.key, rung) for r in members)
    for (template, seconds, role), (tracks, who) in shared.items():
        for chunk in _chunks(tuple(who.values())):
            plan.queries.append(
                GroupedQuery(check.name, templates[template], seconds, tuple(tracks), role, chunk)
            )
    return plan


def _chunks(releases: tuple[DueRelease, ...]) -> list[tuple[DueRelease, ...]]:
    size = MAX_RELEASES_PER_QUERY
    return [releases[i : i + size] for i in range(0, len(releases), size)]


def _counted_at(release: DueRelease, acc: Accumulated | None, tick_end: int, window: int) -> bool:
    """A release is counted at a tick whose whole window lies inside its step."""
    if acc is not None and acc.step == release.step and acc.until == tick_end - window:
        return True
    return release.step_started <= tick_end - window


def result_for(
    answer: GroupAnswer | str, release: DueRelease, track: Track, query: str
) -> QueryResult:
    """The release's series from a grouped answer (an error string is the query's error)."""
    if isinstance(answer, str):
        return QueryResult(query, ResultKind.ERROR, detail=answer)
    value = answer.get((release.namespace, release.workload, track.value))
    if value is None:
        return no_data(query, "no series for this release in the grouped answer")
    if math.isnan(value):
        return no_data(query, "NaN (no events in the window)")
    return ok(value, query)


def windowed_sample(
    lane: str,
    plan: CheckTick,
    release: DueRelease,
    answers: Sequence[GroupAnswer | str],
    query_of: Mapping[SeriesKey, str],
    min_window_s: int,
) -> CheckSample:
    """A windowed check's sample for one release, from the tick's grouped answers: the
    series its judge reads for the release's window, each from the query that holds it.
    Each result names the release's own query (``query_of``), the one to paste into
    Prometheus to see what the judge saw, not the lane-wide grouped one."""
    window = plan.windows[release.key]
    wanted = {key for key, _ in series_templates(plan.check, window, min_window_s)}
    results: dict[SeriesKey, QueryResult] = {}
    for index, q in enumerate(plan.queries):
        if release.key not in q.members:
            continue
        for track in q.tracks:
            key = SeriesKey(track, q.role, q.seconds)
            if key in wanted:
                results[key] = result_for(answers[index], release, track, query_of.get(key, ""))
    return CheckSample(
        lane=lane,
        check=plan.check.name,
        window_seconds=window,
        min_window_seconds=min_window_s,
        results=results,
    )


def accumulate(
    previous: Accumulated | None,
    release: DueRelease,
    *,
    tick_end: int,
    tick_window: int,
    increments: Mapping[tuple[Track, Role], QueryResult],
) -> Accumulated | None:
    """The release's running counts after this tick; None when a query failed (the next
    tick starts counting afresh, and the judge, told a shorter window, starts its
    differences afresh too)."""
    if any(r.kind is ResultKind.ERROR for r in increments.values()):
        return None
    contiguous = (
        previous is not None
        and previous.step == release.step
        and previous.until == tick_end - tick_window
    )
    counts = dict(previous.counts) if contiguous and previous is not None else {}
    since = previous.since if contiguous and previous is not None else tick_end - tick_window
    for (track, role), result in increments.items():
        if result.kind is ResultKind.OK and result.value is not None:
            counts[(track, role)] = counts.get((track, role), 0.0) + max(result.value, 0.0)
    return Accumulated(step=release.step, since=since, until=tick_end, counts=counts)


def accumulated_sample(
    lane: str,
    check: AnalysisCheck,
    acc: Accumulated | None,
    failed: QueryResult | None,
    query_of: Mapping[SeriesKey, str],
    min_window_s: int,
) -> CheckSample:
    """A counting check's sample: the running counts over their span, as the cumulative
    window counts the judge takes (``query_of``: the release's own query per series, keyed
    by the span). A failed tick query is an error for the whole check."""
    span = max(acc.span if acc is not None else 0, 1)
    if failed is not None or acc is None:
        detail = failed.detail if failed is not None else "no counts"
        return CheckSample(
            lane=lane,
            check=check.name,
            window_seconds=span,
            min_window_seconds=min_window_s,
            error=f"lane {lane}, check {check.name}: {detail}",
        )
    results: dict[SeriesKey, QueryResult] = {}
    for key, _ in series_templates(check, span, min_window_s):
        value = acc.counts.get((key.track, key.role))
        query = query_of.get(key, "")
        results[key] = no_data(query) if value is None else ok(value, query)
    return CheckSample(
        lane=lane,
        check=check.name,
        window_seconds=span,
        min_window_seconds=min_window_s,
        results=results,
    )
