"""The port wrappers that feed the controller's metrics."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.core.audit import AuditRecord, Decision
from controller.core.models import (
    AnalysisCheck,
    ChangeLane,
    LaneRelease,
    Measurement,
    Verdict,
)
from controller.runtime.instrumentation import MeasuredAnalyzer, MetricsSink
from controller.runtime.metrics import ControllerMetrics
from tests.runtime.harness import lane_doc

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LANE = ChangeLane.model_validate(lane_doc("docs"))
CHECK = LANE.spec.analysis.checks[0]
RELEASE = LaneRelease.model_validate(
    {
        "metadata": {"name": "web-abc", "namespace": "shop"},
        "spec": {
            "lane": "docs",
            "target": {"name": "web", "namespace": "shop"},
            "from": {},
            "to": {},
        },
    }
)


class Fixed:
    def __init__(self, verdict: Verdict | None) -> None:
        self.verdict = verdict

    def measure(
        self, lane: ChangeLane, release: LaneRelease, check: AnalysisCheck, now: datetime
    ) -> Measurement:
        if self.verdict is None:
            raise RuntimeError("boom")
        return Measurement(check=check.name, time=now, step=0, verdict=self.verdict)


def test_analysis_is_timed_and_errors_counted() -> None:
    metrics = ControllerMetrics()
    value = metrics.registry.get_sample_value
    labels = {"lane": "docs", "check": CHECK.name}
    MeasuredAnalyzer(Fixed(Verdict.PASS), metrics).measure(LANE, RELEASE, CHECK, NOW)
    MeasuredAnalyzer(Fixed(Verdict.ERROR), metrics).measure(LANE, RELEASE, CHECK, NOW)
    with pytest.raises(RuntimeError):
        MeasuredAnalyzer(Fixed(None), metrics).measure(LANE, RELEASE, CHECK, NOW)
    assert value("changelane_analysis_query_duration_seconds_count", labels) == 3
    assert value("changelane_analysis_query_errors_total", labels) == 2


def test_a_record_flushed_twice_is_counted_once() -> None:
    metrics = ControllerMetrics()
    sink = MetricsSink(metrics)
    record = AuditRecord(
        id="uid/7", time=NOW, lane="docs", release="web-abc", decision=Decision.PROMOTED, reason="x"
    )
    sink.emit(record)
    sink.emit(record)
    sink.emit(record.model_copy(update={"id": "uid/8", "release": "web-def"}))
    labels = {"lane": "docs", "outcome": "Promoted"}
    assert metrics.registry.get_sample_value("changelane_releases_total", labels) == 2
