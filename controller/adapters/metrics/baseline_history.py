"""The baseline's hour of history before a release, fetched once, as the judge's noise prior.

When a release's sequential check has no evidence yet, its baseline queries are asked as
range queries over the hour before the release started
(:mod:`controller.core.analysis.history_queries`) and
:func:`controller.core.analysis.history.estimate_prior` estimates the prior from them. The
prior rides in the check's first evidence, so the release status keeps it: a restart does
not refetch, and the audit record shows what the judge assumed.

Fetched once per release and check: the answer, or its absence, is remembered (bounded),
and a release whose status holds evidence is never asked for again. Fail safe: a query
error, a template that does not render, too little history: no prior, and the judge keeps
its fixed one (never a faster decision for want of data).

Per lane tick, the releases of a lane that need a prior share one grouped range query per
check and role (the checks' grouped form, :mod:`controller.core.promql_grouped`), so a
tick asks at most ``checks x 2`` more queries however many releases start; a check split
by pod (``podLabel``, never grouped) asks its two per-pod queries per release, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import structlog

from controller.core.analysis.history import estimate_prior
from controller.core.analysis.history_queries import (
    HistoryRange,
    Points,
    baseline_templates,
    history_counts,
    history_queries,
    history_range,
    pod_history,
    pod_history_queries,
    wants_history,
)
from controller.core.analysis.sample import Role, params_for_window
from controller.core.lane_analysis import MAX_RELEASES_PER_QUERY, groupable
from controller.core.models import (
    AnalysisCheck,
    ChangeLane,
    LaneRelease,
    NoisePrior,
    parse_duration,
)
from controller.core.models.release import MAX_BASELINE_PODS
from controller.core.promql import TemplateError
from controller.core.promql_grouped import GroupedTemplate

log = structlog.get_logger("changelane.analysis")

#: Releases whose fetched prior (or its absence) is remembered until their status has it.
MAX_REMEMBERED = 4096


class RangeSeries(Protocol):
    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def points(self) -> Points: ...


@runtime_checkable
class HistoryMetrics(Protocol):
    """Range queries under the metrics adapter's timeout and retry policy
    (:class:`controller.adapters.metrics.prometheus_range.PrometheusHistory`)."""

    def range(
        self, query: str, start: int, end: int, step_s: int, *, what: str
    ) -> Sequence[RangeSeries]: ...


Key = tuple[str, str, str, str]  # namespace, release, check, baseline revision


def _key(release: LaneRelease, check: AnalysisCheck) -> Key:
    return (
        release.spec.target.namespace,
        release.name,
        check.name,
        release.spec.from_revision.pod_template_hash or "",
    )


def _started(release: LaneRelease, now: datetime) -> datetime:
    return release.status.started_at or release.status.step_started_at or now


class BaselineHistory:
    def __init__(self, metrics: HistoryMetrics, min_window_seconds: int) -> None:
        self.metrics = metrics
        self.min_window_seconds = min_window_seconds
        self._priors: dict[Key, NoisePrior | None] = {}
        #: Range queries sent, for tests and the log.
        self.queries = 0

    def prior(
        self, lane: ChangeLane, release: LaneRelease, check: AnalysisCheck, now: datetime
    ) -> NoisePrior | None:
        """The prior for the check's first evidence (fetched for this release alone if no
        grouped fetch has); None once the status holds evidence, or when there is none."""
        if not wants_history(check, release):
            return None
        key = _key(release, check)
        if key not in self._priors:
            self._remember(key, self._fetch_one(lane, release, check, now))
        return self._priors[key]

    def prefetch(
        self, lane: ChangeLane, releases: Iterable[LaneRelease], check: AnalysisCheck, now: datetime
    ) -> None:
        """One grouped range query per role for every release of the lane that needs the
        check's prior; a check without a grouped form is left to :meth:`prior`."""
        waiting = [
            r for r in releases if wants_history(check, r) and _key(r, check) not in self._priors
        ]
        templates = groupable(check)
        if not waiting or isinstance(templates, str):
            return
        interval = _interval(lane, self.min_window_seconds)
        for start in range(0, len(waiting), MAX_RELEASES_PER_QUERY):
            chunk = waiting[start : start + MAX_RELEASES_PER_QUERY]
            found = self._fetch_grouped(lane, chunk, check, templates, interval, now)
            for release in chunk:
                self._remember(_key(release, check), found.get(_key(release, check)))

    # ------------------------------------------------------------------ fetching

    def _fetch_one(
        self, lane: ChangeLane, release: LaneRelease, check: AnalysisCheck, now: datetime
    ) -> NoisePrior | None:
        interval = _interval(lane, self.min_window_seconds)
        span = history_range(_started(release, now), interval)
        params = params_for_window(lane.name, release, interval, self.min_window_seconds)
        what = f"lane {lane.name}, check {check.name}: baseline history"
        if check.pod_label is not None:
            try:
                pod_queries = pod_history_queries(check, params, interval)
            except (ValueError, TemplateError) as exc:  # no per-pod form: the arm's history
                self._failed(lane, release, check, exc)
                pod_queries = {}
            if pod_queries:
                try:
                    return self._pods(lane, release, check, pod_queries, span, what)
                except Exception as exc:  # fail safe: no history is the fixed prior
                    self._failed(lane, release, check, exc)
                    return None
        try:
            queries = history_queries(check, params, interval)
            points = {role: self._one(q, span, what) for role, q in queries.items()}
            errors, requests = history_counts(
                check, points.get(Role.ERRORS, {}), points.get(Role.TOTAL, {}), span
            )
            return self._estimate(lane, release, check, errors, requests, None)
        except Exception as exc:  # fail safe: no history is the fixed prior
            self._failed(lane, release, check, exc)
            return None

    def _pods(
        self,
        lane: ChangeLane,
        release: LaneRelease,
        check: AnalysisCheck,
        queries: Mapping[Role, str],
        span: HistoryRange,
        what: str,
    ) -> NoisePrior | None:
        """The arm's history as the sum of its pods' (two queries, not four)."""
        assert check.pod_label is not None
        label = check.pod_label
        by_role: dict[Role, dict[str, Points]] = {}
        for role, query in queries.items():
            self.queries += 1
            found = self.metrics.range(query, span.start, span.end, span.step, what=what)
            by_role[role] = {s.labels[label]: s.points for s in found if s.labels.get(label)}
        errors, requests, pods = pod_history(
            check,
            by_role.get(Role.ERRORS, {}),
            by_role.get(Role.TOTAL, {}),
            span,
            MAX_BASELINE_PODS,
        )
        return self._estimate(lane, release, check, errors, requests, pods)

    def _one(self, query: str, span: HistoryRange, what: str) -> Points:
        self.queries += 1
        found = self.metrics.range(query, span.start, span.end, span.step, what=what)
        if len(found) > 1:
            raise ValueError(f"{what}: query returned {len(found)} series; expected one")
        return found[0].points if found else {}

    def _fetch_grouped(
        self,
        lane: ChangeLane,
        releases: list[LaneRelease],
        check: AnalysisCheck,
        templates: Mapping[str, GroupedTemplate],
        interval: int,
        now: datetime,
    ) -> dict[Key, NoisePrior | None]:
        spans = {_key(r, check): history_range(_started(r, now), interval) for r in releases}
        start = min(s.start for s in spans.values())
        end = max(s.end for s in spans.values())
        what = f"lane {lane.name}, check {check.name}: baseline history"
        answers: dict[Role, dict[tuple[str, str], Points]] = {}
        try:
            for role, template in baseline_templates(
                check, interval, self.min_window_seconds
            ).items():
                grouped = templates[template]
                text = grouped.render(
                    namespaces=tuple(sorted({r.spec.target.namespace for r in releases})),
                    workloads=tuple(sorted({r.spec.target.name for r in releases})),
                    tracks=("baseline",),
                    window=f"{interval}s",
                    lane=lane.name,
                )
                self.queries += 1
                found = self.metrics.range(text, start, end, interval, what=what)
                names = grouped.labels
                answers[role] = {
                    (s.labels.get(names["namespace"], ""), s.labels.get(names["workload"], "")): (
                        s.points
                    )
                    for s in found
                }
        except Exception as exc:  # fail safe: no history is the fixed prior
            for r in releases:
                self._failed(lane, r, check, exc)
            return {}
        out: dict[Key, NoisePrior | None] = {}
        for r in releases:
            who = (r.spec.target.namespace, r.spec.target.name)
            errors, requests = history_counts(
                check,
                answers.get(Role.ERRORS, {}).get(who, {}),
                answers.get(Role.TOTAL, {}).get(who, {}),
                spans[_key(r, check)],
            )
            out[_key(r, check)] = self._estimate(lane, r, check, errors, requests, None)
        return out

    def _estimate(
        self,
        lane: ChangeLane,
        release: LaneRelease,
        check: AnalysisCheck,
        errors: list[float],
        requests: list[float],
        pods: Mapping[str, tuple[list[float], list[float]]] | None,
    ) -> NoisePrior | None:
        prior = estimate_prior(errors, requests, pods)
        log.info(
            "baseline history",
            lane=lane.name,
            release=release.name,
            check=check.name,
            intervals=len(requests),
            prior=None if prior is None else prior.dispersion,
            fallback="fixed prior" if prior is None else None,
        )
        return prior

    def _failed(
        self, lane: ChangeLane, release: LaneRelease, check: AnalysisCheck, exc: Exception
    ) -> None:
        why = str(exc) if isinstance(exc, TemplateError | ValueError) else repr(exc)
        log.warning(
            "baseline history unavailable: the judge keeps its fixed noise prior",
            lane=lane.name,
            release=release.name,
            check=check.name,
            why=why[:300],
        )

    def _remember(self, key: Key, prior: NoisePrior | None) -> None:
        self._priors[key] = prior
        while len(self._priors) > MAX_REMEMBERED:
            del self._priors[next(iter(self._priors))]


def _interval(lane: ChangeLane, min_window_seconds: int) -> int:
    """The history's step: the lane's analysis period, as its looks see intervals (the
    lane tick's period: the interval, at least the minimum window)."""
    return max(1, round(parse_duration(lane.spec.analysis.interval)), min_window_seconds)
