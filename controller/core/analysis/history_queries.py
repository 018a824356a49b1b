"""Which history the judge's noise prior needs, and reading it back (pure).

When a release's analysis starts, each sequential check's baseline queries (its
``errorsQuery`` and ``totalQuery`` for the baseline track, and their per-pod form when the
check declares ``podLabel``) are asked as range queries over the hour before the release
started, at a step of the lane's interval with ``window`` = the interval: one point per
interval, each the baseline's increase over that interval. Every value reaches PromQL
through :func:`controller.core.promql.render` (escaped), as the checks' own queries do.
:func:`controller.core.analysis.history.estimate_prior` turns the counts into the prior.

The assumption the queries carry: the check's baseline query selects the stable copy
before the release as well (its labels do not exist only during a release). If they do
not, the history is empty and the judge keeps its fixed prior.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from controller.core.analysis.sample import ReleaseParams, Role, Track, series_templates
from controller.core.models import AnalysisCheck, CheckKind, Direction, LaneRelease
from controller.core.promql import render
from controller.core.promql_pods import pod_split_template

#: How far back the history reaches: what Prometheus holds for the hour before.
HISTORY_SECONDS = 3600

Points = Mapping[int, float]  # epoch seconds -> value


@dataclass(frozen=True)
class HistoryRange:
    """``start, start + step, ..., end`` (epoch seconds): each point the increase over the
    interval ending there, the last one ending when the release started."""

    start: int
    end: int
    step: int

    @property
    def points(self) -> list[int]:
        return list(range(self.start, self.end + 1, self.step))


def history_range(started: datetime, interval_s: int) -> HistoryRange:
    end = math.floor(started.timestamp())
    step = max(1, interval_s)
    return HistoryRange(end - (HISTORY_SECONDS // step - 1) * step, end, step)


def wants_history(check: AnalysisCheck, release: LaneRelease) -> bool:
    """A sequential check declaring ``noisePrior: history``, of a release whose status
    holds no evidence for it yet (once it does, the prior rides in the evidence: a restart
    does not refetch)."""
    if check.kind is not CheckKind.SEQUENTIAL or check.noise_prior != "history":
        return False
    previous = next((c for c in release.status.checks if c.name == check.name), None)
    return previous is None or previous.evidence is None


def baseline_templates(check: AnalysisCheck, interval_s: int, min_window_s: int) -> dict[Role, str]:
    """The baseline's errors and total templates of a sequential check."""
    return {
        key.role: template
        for key, template in series_templates(check, interval_s, min_window_s)
        if key.track is Track.BASELINE and key.role in (Role.ERRORS, Role.TOTAL)
    }


def history_queries(
    check: AnalysisCheck, params: ReleaseParams, interval_s: int
) -> dict[Role, str]:
    """The release's own baseline history queries, rendered (``TemplateError`` on a bad
    template)."""
    values = params.for_track(Track.BASELINE, interval_s)
    templates = baseline_templates(check, interval_s, params.min_window_seconds)
    return {role: render(template, values) for role, template in templates.items()}


def pod_history_queries(
    check: AnalysisCheck, params: ReleaseParams, interval_s: int
) -> dict[Role, str]:
    """The same split by the check's pod label (empty without one; ValueError when the
    template's shape does not allow the split)."""
    if check.pod_label is None:
        return {}
    values = params.for_track(Track.BASELINE, interval_s)
    templates = baseline_templates(check, interval_s, params.min_window_seconds)
    return {
        role: render(pod_split_template(template, check.pod_label), values)
        for role, template in templates.items()
    }


def _interval(
    check: AnalysisCheck, counted: float | None, total: float | None
) -> tuple[float, float]:
    """One interval's ``(bad, requests)``; (0, 0) without a known total."""
    if total is None or not math.isfinite(total) or total <= 0:
        return 0.0, 0.0
    c = counted if counted is not None and math.isfinite(counted) else 0.0
    c = min(max(c, 0.0), total)
    return (total - c if check.direction is Direction.HIGHER_IS_BETTER else c), total


def history_counts(
    check: AnalysisCheck, errors: Points, totals: Points, span: HistoryRange
) -> tuple[list[float], list[float]]:
    """Per interval of ``span``, the baseline's bad events and requests. An interval with
    no total is left out (no traffic known); one with a total and no errors series has
    none (an error-coded counter exists only after its first error). A check counting good
    events (``higherIsBetter``) counts the missing ones, as the judge does."""
    pairs = [_interval(check, errors.get(t), totals.get(t)) for t in span.points]
    kept = [(e, m) for e, m in pairs if m > 0]
    return [e for e, _ in kept], [m for _, m in kept]


def pod_history(
    check: AnalysisCheck,
    errors: Mapping[str, Points],
    totals: Mapping[str, Points],
    span: HistoryRange,
    max_pods: int,
) -> tuple[list[float], list[float], dict[str, tuple[list[float], list[float]]]]:
    """The baseline arm's counts per interval as the sum of its pods', and each pod's
    (the first ``max_pods`` pods by name, as the judge keeps a sample of the baseline's):
    intervals where no pod served a request are left out, a pod without a point in an
    interval served none there."""
    pods = sorted(totals)[:max_pods]
    kept = [t for t in span.points if any(totals[p].get(t, 0.0) > 0 for p in pods)]
    per_pod: dict[str, tuple[list[float], list[float]]] = {}
    for p in pods:
        pairs = [_interval(check, errors.get(p, {}).get(t), totals[p].get(t)) for t in kept]
        per_pod[p] = ([e for e, _ in pairs], [m for _, m in pairs])
    arm_e = [sum(per_pod[p][0][i] for p in pods) for i in range(len(kept))]
    arm_m = [sum(per_pod[p][1][i] for p in pods) for i in range(len(kept))]
    return arm_e, arm_m, per_pod
