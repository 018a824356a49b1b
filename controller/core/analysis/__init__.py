"""Analysis: judges turn query results into measurements; the policy turns measurements
into outcomes under a check's limits.

The runtime's loop per check and tick::

    params = ReleaseParams(..., window_seconds=analysis_window_seconds(step_started_at, now))
    sample = metrics.fetch(check, params)            # adapter: controller.adapters.metrics
    measurement = judge(check, sample, step=i, now=now)
    status, outcome, reason = apply_measurement(check, status, measurement)
"""

from controller.core.analysis.judges import analysis_failed, judge, judge_release
from controller.core.analysis.policy import Outcome, apply_measurement, describe, worst
from controller.core.analysis.sample import (
    CheckSample,
    PlannedQuery,
    QueryResult,
    ReleaseParams,
    ResultKind,
    Role,
    SeriesKey,
    Track,
    analysis_window_seconds,
    plan_queries,
)

__all__ = [
    "CheckSample",
    "Outcome",
    "PlannedQuery",
    "QueryResult",
    "ReleaseParams",
    "ResultKind",
    "Role",
    "SeriesKey",
    "Track",
    "analysis_failed",
    "analysis_window_seconds",
    "apply_measurement",
    "describe",
    "judge",
    "judge_release",
    "plan_queries",
    "worst",
]
