"""Run a backtest: find releases, fetch their history in bulk, replay, summarize.

The only I/O is through the :class:`History` port (``PrometheusHistory`` in production, a
dict in unit tests); everything it decides is in the pure modules beside it.

Batching: every release needs the same few rendered queries for its own window. Windows of
releases that need the same query and lie close together are fetched as one range query
(at the lane's interval, on one epoch-aligned grid), so the number of queries grows with
the number of distinct queries and clusters of releases, not with analysis ticks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from controller.adapters.metrics.prometheus import PrometheusRequestError
from controller.backtest.aa import (
    SplitError,
    SplitParams,
    pod_splits,
    series_selector,
    split_check,
)
from controller.backtest.releases import (
    Expect,
    PastRelease,
    ReplicaSetSeen,
    healthy_windows,
    lane_horizon_s,
    releases_from_generations,
    releases_from_replicasets,
)
from controller.backtest.replay import ReplayResult, grid, interval_seconds, replay
from controller.backtest.report import AARun, Summary, summarize
from controller.backtest.series import SeriesPlan, Timeline, coalesce
from controller.core.analysis import ReleaseParams, plan_queries
from controller.core.analysis.sample import Track
from controller.core.models import AnalysisCheck, ChangeLane, parse_duration
from controller.core.promql import escape_label_value, escape_regex_label_value, literal_alternation


class BacktestError(Exception):
    """A problem that stops the backtest; the message names the check, row or server."""


class HistorySeries(Protocol):
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def points(self) -> Timeline: ...


class History(Protocol):
    queries: int

    @property
    def url(self) -> str: ...

    def range(
        self, query: str, start: int, end: int, step_s: int, *, what: str
    ) -> Sequence[HistorySeries]: ...

    def one(self, query: str, start: int, end: int, step_s: int, *, what: str) -> Timeline: ...

    def instant(
        self, query: str, at: int, *, what: str
    ) -> list[tuple[Mapping[str, str], float]]: ...


@dataclass(frozen=True)
class AAOptions:
    windows: int = 30
    splits: int = 10
    canary_pods: int = 1
    seed: int = 1
    window_s: float | None = None  # default: the lane's horizon


@dataclass
class BacktestRun:
    results: list[ReplayResult]
    aa: AARun | None
    summary: Summary


def run_backtest(
    lane: ChangeLane,
    history: History,
    *,
    since: datetime,
    until: datetime,
    releases: Sequence[PastRelease] | None = None,
    workload: str | None = None,
    aa: AAOptions | None = AAOptions(),
    concurrency: int = 4,
    clock: Callable[[], float] = time.monotonic,
) -> BacktestRun:
    """Backtest ``lane`` over ``[since, until)``; raises ``BacktestError`` on bad input."""
    started = clock()
    if until <= since:
        raise BacktestError(f"--until ({until.isoformat()}) must be after --since")
    if releases is None:
        releases = discover_releases(lane, history, since=since, until=until)
    chosen = [
        r
        for r in releases
        if since <= r.start < until and (workload is None or r.workload == workload)
    ]
    if not chosen:
        raise BacktestError(
            f"no releases of lane {lane.name} between {since.isoformat()} and "
            f"{until.isoformat()}" + (f" for workload {workload}" if workload else "")
        )
    results = replay_all(lane, history, chosen, concurrency)
    aa_run = None
    if aa is not None:
        aa_run = run_aa(
            lane, history, chosen, since=since, until=until, options=aa, concurrency=concurrency
        )
    summary = summarize(results, aa_run, queries=history.queries, seconds=clock() - started)
    return BacktestRun(results, aa_run, summary)


def _params(lane: ChangeLane, release: PastRelease) -> ReleaseParams:
    return ReleaseParams(
        lane=lane.name,
        namespace=release.namespace,
        workload=release.workload,
        canary_revision=release.to_revision,
        baseline_revision=release.from_revision,
    )


def _longest_step_s(lane: ChangeLane) -> int:
    return int(max(parse_duration(s.min_duration) for s in lane.spec.strategy.steps))


class _Wanted:
    """The range each query is needed over, across many replays, and what to call it."""

    def __init__(self, lane: ChangeLane) -> None:
        self.lane = lane
        self.spans: dict[str, list[tuple[int, int]]] = {}
        self.what: dict[str, str] = {}

    def add(self, plan: SeriesPlan, release: PastRelease, prefix: str = "") -> None:
        interval = plan.interval_s
        first = grid(release.start, interval) + interval
        last = int(release.end.timestamp())
        for fetch in plan.fetches:
            self.spans.setdefault(fetch.query, []).append((first, last))
            self.what[fetch.query] = (
                f"{prefix}lane {self.lane.name}, check {fetch.check} ({fetch.series})"
            )


def replay_all(
    lane: ChangeLane, history: History, releases: Sequence[PastRelease], concurrency: int = 4
) -> list[ReplayResult]:
    interval = interval_seconds(lane)
    plans = [
        SeriesPlan(
            lane.spec.analysis.checks,
            _params(lane, r),
            interval_s=interval,
            longest_window_s=_longest_step_s(lane),
        )
        for r in releases
    ]
    wanted = _Wanted(lane)
    for release, plan in zip(releases, plans, strict=True):
        wanted.add(plan, release)
    data = fetch_all(history, wanted, interval, concurrency)
    return [replay(lane, r, p, data) for r, p in zip(releases, plans, strict=True)]


def fetch_all(
    history: History, wanted: _Wanted, interval: int, concurrency: int = 4
) -> dict[str, Timeline]:
    """Every wanted range, close spans coalesced, ``concurrency`` requests at a time."""
    jobs = [(q, a, b) for q, spans in wanted.spans.items() for a, b in coalesce(spans, interval)]

    def fetch(job: tuple[str, int, int]) -> tuple[str, Timeline]:
        query, a, b = job
        return query, history.one(query, a, b, interval, what=wanted.what[query])

    data: dict[str, dict[int, float]] = {q: {} for q in wanted.spans}
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
    try:
        for query, points in pool.map(fetch, jobs):
            data[query].update(points)
    except PrometheusRequestError as exc:
        raise BacktestError(str(exc)) from exc
    finally:
        # On the first failure the queued requests are dropped, not tried one by one.
        pool.shutdown(wait=True, cancel_futures=True)
    return dict(data)


# --------------------------------------------------------------------------- discovery


def discover_releases(
    lane: ChangeLane, history: History, *, since: datetime, until: datetime
) -> list[PastRelease]:
    """Releases of Deployments in the lane's namespaces, from kube-state-metrics: new
    ReplicaSets first, changes of generation where no ReplicaSet series exist."""
    namespaces = "|".join(escape_regex_label_value(n) for n in lane.spec.selector.namespaces)
    span = f"{max(1, int((until - since).total_seconds()))}s"
    horizon = lane_horizon_s(lane)
    at = int(until.timestamp())
    by = "max by (namespace, replicaset, owner_name)"
    owner = f'kube_replicaset_owner{{namespace=~"{namespaces}", owner_kind="Deployment"}}'
    created = (
        f'{by} (last_over_time(kube_replicaset_created{{namespace=~"{namespaces}"}}[{span}])'
        f" * on (namespace, replicaset) group_left (owner_name)"
        f" {by} (last_over_time({owner}[{span}])))"
    )
    try:
        rows = history.instant(created, at, what="release discovery (kube_replicaset_created)")
        seen = [
            ReplicaSetSeen(
                labels.get("namespace", ""),
                labels.get("owner_name", ""),
                labels.get("replicaset", ""),
                datetime.fromtimestamp(value, UTC),
            )
            for labels, value in rows
            if labels.get("owner_name")
        ]
        found = releases_from_replicasets(seen, since=since, until=until, horizon_s=horizon)
        if found:
            return found
        interval = interval_seconds(lane)
        generations = history.range(
            f'kube_deployment_metadata_generation{{namespace=~"{namespaces}"}}',
            grid(since, interval),
            at,
            interval,
            what="release discovery (kube_deployment_metadata_generation)",
        )
    except PrometheusRequestError as exc:
        raise BacktestError(str(exc)) from exc
    out: list[PastRelease] = []
    for series in generations:
        out += releases_from_generations(
            series.labels.get("namespace", ""),
            series.labels.get("deployment", ""),
            series.points,
            until=until,
            horizon_s=horizon,
        )
    return sorted(out, key=lambda r: (r.start, r.namespace, r.workload))


# --------------------------------------------------------------------------- A/A

_MARKER = "changelaneaamarker"


def run_aa(
    lane: ChangeLane,
    history: History,
    releases: Sequence[PastRelease],
    *,
    since: datetime,
    until: datetime,
    options: AAOptions,
    concurrency: int = 4,
) -> AARun:
    """Replay the lane over healthy windows with pods split into pretend arms."""
    try:
        checks = [split_check(c) for c in lane.spec.analysis.checks]
    except SplitError as exc:
        return AARun((), 0, options.splits, problem=str(exc))
    length = options.window_s or lane_horizon_s(lane)
    interval = interval_seconds(lane)
    longest = _longest_step_s(lane)
    trials: list[tuple[PastRelease, SeriesPlan]] = []
    wanted = _Wanted(lane)
    windows = 0
    problems: list[str] = []
    for namespace, workload in sorted({(r.namespace, r.workload) for r in releases}):
        base = ReleaseParams(lane=lane.name, namespace=namespace, workload=workload)
        selector = _pod_selector(checks, base)
        if selector is None:
            problems.append(f"{namespace}/{workload}: no check query selects series by pod")
            continue
        spans = healthy_windows(
            releases,
            namespace=namespace,
            workload=workload,
            since=since,
            until=until,
            length_s=length,
            limit=options.windows,
        )
        for index, (start, end) in enumerate(spans):
            pods = _pods_throughout(history, selector, start, end)
            splits = pod_splits(pods, options.canary_pods, options.splits, options.seed + index)
            windows += bool(splits)
            for canary, baseline in splits:
                params = SplitParams(
                    lane=lane.name,
                    namespace=namespace,
                    workload=workload,
                    canary_pods=canary,
                    baseline_pods=baseline,
                )
                plan = SeriesPlan(checks, params, interval_s=interval, longest_window_s=longest)
                trial = PastRelease(
                    namespace,
                    workload,
                    start,
                    end,
                    Expect.PROMOTE,
                    source=f"A/A canary pods {', '.join(canary)}",
                )
                trials.append((trial, plan))
                wanted.add(plan, trial, prefix="A/A ")
    data = fetch_all(history, wanted, interval, concurrency)
    results = tuple(replay(lane, trial, plan, data) for trial, plan in trials)
    problem = "; ".join(problems) if problems and not results else None
    if not results and problem is None:
        problem = (
            "no healthy window had two or more pods with series throughout: A/A needs the "
            "check queries' series to carry a pod label"
        )
    return AARun(results, windows, options.splits, problem=problem)


def _pods_throughout(
    history: History, selector: str, start: datetime, end: datetime
) -> tuple[str, ...]:
    """Pods with samples through (nearly) the whole window: pods that came or went inside
    it (an old version, a release's canary) are not part of the healthy population."""
    seconds = max(1, int((end - start).total_seconds()))
    query = f"sum by (pod) (count_over_time({selector}[{seconds}s]))"
    try:
        rows = history.instant(query, int(end.timestamp()), what=f"A/A pods ({selector})")
    except PrometheusRequestError as exc:
        raise BacktestError(str(exc)) from exc
    counts = {labels.get("pod", ""): value for labels, value in rows if labels.get("pod")}
    if not counts:
        return ()
    most = max(counts.values())
    return tuple(sorted(p for p, n in counts.items() if n >= 0.9 * most))


def _pod_selector(checks: Sequence[AnalysisCheck], base: ReleaseParams) -> str | None:
    """A series selector for the service's pods, taken from a check's own query."""
    params = SplitParams(
        lane=base.lane,
        namespace=base.namespace,
        workload=base.workload,
        canary_pods=(_MARKER,),
        baseline_pods=(_MARKER,),
    )
    matcher = f'pod=~"{escape_label_value(literal_alternation((_MARKER,)))}"'
    for check in checks:
        planned = plan_queries(check, params)
        ordered = sorted(planned, key=lambda p: p.key.role.value != "total")
        for p in ordered:
            if p.key.track is not Track.CANARY:
                continue
            selector = series_selector(p.query, _MARKER)
            if selector is not None:
                return selector.replace(matcher, 'pod!=""')
    return None
