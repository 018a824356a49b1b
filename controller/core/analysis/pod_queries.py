"""The per-pod form of a sequential check's queries, and reading their answers (pure).

A check that declares ``podLabel: pod`` keeps its ordinary ``errorsQuery``/``totalQuery``
(one value per arm, what the arm-level test reads) and is also asked the same questions
split by pod: every aggregation of the template gets the pod label in its ``by`` clause,
``sum(increase(x{...}[5m]))`` becomes ``sum by (pod) (increase(x{...}[5m]))``, so the
answer has one series per pod. The rewrite is the grouped per-lane one
(:mod:`controller.core.promql_grouped`) with the pod label as the grouping; every value
still goes through :func:`controller.core.promql.render`, which escapes it, and the label
name itself is an identifier the lane schema has validated (``^[a-zA-Z_][a-zA-Z0-9_]*$``),
so nothing from a release reaches PromQL unescaped. A template whose shape does not allow
the rewrite (``without``, a ``by`` after the parenthesis, ranking or collapsing calls, no
aggregation) is refused with the reason; the check then runs at arm level only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.core.analysis.sample import ReleaseParams, Role, Track, series_templates
from controller.core.models import AnalysisCheck, CheckKind
from controller.core.promql import render
from controller.core.promql_pods import pod_split_template

#: Pods kept from one answer: a query over a baseline of thousands of pods must not make
#: the fetch (or the status) unbounded; the judge keeps fewer still.
MAX_PODS_PER_ANSWER = 500


@dataclass(frozen=True)
class PodQuery:
    track: Track
    role: Role
    query: str


def plan_pod_queries(check: AnalysisCheck, params: ReleaseParams) -> list[PodQuery]:
    """The per-pod queries of a sequential check with a ``podLabel`` (none otherwise),
    rendered; raises ValueError (the template's shape) or ``TemplateError``."""
    if check.kind is not CheckKind.SEQUENTIAL or check.pod_label is None:
        return []
    out = []
    for key, template in series_templates(check, params.window_seconds, params.min_window_seconds):
        split = pod_split_template(template, check.pod_label)
        values = params.for_track(key.track, key.window_seconds)
        out.append(PodQuery(key.track, key.role, render(split, values)))
    return out


def pod_values(series: Sequence[Mapping[str, object]], pod_label: str) -> dict[str, float]:
    """One instant-vector answer as ``{pod: value}``; series without the label, or with a
    value that is not a finite count, are left out (at most :data:`MAX_PODS_PER_ANSWER`,
    in name order)."""
    out: dict[str, float] = {}
    for s in series:
        metric, value = s.get("metric"), s.get("value")
        if not isinstance(metric, Mapping) or not isinstance(value, Sequence):
            continue
        pod = metric.get(pod_label)
        if not isinstance(pod, str) or not pod or len(value) != 2:
            continue
        try:
            number = float(str(value[1]))
        except ValueError:
            continue
        if math.isfinite(number) and number >= 0:
            out[pod] = number
    return dict(sorted(out.items())[:MAX_PODS_PER_ANSWER])


def pod_counts(
    answers: Mapping[tuple[Track, Role], Mapping[str, float]],
) -> dict[Track, dict[str, tuple[float, float]]]:
    """Per track, each pod's ``(errors, total)``; a pod with requests and no error series
    has zero errors (an error-coded counter exists only after its first error)."""
    out: dict[Track, dict[str, tuple[float, float]]] = {}
    for track in (Track.CANARY, Track.BASELINE):
        totals = answers.get((track, Role.TOTAL), {})
        errors = answers.get((track, Role.ERRORS), {})
        pods = {p: (min(errors.get(p, 0.0), n), n) for p, n in totals.items() if n > 0}
        if pods:
            out[track] = pods
    return out
