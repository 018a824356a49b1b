"""No downtime: ready pods of the workload (original, primary and canary together) never
drop below the lane's minimum, through adoption, a ramp, a promotion and a rollback; and in
replica mode a step's weight is the canary's share of the pods."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from controller.core.replica_plan import split_for
from controller.sim.store import StoreEvent
from tests.runtime.harness import NS, deployment_doc, lane_doc, running, wait

pytestmark = pytest.mark.slow
TOTAL = 4


class ReadyPods:
    """Ready pods of ``web`` + ``web-primary`` after every committed change, and every
    (primary, canary) replica split the controller asked for."""

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}
        self.ready: list[int] = []
        self.splits: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def __call__(self, event: StoreEvent) -> None:
        if event.type_key != "deployments.apps" or event.type == "DELETED":
            return
        obj = event.obj.obj()
        if obj["metadata"].get("namespace") != NS:
            return
        with self._lock:
            self.latest[obj["metadata"]["name"]] = obj
            web, primary = self.latest.get("web"), self.latest.get("web-primary")
            self.ready.append(sum(_ready(d) for d in (web, primary)))
            if web is not None and primary is not None:
                split = (_replicas(primary), _replicas(web))
                if not self.splits or self.splits[-1] != split:
                    self.splits.append(split)


def _ready(dep: dict[str, Any] | None) -> int:
    return int(((dep or {}).get("status") or {}).get("readyReplicas") or 0)


def _replicas(dep: dict[str, Any]) -> int:
    return int(dep["spec"].get("replicas") or 0)


def test_ready_pods_never_drop_below_the_minimum(tmp_path: Path) -> None:
    steps = [
        {"weight": 25, "minDuration": "1s"},
        {"weight": 50, "minDuration": "1s"},
        {"weight": 100, "minDuration": "1s"},
    ]
    lane = lane_doc(steps=steps, progressDeadline="30s")
    with running(tmp_path, lane=lane) as env:
        original = deployment_doc()
        original["spec"]["replicas"] = TOTAL
        probe = ReadyPods()
        env.controllers[0].stop()  # the workload runs before any lane manages it
        env.controllers.clear()
        env.sim.store.create("deployments", original)
        wait(lambda: env.sim.deployment_ready(NS, "web"), timeout=20)
        probe.latest["web"] = env.deployment("web")
        env.sim.store.add_listener(probe)
        from tests.runtime.harness import new_controller

        controller = new_controller(env.kubeconfig, env.sim, env.sink)
        env.controllers.append(controller)
        controller.start()

        # adoption: the original hands over only once the primary is ready
        wait(lambda: env.deployment("web")["spec"]["replicas"] == 0, timeout=30)
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"), timeout=20)
        # a good release: ramp 25 -> 50 -> 100, then promotion
        env.set_image("web:2")
        promoted = env.wait_phase(["Promoted", "RolledBack", "Rejected"], timeout=60)
        assert promoted["status"]["phase"] == "Promoted", promoted["status"]
        wait(lambda: env.deployment("web")["spec"]["replicas"] == 0, timeout=20)
        # a bad release: ramp, then rollback
        env.set_image("web:3-bad")
        name = f"web-{_hash(env)}"
        rolled = env.wait_phase(["RolledBack", "Promoted"], name=name, timeout=60)
        assert rolled["status"]["phase"] == "RolledBack"
        wait(lambda: env.deployment("web")["spec"]["replicas"] == 0, timeout=20)
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"), timeout=20)
        # both copies' pods say which track they are, as {{ track }} renders it
        assert _pod_labels(env, "web-primary")["track"] == "baseline"
        assert _pod_labels(env, "web")["track"] == "canary"
        shares = [r.message for r in env.sink.records if "canary weight set" in r.reason]
        assert shares, "no step was recorded"

    assert len(probe.ready) > 50, "the probe saw too few changes to prove anything"
    assert min(probe.ready) >= TOTAL, f"ready pods dropped to {min(probe.ready)} of {TOTAL}"
    # weight = share: each step's split was asked for, and the canary had everything at 100
    for weight in (25, 50, 100):
        wanted = split_for(TOTAL, weight)
        assert (wanted.primary, wanted.canary) in probe.splits, (weight, probe.splits)


def _hash(env: Any) -> str:
    from controller.core.canary import template_hash

    return template_hash(env.deployment("web")["spec"]["template"])


def _pod_labels(env: Any, name: str) -> dict[str, str]:
    labels: dict[str, str] = env.deployment(name)["spec"]["template"]["metadata"]["labels"]
    return labels
