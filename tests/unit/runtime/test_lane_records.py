"""A lane-level record (suspension, agent level) is never lost to a sink that failed once:
the lane's status, which marks the change announced, is written only after every sink
took the record, and the change is announced again on the next try."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controller.runtime.lane_records import LANE_RECORD_RETRY_S
from controller.runtime.lanes import LaneReconciler
from tests import lane_docs
from tests.unit.runtime.fake_cluster import LANES, FakeCluster
from tests.unit.runtime.test_reconciler import Sink

LANE = "web-lane"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _lane(**status: Any) -> dict[str, Any]:
    doc = lane_docs.lane_doc(LANE, "shop", generation=1)
    doc["spec"]["gates"] = {"agentAutonomy": {"entryLevel": "autonomous"}}
    doc["status"] = status
    return doc


def _reconciler(cluster: FakeCluster, sink: Sink) -> LaneReconciler:
    return LaneReconciler(cluster, releases=lambda: [], sinks=[sink], clock=lambda: NOW)


def _status(cluster: FakeCluster) -> dict[str, Any]:
    return dict(cluster.get(LANES, "", LANE).get("status") or {})


def test_a_suspension_a_sink_could_not_take_is_announced_when_it_can() -> None:
    cluster, sink = FakeCluster(), Sink(broken=True)
    cluster.put(
        LANES, _lane(suspended=True, suspendedReason="by hand", suspendedAt=NOW.isoformat())
    )
    lanes = _reconciler(cluster, sink)

    assert lanes.reconcile(LANE) == LANE_RECORD_RETRY_S
    assert not any(c["type"] == "Suspended" for c in _status(cluster).get("conditions", []))
    assert not any(e.get("reason") == "LaneSuspended" for e in cluster.events)

    sink.broken = False
    assert lanes.reconcile(LANE) is None
    assert [r.decision.value for r in sink.records] == ["lane_suspended"]
    assert any(c["type"] == "Suspended" for c in _status(cluster)["conditions"])
    assert lanes.reconcile(LANE) is None  # announced once: nothing more to send
    assert len(sink.records) == 1


def test_an_agent_level_a_sink_could_not_take_is_not_stored_until_it_is_recorded() -> None:
    pin = {"agent": "claude-code", "model": "m1", "level": "supervised", "by": "oncall"}
    cluster, sink = FakeCluster(), Sink(broken=True)
    cluster.put(LANES, _lane(agentPins=[{**pin, "at": NOW.isoformat(), "reason": "flaky"}]))
    lanes = _reconciler(cluster, sink)

    assert lanes.reconcile(LANE) == LANE_RECORD_RETRY_S
    assert _status(cluster).get("agents", []) == []
    assert not any(e.get("reason") == "AgentLevelPinned" for e in cluster.events)

    sink.broken = False
    assert lanes.reconcile(LANE) is None
    assert [r.decision.value for r in sink.records] == ["autonomy_changed"]
    assert [(a["agent"], a["level"]) for a in _status(cluster)["agents"]] == [
        ("claude-code", "supervised")
    ]
    assert any(e.get("reason") == "AgentLevelPinned" for e in cluster.events)
    assert lanes.reconcile(LANE) is None
    assert len(sink.records) == 1
