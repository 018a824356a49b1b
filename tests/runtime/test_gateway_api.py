"""Gateway API traffic: the HTTPRoute's backend weights follow the canary steps, and go
back to primary 100 / canary 0 after a promotion and on a rollback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.core.canary import template_hash
from tests.runtime.harness import NS, Env, deployment_doc, lane_doc, running, wait

pytestmark = pytest.mark.slow

LANE = lane_doc(
    steps=[
        {"weight": 20, "minDuration": "0s"},
        {"weight": 60, "minDuration": "0s"},
        {"weight": 100, "minDuration": "0s"},
    ],
    traffic={"mode": "gatewayAPI", "httpRoute": "web-route"},
)
ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "web-route", "namespace": NS},
    "spec": {
        "parentRefs": [{"name": "shop-gateway"}],
        "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}],
    },
}


def _weights(obj: dict[str, Any]) -> tuple[int, int]:
    refs = {r["name"]: r.get("weight", 1) for r in obj["spec"]["rules"][0]["backendRefs"]}
    return refs.get("web-primary", -1), refs.get("web-canary", -1)


def _ship(env: Env, image: str) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    watcher = env.sim.store.watch("httproutes", NS, resource_version=_rv(env))
    env.set_image(image)
    name = f"web-{template_hash(env.deployment('web')['spec']['template'])}"
    rel = env.wait_phase(["Promoted", "RolledBack", "Rejected"], name=name)
    wait(lambda: _weights(env.sim.store.get_obj("httproutes", NS, "web-route")) == (100, 0))
    seen: list[tuple[int, int]] = []
    while lines := watcher.take(0.05):
        for line in lines:
            weights = _weights(json.loads(line)["object"])
            if not seen or seen[-1] != weights:
                seen.append(weights)
    env.sim.store.stop_watch(watcher)
    return rel, seen


def _rv(env: Env) -> str:
    return str(env.sim.store.get_obj("httproutes", NS, "web-route")["metadata"]["resourceVersion"])


def test_route_weights_follow_the_steps_and_return_to_the_primary(tmp_path: Path) -> None:
    with running(tmp_path, lane=LANE) as env:
        env.sim.store.create("httproutes", ROUTE)
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"), timeout=20)
        wait(lambda: _weights(env.sim.store.get_obj("httproutes", NS, "web-route")) == (100, 0))

        good, seen = _ship(env, "web:2")
        assert good["status"]["phase"] == "Promoted"
        assert seen == [(80, 20), (40, 60), (0, 100), (100, 0)]
        route = env.sim.store.get_obj("httproutes", NS, "web-route")
        assert {r["port"] for r in route["spec"]["rules"][0]["backendRefs"]} == {8080}
        assert route["spec"]["parentRefs"] == [{"name": "shop-gateway"}]

        bad, seen = _ship(env, "web:3-bad")
        assert bad["status"]["phase"] == "RolledBack"
        assert seen == [(80, 20), (100, 0)]
        primary = env.deployment("web-primary")
        assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
