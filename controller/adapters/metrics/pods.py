"""Per-pod counts for a check with a ``podLabel``: its queries split by pod, run and read.

The arm-level queries stay what the check is judged on first; the per-pod ones add
evidence. When they cannot be rendered or answered, the sample carries no pods and the
check runs at arm level for that look (logged): a missing per-pod answer never fails a
release and never passes one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from controller.core.analysis.pod_queries import plan_pod_queries, pod_counts, pod_values
from controller.core.analysis.sample import ReleaseParams, Role, Track
from controller.core.models import AnalysisCheck
from controller.core.promql import TemplateError

if TYPE_CHECKING:
    from controller.adapters.metrics.prometheus import PrometheusMetrics

log = structlog.get_logger("changelane.metrics")


def fetch_pods(
    metrics: PrometheusMetrics, check: AnalysisCheck, params: ReleaseParams
) -> dict[Track, dict[str, tuple[float, float]]]:
    assert check.pod_label is not None
    try:
        planned = plan_pod_queries(check, params)
    except (ValueError, TemplateError) as exc:
        log.warning(
            "per-pod queries not rendered", lane=params.lane, check=check.name, why=str(exc)
        )
        return {}
    answers: dict[tuple[Track, Role], dict[str, float]] = {}
    for q in planned:
        series = metrics.query_vector(q.query)
        if isinstance(series, str):
            log.warning(
                "per-pod query failed",
                lane=params.lane,
                check=check.name,
                query=q.query,
                why=series,
            )
            return {}
        answers[(q.track, q.role)] = pod_values(series, check.pod_label)
    return pod_counts(answers)
