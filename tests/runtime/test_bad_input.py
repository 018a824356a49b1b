"""Bad input ends in a recorded, clear condition, and every other lane keeps being served.

Each test runs two lanes: ``web-lane`` gets the bad input, ``api-lane`` ships a good
release at the same time and must promote it as if nothing happened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.core.canary import template_hash
from tests.runtime.harness import (
    NS,
    Env,
    deployment_doc,
    lane_doc,
    provenance,
    running,
    wait,
)

pytestmark = pytest.mark.slow


def _fast_lane(name: str, min_duration: str = "0s") -> dict[str, Any]:
    return lane_doc(
        name,
        steps=[
            {"weight": 50, "minDuration": min_duration},
            {"weight": 100, "minDuration": "0s"},
        ],
        progressDeadline="30s",
    )


def _image(env: Env, name: str) -> str:
    image: str = env.deployment(name)["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def _adopted(env: Env, name: str) -> bool:
    return env.sim.deployment_ready(NS, f"{name}-primary") and (
        env.deployment(name)["spec"]["replicas"] == 0
    )


def _release_name(env: Env, workload: str) -> str:
    return f"{workload}-{template_hash(env.deployment(workload)['spec']['template'])}"


def _start_other_lane(env: Env) -> None:
    """api-lane with its own workload, adopted before the bad input arrives."""
    env.sim.store.create("changelanes", _fast_lane("api-lane"))
    env.sim.store.create("deployments", deployment_doc("api", lane="api-lane", image="api:1"))
    wait(lambda: _adopted(env, "api"), timeout=20)


def _other_lane_ships(env: Env) -> None:
    env.set_image("api:2", name="api")
    name = _release_name(env, "api")
    done = env.wait_phase(["Promoted", "RolledBack", "Rejected"], name=name, timeout=40)
    assert done["status"]["phase"] == "Promoted", done["status"]
    assert _image(env, "api-primary") == "api:2"


def _events(env: Env, reason: str) -> list[dict[str, Any]]:
    items = env.sim.store.list("events", NS).items
    rtype = env.sim.store.rtype("events")
    events = [env.sim.store.to_obj(rtype, s) for s in items]
    return [e for e in events if e.get("reason") == reason]


def test_unparsable_provenance_is_rejected_naming_the_annotation(tmp_path: Path) -> None:
    with running(tmp_path, lane=_fast_lane("web-lane")) as env:
        env.sim.store.create("deployments", deployment_doc())
        _start_other_lane(env)
        wait(lambda: _adopted(env, "web"), timeout=20)
        bad = {**provenance(), "changelane.dev/tests": "{broken"}
        env.set_image("web:2", annotations=bad)
        name = _release_name(env, "web")
        _other_lane_ships(env)
        rel = env.wait_phase(["Rejected", "Promoted", "RolledBack"], name=name)
        status = rel["status"]
        assert status["phase"] == "Rejected"
        progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
        assert progressing["reason"] == "Rejected"
        assert "changelane.dev/tests" in progressing["message"]
        assert "not valid JSON" in progressing["message"]
        assert status["maxWeightReached"] == 0
        assert env.deployment("web")["spec"]["replicas"] == 0
        assert _image(env, "web-primary") == "web:1"
        wait(lambda: any(name in e["involvedObject"]["name"] for e in _events(env, "Rejected")))


def test_lane_overlapping_an_adopted_workload_is_refused_with_a_condition(
    tmp_path: Path,
) -> None:
    with running(tmp_path, lane=_fast_lane("web-lane")) as env:
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: _adopted(env, "web"), timeout=20)
        # greedy-lane selects every workload of the namespace with a lane label,
        # including web (already in web-lane) and its own api workload.
        greedy = _fast_lane("greedy")
        greedy["spec"]["selector"] = {
            "namespaces": [NS],
            "matchExpressions": [
                {"key": "changelane.dev/lane", "operator": "In", "values": ["web-lane", "greedy"]}
            ],
        }
        env.sim.store.create("changelanes", greedy)

        def conflict() -> dict[str, Any]:
            lane = env.sim.store.get_obj("changelanes", None, "greedy")
            conditions = (lane.get("status") or {}).get("conditions") or []
            return next(c for c in conditions if c["type"] == "WorkloadConflict")

        wait(lambda: conflict()["status"] == "True", timeout=20)
        assert "shop/web is already in lane web-lane" in conflict()["message"]
        wait(lambda: bool(_events(env, "LaneConflict")), timeout=10)
        warning = _events(env, "LaneConflict")[0]
        assert warning["type"] == "Warning" and warning["involvedObject"]["name"] == "web"

        # web stays in web-lane and ships there; greedy adopts and ships its own workload.
        env.sim.store.create("deployments", deployment_doc("api", lane="greedy", image="api:1"))
        wait(lambda: _adopted(env, "api"), timeout=20)
        env.set_image("web:2")
        web = env.wait_phase(["Promoted", "RolledBack", "Rejected"], name=_release_name(env, "web"))
        assert web["status"]["phase"] == "Promoted" and web["spec"]["lane"] == "web-lane"
        env.set_image("api:2", name="api")
        api = env.wait_phase(["Promoted", "RolledBack", "Rejected"], name=_release_name(env, "api"))
        assert api["status"]["phase"] == "Promoted" and api["spec"]["lane"] == "greedy"
        assert conflict()["status"] == "True"  # web is still not greedy's

        # Narrow greedy's selector: the conflict clears.
        lane = env.sim.store.get_obj("changelanes", None, "greedy")
        lane["spec"]["selector"]["matchExpressions"][0]["values"] = ["greedy"]
        env.sim.store.update("changelanes", lane, name="greedy")
        wait(lambda: conflict()["status"] == "False", timeout=20)


def test_release_edited_into_an_impossible_state_rolls_back_with_invalid_state(
    tmp_path: Path,
) -> None:
    # A long first step keeps the release in flight while we edit it.
    with running(tmp_path, lane=_fast_lane("web-lane", min_duration="1h")) as env:
        env.sim.store.create("deployments", deployment_doc())
        _start_other_lane(env)
        wait(lambda: _adopted(env, "web"), timeout=20)
        env.set_image("web:2")
        name = _release_name(env, "web")
        env.wait_phase(["Progressing"], name=name)
        wait(lambda: env.deployment("web")["spec"]["replicas"] == 1)

        rel = env.sim.store.get_obj("lanereleases", NS, name)
        rel["status"]["currentStep"] = 9  # the lane has two steps
        env.sim.store.update("lanereleases", rel, namespace=NS, name=name, subresource="status")

        done = env.wait_phase(["RolledBack", "Promoted"], name=name)
        status = done["status"]
        assert status["phase"] == "RolledBack"
        invalid = next(c for c in status["conditions"] if c["type"] == "InvalidState")
        assert invalid["status"] == "True" and "status.currentStep" in invalid["message"]
        assert "status.currentStep" in status["rollbackReason"]
        assert env.deployment("web")["spec"]["replicas"] == 0
        assert _image(env, "web-primary") == "web:1"
        _other_lane_ships(env)
