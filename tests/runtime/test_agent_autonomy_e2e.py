"""Earned autonomy end to end: two agents in one lane; the failing one is demoted alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.core.canary import template_hash
from tests.runtime.harness import NS, Env, deployment_doc, lane_doc, provenance, running, wait

FLAKY, STEADY = "flaky-agent", "claude-code"
MODEL = "claude-opus-4"


def _lane() -> dict[str, Any]:
    doc = lane_doc()
    doc["spec"]["agents"] = [{"id": STEADY}, {"id": FLAKY}]
    doc["spec"]["gates"] = {
        "maxConcurrentReleases": 2,
        "agentAutonomy": {
            "entryLevel": "autonomous",
            "graduate": {"minReleases": 5, "maxChangeFailureUpper": 0.2},
            "demote": {"rollbacks": 2, "ofLast": 3},
        },
    }
    return doc


def _ship(env: Env, workload: str, image: str, agent: str, change: str) -> str:
    env.set_image(image, name=workload, annotations=provenance(agent, change, image=image))
    return f"{workload}-{template_hash(env.deployment(workload)['spec']['template'])}"


def _phase(env: Env, name: str, phases: list[str]) -> str:
    return str(env.wait_phase(phases, name=name, timeout=40)["status"]["phase"])


def _levels(env: Env) -> dict[str, str]:
    lane = env.sim.store.get_obj("changelanes", None, "web-lane")
    return {a["agent"]: a["level"] for a in (lane.get("status") or {}).get("agents", [])}


def test_a_failing_agent_is_demoted_while_the_other_keeps_promoting(tmp_path: Path) -> None:
    with running(tmp_path, lane=_lane()) as env:
        for name in ("web", "api"):
            env.sim.store.create("deployments", deployment_doc(name=name))
            wait(lambda name=name: env.sim.deployment_ready(NS, f"{name}-primary"), timeout=20)

        for i in (2, 3):
            bad = _ship(env, "web", f"web:{i}-bad", FLAKY, f"fa{i:05x}")
            good = _ship(env, "api", f"api:{i}", STEADY, f"5e{i:05x}")
            assert _phase(env, bad, ["RolledBack", "Promoted"]) == "RolledBack"
            assert _phase(env, good, ["RolledBack", "Promoted"]) == "Promoted"

        # Two rollbacks of the last three: the flaky agent alone drops to supervised.
        wait(lambda: _levels(env) == {FLAKY: "supervised", STEADY: "autonomous"}, timeout=20)
        changes = [r for r in env.sink.records if r.decision.value == "autonomy_changed"]
        assert len(changes) == 1
        assert FLAKY in changes[0].reason and "autonomous -> supervised" in changes[0].reason
        assert "rolled_back=2" in changes[0].message
        events = (
            env.sim.store.list("events", "default").items + env.sim.store.list("events", None).items
        )
        assert any("AgentDemoted" in str(e) for e in events)

        # Its next good release ramps but waits for a human; the other's promotes alone.
        fixed = _ship(env, "web", "web:4", FLAKY, "fa00004")
        other = _ship(env, "api", "api:4", STEADY, "5e00004")
        assert _phase(env, other, ["Promoted", "RolledBack", "Paused"]) == "Promoted"
        paused = env.wait_phase(["Paused", "Promoted", "RolledBack"], name=fixed, timeout=40)
        assert paused["status"]["phase"] == "Paused"
        assert paused["status"]["weight"] == 100
        assert paused["status"]["autonomyLevel"] == "supervised"
        assert "changelane promote" in paused["status"]["message"]
