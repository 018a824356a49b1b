"""A release already progressing is stopped only by autonomy switched off; the gates it
gets evaluated (``in_flight``) must say that exactly as the full set would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controller.adapters.flags.lane_gates import LaneGates
from controller.core.models import ChangeLane, LaneRelease
from tests import lane_docs
from tests.unit.runtime.test_reconciler import Switch

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PHASES = ("Pending", "Progressing", "Promoted", "RolledBack", "Rejected")


def _lane(concurrent: int, per_day: int, failure_rate: float, suspended: bool) -> ChangeLane:
    doc = lane_docs.lane_doc("docs", "shop")
    doc["spec"]["gates"] = {
        "maxConcurrentReleases": concurrent,
        "maxReleasesPerDay": per_day,
        "autonomyBudget": {"maxChangeFailureRate": failure_rate, "window": 3},
    }
    if suspended:
        doc["status"] = {"suspended": True, "suspendedReason": "by a human"}
    return ChangeLane.model_validate(doc)


def _release(name: str, phase: str, minutes_ago: int, change: str = "c-1") -> LaneRelease:
    at = (NOW - timedelta(minutes=minutes_ago)).isoformat()
    status: dict[str, Any] = {"phase": phase, "startedAt": at}
    if phase in ("Promoted", "RolledBack"):
        status["finishedAt"] = at
    return LaneRelease.model_validate(
        {
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {
                "lane": "docs",
                "target": {"name": name, "namespace": "shop"},
                "from": {},
                "to": {"podTemplateHash": "abc"},
                "provenance": {"agent": "claude-code", "model": "m", "change": change},
            },
            "status": status,
        }
    )


@given(
    concurrent=st.integers(1, 3),
    per_day=st.integers(1, 4),
    failure_rate=st.sampled_from([0.0, 0.34, 1.0]),
    suspended=st.booleans(),
    switch_on=st.booleans(),
    others=st.lists(st.tuples(st.sampled_from(PHASES), st.integers(0, 3000)), max_size=8),
)
def test_in_flight_gates_stop_a_release_exactly_when_all_gates_would(
    concurrent: int,
    per_day: int,
    failure_rate: float,
    suspended: bool,
    switch_on: bool,
    others: list[tuple[str, int]],
) -> None:
    lane = _lane(concurrent, per_day, failure_rate, suspended)
    release = _release("web-1", "Progressing", 5)
    lane_releases = [_release(f"r-{i}", p, m) for i, (p, m) in enumerate(others)]
    gates = LaneGates(Switch(on=switch_on))
    full = gates.evaluate(lane, release, NOW, lane_releases)
    in_flight = gates.evaluate(lane, release, NOW, lane_releases, in_flight=True)
    assert in_flight.autonomy_off is full.autonomy_off
    assert {r.gate for r in in_flight.results} <= {"killSwitch", "laneSuspended", "flagSource"}
    assert [r for r in in_flight.results if not r.passed] == [
        r for r in full.results if not r.passed and r.gate in ("killSwitch", "laneSuspended")
    ]
    # The runtime passes the lane's whole view in flight, this release included (it is
    # not finished, so it changes nothing), and the same list again until it changes.
    view = [*lane_releases, release]
    fresh = LaneGates(Switch(on=switch_on))
    first = fresh.evaluate(lane, release, NOW, view, in_flight=True)
    again = fresh.evaluate(lane, release, NOW, view, in_flight=True)
    assert first.results == again.results == in_flight.results
    finished = [*view, _release("late", "RolledBack", 1)]  # a new view: outcomes anew
    assert (
        fresh.evaluate(lane, release, NOW, finished, in_flight=True).results
        == (
            LaneGates(Switch(on=switch_on)).evaluate(lane, release, NOW, finished, in_flight=True)
        ).results
    )
