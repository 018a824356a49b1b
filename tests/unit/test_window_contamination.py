"""Window contamination: a release shipped right after a rolled-back one on the same
workload must not be judged on the rolled-back canary's series (same ``track`` label).
No analysis window may reach before the release's step started."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.adapters.metrics.analyzer import PrometheusAnalyzer
from controller.core.analysis import CheckSample, ReleaseParams, plan_queries
from controller.core.models import AnalysisCheck, LaneRelease, Verdict
from tests.unit.lane_fixtures import lane

NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


class RecordingMetrics:
    """Records the range of every query it is asked (how far back each one reaches)."""

    min_window_seconds = 30

    def __init__(self) -> None:
        self.reach: list[int] = []

    def fetch(self, check: AnalysisCheck, params: ReleaseParams) -> CheckSample:
        self.reach += [p.key.window_seconds for p in plan_queries(check, params)]
        return CheckSample(lane=params.lane, check=check.name, window_seconds=1)


def release(step_age: timedelta) -> LaneRelease:
    return LaneRelease.model_validate(
        {
            "metadata": {"name": "dash-b", "namespace": "dashboards"},
            "spec": {
                "lane": "internal-dashboards",
                "target": {"name": "dash", "namespace": "dashboards"},
                "from": {"podTemplateHash": "a"},
                "to": {"podTemplateHash": "b"},
            },
            "status": {
                "phase": "Progressing",
                "stepStartedAt": (NOW - step_age).isoformat(),
            },
        }
    )


@pytest.mark.parametrize(
    "age",
    [
        timedelta(seconds=0.4),
        timedelta(seconds=10.5),
        timedelta(seconds=29.9),
        timedelta(seconds=95.7),
    ],
)
def test_no_query_reaches_before_the_step_started(age: timedelta) -> None:
    dashboards = lane("internal-dashboards")  # burn rate, sequential and threshold checks
    metrics = RecordingMetrics()
    analyzer = PrometheusAnalyzer(metrics)
    for check in dashboards.spec.analysis.checks:
        m = analyzer.measure(dashboards, release(age), check, NOW)
        if age.total_seconds() < metrics.min_window_seconds:
            assert m.verdict is Verdict.INCONCLUSIVE and "minimum analysis window" in m.message
    assert all(seconds <= age.total_seconds() for seconds in metrics.reach), metrics.reach
    assert bool(metrics.reach) == (age.total_seconds() >= metrics.min_window_seconds)
