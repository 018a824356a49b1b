"""The cluster as an audit source, from LaneRelease/ChangeLane objects and Events alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.adapters.audit.cluster import (
    ANNOTATION_ACTOR,
    ANNOTATION_DECISION,
    ANNOTATION_ID,
    ANNOTATION_TIME,
    ClusterAuditSource,
)
from controller.core.audit import Decision
from controller.core.audit_query import AuditFilter, summarize
from tests.runtime.harness import lane_doc

T = "2026-11-24T12:00:0{}.5Z"


def release(name: str = "web-abc", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "changelane.dev/v1alpha1",
        "kind": "LaneRelease",
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": T.format(0)},
        "spec": {
            "lane": "web-lane",
            "target": {"kind": "Deployment", "name": "web", "namespace": "shop"},
            "from": {"podTemplateHash": "a", "images": ["web:1"]},
            "to": {"podTemplateHash": "b", "images": ["web:2"]},
            "provenance": {"agent": "claude-code", "model": "m", "change": "abc"},
        },
        "status": status,
    }


def measurement(second: int, verdict: str, canary: float) -> dict[str, Any]:
    return {
        "check": "errors",
        "time": T.format(second),
        "step": 0,
        "verdict": verdict,
        "canary": canary,
        "threshold": 0.05,
        "statistic": f"value={canary}",
    }


ROLLED_BACK = {
    "phase": "RolledBack",
    "currentStep": 0,
    "startedAt": T.format(1),
    "finishedAt": T.format(4),
    "rollbackReason": "critical check errors Fail: canary=0.3",
    "message": "rolled back: critical check errors Fail: canary=0.3",
    "measurements": [measurement(2, "Pass", 0.01), measurement(3, "Fail", 0.3)],
}


@dataclass
class FakeApi:
    releases: list[dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)
    lanes: list[dict[str, Any]] = field(default_factory=list)

    def list_releases(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.releases

    def list_events(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["involvedObject"]["kind"] == kind]

    def list_lanes(self) -> list[dict[str, Any]]:
        return self.lanes


def event(name: str, reason: str, message: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{name}.x", "namespace": "shop", "annotations": annotations},
        "involvedObject": {"kind": "LaneRelease", "name": name, "namespace": "shop"},
        "reason": reason,
        "message": message,
        "lastTimestamp": "2026-11-24T12:00:03Z",
    }


def test_a_release_whose_events_expired_keeps_outcome_reason_and_evidence() -> None:
    source = ClusterAuditSource(FakeApi([release(**ROLLED_BACK)]))
    [summary] = summarize(source.records(), AuditFilter()).releases
    assert summary.outcome.value == "RolledBack"
    assert summary.reason == "critical check errors Fail: canary=0.3"
    assert summary.provenance.agent == "claude-code" and summary.to_images == ["web:2"]
    [evidence] = summary.evidence
    assert (evidence.check, evidence.verdict, evidence.canary) == ("errors", "Fail", 0.3)
    assert source.warnings() == []


def test_events_give_exact_times_actors_and_are_not_doubled_by_the_status() -> None:
    abort = event(
        "web-abc",
        "RollingBack",
        "aborted by alice",
        {
            ANNOTATION_ID: "uid/3",
            ANNOTATION_TIME: "2026-11-24T12:00:03.250000Z",
            ANNOTATION_DECISION: "rolling_back",
            ANNOTATION_ACTOR: "alice",
        },
    )
    done = event("web-abc", "RolledBack", "aborted by alice", {})  # an Event without annotations
    status = {**ROLLED_BACK, "rollbackReason": "aborted by alice", "measurements": []}
    records = list(ClusterAuditSource(FakeApi([release(**status)], [abort, done])).records())
    decisions = [(r.decision, r.actor) for r in records]
    assert decisions == [
        (Decision.RELEASE_SEEN, "controller"),
        (Decision.ROLLED_BACK, "alice"),  # lastTimestamp 12:00:03 (second precision)
        (Decision.ROLLING_BACK, "alice"),  # annotated 12:00:03.25
    ]
    assert records[2].time == datetime(2026, 11, 24, 12, 0, 3, 250000, tzinfo=UTC)


def test_an_unparseable_release_is_skipped_and_named() -> None:
    broken = release("web-bad")
    broken["spec"]["target"] = {"name": "Not A Label", "namespace": "shop"}
    source = ClusterAuditSource(FakeApi([broken, release(**ROLLED_BACK)]))
    records = list(source.records())
    assert {r.release for r in records} == {"web-abc"}
    [warning] = source.warnings()
    assert "LaneRelease shop/web-bad skipped" in warning


def test_lane_suspension_and_resumption_come_from_the_lane_status() -> None:
    lane = lane_doc()
    lane["metadata"]["uid"] = "u1"
    lane["status"] = {
        "suspended": True,
        "suspendedAt": T.format(5),
        "suspendedReason": "autonomy budget spent: 3 of the last 6 releases rolled back",
        "resumedAt": T.format(1),
        "resumedBy": "carol",
    }
    result = summarize(ClusterAuditSource(FakeApi([], lanes=[lane])).records(), AuditFilter())
    assert [(e.decision, e.actor) for e in result.lane_events] == [
        (Decision.LANE_RESUMED, "carol"),
        (Decision.LANE_SUSPENDED, "controller"),
    ]


def test_since_skips_releases_that_finished_before_the_window() -> None:
    old = release("web-old", **ROLLED_BACK)
    recent = release("web-new", **{**ROLLED_BACK, "finishedAt": "2026-11-24T13:00:00Z"})
    source = ClusterAuditSource(FakeApi([old, recent]))
    since = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)
    assert {r.release for r in source.records(since=since)} == {"web-new"}
    assert {r.release for r in source.records()} == {"web-old", "web-new"}
