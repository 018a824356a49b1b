"""Which finished releases retention lets go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controller.core.models import LaneRelease
from controller.core.retention import RetentionPolicy, expired

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def rel(
    name: str,
    workload: str = "web",
    phase: str = "Promoted",
    age_h: float = 1.0,
    outbox: bool = False,
) -> LaneRelease:
    status: dict[str, object] = {"phase": phase}
    if phase in ("Promoted", "RolledBack", "Rejected"):
        status["finishedAt"] = (NOW - timedelta(hours=age_h)).isoformat()
    if outbox:
        status["outbox"] = [
            {"time": NOW.isoformat(), "lane": "l", "decision": "promoted", "reason": "x"}
        ]
    return LaneRelease.model_validate(
        {
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {
                "lane": "l",
                "target": {"name": workload, "namespace": "shop"},
                "from": {"podTemplateHash": "a"},
                "to": {"podTemplateHash": name},
            },
            "status": status,
        }
    )


def names(releases: list[LaneRelease]) -> list[str]:
    return [r.name for r in releases]


def test_keep_last_per_workload_oldest_go_first() -> None:
    rels = [rel(f"w{i}", age_h=i) for i in range(5)] + [rel("api0", workload="api", age_h=9)]
    assert names(expired(rels, RetentionPolicy(keep_last=2), NOW)) == ["w4", "w3", "w2"]


def test_ttl_never_takes_the_newest_in_flight_or_unflushed() -> None:
    rels = [
        rel("newest", age_h=100),
        rel("old", age_h=200),
        rel("unflushed", age_h=300, outbox=True),
        rel("running", phase="Progressing"),
    ]
    policy = RetentionPolicy(keep_last=None, ttl=timedelta(hours=24))
    assert names(expired(rels, policy, NOW)) == ["old"]


@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 1000)), max_size=30),
    st.integers(1, 5),
)
def test_every_workload_keeps_its_newest_and_at_least_keep_last(
    items: list[tuple[str, float]], keep: int
) -> None:
    rels = [rel(f"r{i}", workload=w, age_h=age) for i, (w, age) in enumerate(items)]
    gone = {r.name for r in expired(rels, RetentionPolicy(keep_last=keep), NOW)}
    for workload in {w for w, _ in items}:
        mine = [r for r in rels if r.spec.target.name == workload]
        kept = [r for r in mine if r.name not in gone]
        assert len(kept) == min(len(mine), keep)
        newest = max(mine, key=lambda r: r.status.finished_at or NOW)
        assert newest.name not in gone


def test_a_sweep_reads_releases_without_their_history_and_skips_the_unreadable() -> None:
    from controller.runtime.retention import ReleaseRetention

    now = datetime(2026, 1, 2, tzinfo=UTC)
    history = [{"check": "errors", "time": "2026-01-01T00:00:00Z", "step": 0, "verdict": "Pass"}]

    def raw(name: str, phase: str, finished: str | None, **extra: Any) -> dict[str, Any]:
        status: dict[str, Any] = {"phase": phase, "measurements": history * 50, **extra}
        if finished:
            status["finishedAt"] = finished
        return {
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"lane": "docs", "target": {"name": name[:3], "namespace": "shop"},
                     "from": {}, "to": {}},
            "status": status,
        }  # fmt: skip

    class Api:
        def __init__(self) -> None:
            self.deleted: list[str] = []

        def delete_release(self, namespace: str, name: str) -> None:
            self.deleted.append(f"{namespace}/{name}")

    releases = [
        raw("old-1", "Promoted", "2026-01-01T00:00:00Z"),
        raw("old-2", "Promoted", "2026-01-01T01:00:00Z"),  # the workload's last: kept
        raw("new-1", "Progressing", None),
        # unreadable (the CRD lets it through): never deleted, however old
        raw("old-0", "Promoted", "2025-12-31T00:00:00Z", stepStartedAt="yesterday"),
    ]
    api = Api()
    policy = RetentionPolicy(keep_last=None, ttl=timedelta(hours=1))
    sweep = ReleaseRetention(api, lambda: releases, policy, clock=lambda: now)  # type: ignore[arg-type]
    assert sweep.sweep() == ["shop/old-1"] and api.deleted == ["shop/old-1"]
