from __future__ import annotations

import urllib.request
from datetime import UTC, datetime

import pytest

from controller.core.audit import AuditProvenance, AuditRecord, Decision
from controller.runtime.metrics import ControllerMetrics, serve_metrics

# The contract with the chart's dashboard and alert rules.
NAMES = {
    "changelane_releases_total": "counter",
    "changelane_rollbacks_total": "counter",
    "changelane_regression_detection_seconds": "histogram",
    "changelane_analysis_query_duration_seconds": "histogram",
    "changelane_analysis_query_errors_total": "counter",
    "changelane_reconcile_duration_seconds": "histogram",
    "changelane_workqueue_depth": "gauge",
    "changelane_lane_autonomy_enabled": "gauge",
    "changelane_lane_suspended": "gauge",
    "changelane_leader": "gauge",
    "changelane_lease_held": "gauge",
    "changelane_shards": "gauge",
    "changelane_lane_change_failure_rate": "gauge",
    "changelane_lane_provenance_coverage": "gauge",
    "changelane_lane_rework_rate": "gauge",
    "changelane_releases_gated_total": "counter",
    "changelane_notification_attempts_total": "counter",
    "changelane_agent_releases": "gauge",
    "changelane_agent_change_failure_rate": "gauge",
    "changelane_agent_track_record": "gauge",
    "changelane_agent_autonomy_level": "gauge",
}


def _rec(decision: Decision, release: str, reason: str = "x") -> AuditRecord:
    return AuditRecord(
        time=datetime(2025, 1, 1, tzinfo=UTC),
        lane="docs",
        workload="docs-web",
        release=release,
        decision=decision,
        reason=reason,
        provenance=AuditProvenance(agent="a", model="m", change="c", tests="t"),
    )


def test_exactly_the_contracted_names_and_types() -> None:
    text = ControllerMetrics().exposition().decode()
    declared = {
        line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE")
    }
    assert declared == NAMES


def test_decisions_feed_counters_and_scorecard() -> None:
    m = ControllerMetrics()
    value = m.registry.get_sample_value
    for record in [
        _rec(Decision.RELEASE_SEEN, "a"),
        _rec(Decision.PROMOTED, "a"),
        _rec(Decision.RELEASE_SEEN, "b"),
        _rec(Decision.ROLLED_BACK, "b", reason="critical check errors Fail: canary=0.3"),
    ]:
        m.emit(record)
    assert value("changelane_releases_total", {"lane": "docs", "outcome": "Promoted"}) == 1
    assert value("changelane_releases_total", {"lane": "docs", "outcome": "RolledBack"}) == 1
    # The label is the reason's class, never its text (which names values: unbounded).
    labels = {"lane": "docs", "reason": "analysis_failed"}
    assert value("changelane_rollbacks_total", labels) == 1
    assert value("changelane_lane_change_failure_rate", {"lane": "docs"}) == 0.5
    assert value("changelane_lane_provenance_coverage", {"lane": "docs"}) == 1.0
    assert value("changelane_lane_rework_rate", {"lane": "docs"}) == 0.5


def test_record_functions() -> None:
    m = ControllerMetrics()
    value = m.registry.get_sample_value
    m.record_gated("docs", "changeWindow")
    m.record_regression_detected("docs", 42)
    with m.time_analysis_query("docs", "error-rate"):
        pass
    with pytest.raises(TimeoutError), m.time_analysis_query("docs", "error-rate"):
        raise TimeoutError
    with m.time_reconcile("LaneRelease"):
        pass
    m.set_workqueue_depth(3)
    m.set_lane_autonomy("docs", False)
    m.set_lane_suspended("docs", True)
    m.set_leader(True)
    labels = {"lane": "docs", "check": "error-rate"}
    assert value("changelane_releases_gated_total", {"lane": "docs", "gate": "changeWindow"}) == 1
    assert value("changelane_regression_detection_seconds_sum", {"lane": "docs"}) == 42
    assert value("changelane_analysis_query_duration_seconds_count", labels) == 2
    assert value("changelane_analysis_query_errors_total", labels) == 1
    assert value("changelane_reconcile_duration_seconds_count", {"kind": "LaneRelease"}) == 1
    assert value("changelane_workqueue_depth") == 3
    assert value("changelane_lane_autonomy_enabled", {"lane": "docs"}) == 0
    assert value("changelane_lane_suspended", {"lane": "docs"}) == 1
    assert value("changelane_leader") == 1


def test_metrics_are_served_over_http_on_loopback() -> None:
    m = ControllerMetrics()
    m.set_leader(True)
    server = serve_metrics(m)
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
        assert "changelane_leader 1.0" in body
    finally:
        server.stop()


def test_track_records_by_author_replace_stale_series() -> None:
    from controller.core.autonomy.record import TrackRecord
    from controller.core.models import AgentStanding, AutonomyLevel

    m = ControllerMetrics()
    value = m.registry.get_sample_value
    rec = TrackRecord("docs", "claude", "x", 4, 3, 1, 0, 0, 1, 0, 4, (60.0, 120.0))
    m.publish_track_records("docs", [rec])
    pair = {"lane": "docs", "agent": "claude", "model": "x"}
    assert value("changelane_agent_releases", {**pair, "outcome": "RolledBack"}) == 1
    assert value("changelane_agent_releases", {**pair, "outcome": "seen"}) == 4
    assert value("changelane_agent_change_failure_rate", {**pair, "bound": "estimate"}) == 0.25
    assert value("changelane_agent_change_failure_rate", {**pair, "bound": "upper"}) > 0.25
    assert value("changelane_agent_track_record", {**pair, "figure": "containment"}) == 1.0
    m.publish_levels(
        "docs", [AgentStanding(agent="claude", model="x", level=AutonomyLevel.SUPERVISED)]
    )
    assert value("changelane_agent_autonomy_level", pair) == 1
    # The author folded into 'other' (or left): its own series go.
    other = TrackRecord("docs", "other", "other", 4, 3, 1, 0, 0, 1, 0, 4, ())
    m.publish_track_records("docs", [other])
    m.publish_levels("docs", [])
    assert value("changelane_agent_releases", {**pair, "outcome": "seen"}) is None
    assert value("changelane_agent_autonomy_level", pair) is None
    assert (
        value(
            "changelane_agent_releases",
            {"lane": "docs", "agent": "other", "model": "other", "outcome": "seen"},
        )
        == 4
    )
