"""A poison release never stalls: it is recorded and Rejected with what is wrong, an
Event says so, its reconcile is not retried hot, and the other lane ships meanwhile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from controller.adapters.kube.api import JsonDict, KubeApi
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


def _fast_lane(name: str) -> dict[str, Any]:
    steps = [{"weight": 50, "minDuration": "0s"}, {"weight": 100, "minDuration": "0s"}]
    return lane_doc(name, steps=steps, progressDeadline="30s")


def _adopted(env: Env, name: str) -> bool:
    return env.sim.deployment_ready(NS, f"{name}-primary") and (
        env.deployment(name)["spec"]["replicas"] == 0
    )


def _events(env: Env, reason: str) -> list[dict[str, Any]]:
    rtype = env.sim.store.rtype("events")
    events = [env.sim.store.to_obj(rtype, s) for s in env.sim.store.list("events", NS).items]
    return [e for e in events if e.get("reason") == reason]


def _progressing(rel: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in rel["status"]["conditions"] if c["type"] == "Progressing")


def _other_lane_ships(env: Env) -> None:
    env.sim.store.create("changelanes", _fast_lane("api-lane"))
    env.sim.store.create("deployments", deployment_doc("api", lane="api-lane", image="api:1"))
    wait(lambda: _adopted(env, "api"), timeout=20)
    env.set_image("api:2", name="api")
    name = f"api-{template_hash(env.deployment('api')['spec']['template'])}"
    assert (
        env.wait_phase(["Promoted", "RolledBack", "Rejected"], name=name)["status"]["phase"]
        == "Promoted"
    )


def test_deeply_nested_provenance_is_rejected_not_retried_forever(tmp_path: Path) -> None:
    """'{"":' * 1024 in changelane.dev/tests raised RecursionError on every reconcile."""
    with running(tmp_path, lane=_fast_lane("web-lane")) as env:
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: _adopted(env, "web"), timeout=20)
        poison = {**provenance(image="web:2"), "changelane.dev/tests": '{"":' * 1024}
        env.set_image("web:2", annotations=poison)
        name = f"web-{template_hash(env.deployment('web')['spec']['template'])}"
        _other_lane_ships(env)
        rel = env.wait_phase(["Rejected", "Promoted", "RolledBack"], name=name)
        assert rel["status"]["phase"] == "Rejected"
        message = _progressing(rel)["message"]
        assert "changelane.dev/tests" in message and "nested 1024 levels deep" in message
        wait(lambda: any(e["involvedObject"]["name"] == name for e in _events(env, "Rejected")))
        assert env.deployment("web")["spec"]["replicas"] == 0


class RefusingApi(KubeApi):
    """An API server that refuses release records carrying a given agent (422), as it would
    refuse a value its schema cannot hold."""

    def create_release(self, namespace: str, body: JsonDict) -> JsonDict:
        if (body["spec"].get("provenance") or {}).get("agent") == "poison-agent":
            exc = ApiException(status=422, reason="Unprocessable Entity")
            exc.body = '{"message": "LaneRelease.changelane.dev is invalid: spec.provenance"}'
            raise exc
        return super().create_release(namespace, body)


def test_a_release_record_the_api_refuses_is_recorded_without_its_values(
    tmp_path: Path,
) -> None:
    with running(tmp_path, lane=_fast_lane("web-lane"), api_factory=RefusingApi) as env:
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: _adopted(env, "web"), timeout=20)
        env.set_image("web:2", annotations=provenance(agent="poison-agent", image="web:2"))
        name = f"web-{template_hash(env.deployment('web')['spec']['template'])}"
        rel = env.wait_phase(["Rejected", "Promoted", "RolledBack"], name=name)
        assert rel["status"]["phase"] == "Rejected"
        message = _progressing(rel)["message"]
        assert "the API refused the release record (HTTP 422)" in message
        assert "spec.provenance" in message
        wait(lambda: len(_events(env, "ReleaseUnrecordable")) == 1)
        controller = env.controllers[0]
        assert controller.failures.failures(("Deployment", NS, "web")) == 0


def test_a_lane_that_gets_past_the_api_is_ready_false_with_an_event(tmp_path: Path) -> None:
    broken = _fast_lane("web-lane")
    broken["spec"]["analysis"]["checks"][0]["query"] = 'rate(x{app="{{ workload }}"}[5m'
    with running(tmp_path, lane=broken) as env:

        def ready() -> dict[str, Any]:
            lane = env.sim.store.get_obj("changelanes", None, "web-lane")
            conditions = (lane.get("status") or {}).get("conditions") or []
            return next((c for c in conditions if c["type"] == "Ready"), {})

        wait(lambda: ready().get("status") == "False", timeout=15)
        assert ready()["reason"] == "InvalidSpec"
        assert "spec.analysis.checks[0]" in ready()["message"]
        assert "does not parse as PromQL" in ready()["message"]
        rtype = env.sim.store.rtype("events")

        def invalid() -> list[dict[str, Any]]:
            items = env.sim.store.list("events", None).items
            events = [env.sim.store.to_obj(rtype, s) for s in items]
            return [e for e in events if e.get("reason") == "InvalidSpec"]

        # The Event follows the condition's write: wait for it, do not race it.
        wait(lambda: bool(invalid()), timeout=15)
        assert invalid()[0]["involvedObject"]["kind"] == "ChangeLane"
