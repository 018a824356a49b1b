"""The pure part: which destinations hear of a record, and what the message says."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.core.audit import Decision
from controller.core.models.notifications import NotificationsSpec, NotifyEvent
from controller.core.notify import compose, destinations_for, route
from tests.notify.records import record
from tests.unit.lane_fixtures import lane


def spec(*destinations: dict[str, object], include_defaults: bool = True) -> NotificationsSpec:
    return NotificationsSpec.model_validate(
        {"destinations": list(destinations), "includeDefaults": include_defaults}
    )


HOOK = {"name": "hook", "kind": "webhook", "secretKey": "hook-url"}
CHAT = {"name": "chat", "kind": "apprise", "secretKey": "slack"}


def test_message_names_release_lane_workload_agent_model_change_and_the_failing_check() -> None:
    d = spec(HOOK).destinations[0]
    n = compose(record(), d, NotifyEvent.ROLLED_BACK, "https://dash.example/")
    for fact in (
        "site-abc123",
        "lane: docs",
        "web/site",
        "claude-code",
        "claude-opus-4",
        "https://git.example/pr/7",
        "error-rate: Fail",
        "canary 0.15",
        "limit 0.05",
        "msprt p=8.8e-07",
        "https://dash.example/releases/web/site-abc123",
    ):
        assert fact in n.body, fact
    assert n.title == "[changelane] site-abc123 rolled back"
    assert n.data["evidence"][0]["threshold"] == 0.05
    assert n.data["dashboard"] == "https://dash.example/releases/web/site-abc123"
    assert n.cloudevent_type == "dev.changelane.release.rolledBack"


def test_promoted_is_opt_in() -> None:
    default = spec(HOOK).destinations
    opted = spec({**HOOK, "events": ["promoted"]}).destinations
    assert route(record(Decision.PROMOTED), default) == []
    assert [d.name for d in route(record(Decision.PROMOTED), opted)] == ["hook"]


def test_lane_destinations_come_first_and_may_opt_out_of_defaults() -> None:
    defaults = spec(CHAT, {**HOOK, "name": "shared"})
    lane = spec({**HOOK, "name": "shared", "events": ["promoted"]})
    merged = destinations_for(lane, defaults)
    assert next((d.name, d.events) for d in merged) == ("shared", [NotifyEvent.PROMOTED])
    assert [d.name for d in merged] == ["shared", "chat"]
    assert destinations_for(spec(HOOK, include_defaults=False), defaults)[0].name == "hook"
    assert len(destinations_for(spec(HOOK, include_defaults=False), defaults)) == 1
    assert [d.name for d in destinations_for(None, defaults)] == ["chat", "shared"]


def test_a_lane_may_not_spell_out_a_url() -> None:
    with pytest.raises(ValidationError, match=r"destinations\[0\]\.url.*secretKey"):
        lane(
            notifications={
                "destinations": [{"name": "hook", "kind": "webhook", "url": "https://x/token"}]
            }
        )


def test_a_destination_needs_exactly_one_url_source() -> None:
    with pytest.raises(ValidationError, match="exactly one of secretKey and url"):
        spec({"name": "hook", "kind": "webhook"})


@given(st.sampled_from(list(Decision)))
def test_only_announced_decisions_route(decision: Decision) -> None:
    every = spec({**HOOK, "events": [e.value for e in NotifyEvent]}).destinations
    announced = {
        Decision.ROLLING_BACK,
        Decision.REJECTED,
        Decision.PAUSED,
        Decision.LANE_SUSPENDED,
        Decision.PROMOTED,
        Decision.AUTONOMY_CHANGED,
    }
    assert bool(route(record(decision), every)) == (decision in announced)


def test_a_change_of_an_agents_level_is_announced_by_default() -> None:
    change = record(
        Decision.AUTONOMY_CHANGED,
        release=None,
        namespace=None,
        workload=None,
        evidence=[],
        reason="agent flaky-bot (model m): autonomous -> supervised: demoted: 2 of the last 3 "
        "releases rolled back (rule: 2 of 3)",
        message="finished=3, rolled_back=2, change_failure_upper=0.9",
    )
    (d,) = route(change, spec(HOOK).destinations)
    n = compose(change, d, NotifyEvent.AGENT_LEVEL_CHANGED, None)
    assert "autonomous -> supervised" in n.body and "lane: docs" in n.body
    assert n.cloudevent_type == "dev.changelane.release.agentLevelChanged"
