"""The pages as pure functions: what they show, and that every value is escaped."""

from __future__ import annotations

from datetime import UTC, datetime

from controller.core.models import LaneRelease
from controller.dashboard.pages import in_flight_page, release_page
from tests.unit.lane_fixtures import lane

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _release(message: str = "step 2/3: canary at 50%") -> LaneRelease:
    return LaneRelease.model_validate(
        {
            "metadata": {"name": "docs-abc", "namespace": "docs"},
            "spec": {
                "lane": "docs-site",
                "target": {"name": "docs", "namespace": "docs"},
                "from": {"podTemplateHash": "a"},
                "to": {"podTemplateHash": "abc"},
                "provenance": {"agent": "claude-code", "change": "https://git.example/pr/1"},
            },
            "status": {
                "phase": "Progressing",
                "currentStep": 1,
                "step": "2/3",
                "weight": 50,
                "message": message,
                "checks": [{"name": "error-rate", "lastVerdict": "Inconclusive", "lastStep": 1}],
                "measurements": [
                    {
                        "check": "error-rate",
                        "time": NOW.isoformat(),
                        "step": 1,
                        "verdict": "Inconclusive",
                        "statistic": "msprt p=0.4",
                        "query": 'sum(rate(x{code=~"5.."}[1m]))',
                    }
                ],
            },
        }
    )


def test_in_flight_shows_step_weight_and_each_checks_latest_verdict() -> None:
    html = in_flight_page([_release()], [lane()]).html
    assert '<a href="/releases/docs/docs-abc">docs-abc</a>' in html
    assert "<td>2/3</td><td>50%</td>" in html
    assert 'error-rate: <span class="Inconclusive">Inconclusive</span> msprt p=0.4' in html


def test_values_are_escaped_and_promql_stays_in_the_detail_view() -> None:
    page = release_page(_release(message="<script>alert(1)</script>"), lane(), []).html
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<details><summary>PromQL</summary><pre>sum(rate(x{code=~&quot;5..&quot;}" in page
    assert '<a href="https://git.example/pr/1">https://git.example/pr/1</a>' in page


def test_lanes_page_shows_each_agents_level_and_track_record() -> None:
    from controller.core.models import AgentStanding, AutonomyLevel, ChangeLaneStatus
    from controller.dashboard.pages import lanes_page

    docs = lane().model_copy(
        update={
            "status": ChangeLaneStatus(
                agents=[
                    AgentStanding(
                        agent="flaky-bot",
                        model="m<1>",
                        level=AutonomyLevel.SUPERVISED,
                        reason="demoted: 2 of the last 3 releases rolled back",
                    )
                ]
            )
        }
    )
    page = lanes_page([docs], [_release()])
    body = page.html
    assert "flaky-bot" in body and "supervised" in body and "demoted: 2 of the last 3" in body
    assert "m&lt;1&gt;" in body  # escaped
