"""Flag-ramped exposure through the real controller against the simulated cluster: the
flag's weights follow the steps, go off before any replica on rollback, a human edit
pauses the release instead of being overwritten, and flag-only lanes need no canary."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from controller.core.canary import template_hash
from controller.core.flags import ramp_weight
from controller.sim.store import StoreEvent
from tests.runtime.harness import NS, Env, deployment_doc, lane_doc, provenance, running, wait

FLAG = "new-search"
STEPS = [
    {"weight": 20, "minDuration": "1s"},
    {"weight": 50, "minDuration": "1s"},
    {"weight": 100, "minDuration": "1s"},
]


def definitions() -> dict[str, Any]:
    return {
        "flags": {
            FLAG: {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
            }
        }
    }


def flag_lane(target: str = "configMap", **strategy: Any) -> dict[str, Any]:
    return lane_doc(steps=STEPS, flagRamp={"target": target, "name": "web-flags"}, **strategy)


def create_flag_store(env: Env, target: str = "configMap") -> None:
    if target == "configMap":
        env.sim.store.create(
            "configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "web-flags", "namespace": NS},
                "data": {"flags.flagd.json": json.dumps(definitions())},
            },
        )
    else:
        env.sim.store.create(
            "featureflags",
            {
                "apiVersion": "core.openfeature.dev/v1beta1",
                "kind": "FeatureFlag",
                "metadata": {"name": "web-flags", "namespace": NS},
                "spec": {"flagSpec": definitions()},
            },
        )


def flag_definitions(env: Env, target: str = "configMap") -> dict[str, Any]:
    if target == "configMap":
        cm = env.sim.store.get_obj("configmaps", NS, "web-flags")
        loaded: dict[str, Any] = json.loads(cm["data"]["flags.flagd.json"])
        return loaded
    ff = env.sim.store.get_obj("featureflags", NS, "web-flags")
    spec: dict[str, Any] = ff["spec"]["flagSpec"]
    return spec


class Timeline:
    """Every committed change to the flag's ConfigMap and the canary's replicas, in the
    order the API server applied them."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Any]] = []
        self.flag_definitions: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, event: StoreEvent) -> None:
        if event.type == "DELETED":
            return
        obj = event.obj.obj()
        meta = obj.get("metadata") or {}
        if meta.get("namespace") != NS:
            return
        with self._lock:
            if event.type_key == "configmaps" and meta.get("name") == "web-flags":
                defs = json.loads(obj["data"]["flags.flagd.json"])
                weight = ramp_weight(defs, FLAG, "on")
                if weight is not None and (not self.weights() or self.weights()[-1] != weight):
                    self.entries.append(("flag", weight))
                    self.flag_definitions.append(defs)
            elif event.type_key == "deployments.apps" and meta.get("name") == "web":
                replicas = (obj.get("spec") or {}).get("replicas")
                last = [v for k, v in self.entries if k == "replicas"]
                if not last or last[-1] != replicas:
                    self.entries.append(("replicas", replicas))

    def weights(self) -> list[int]:
        return [v for k, v in self.entries if k == "flag"]


def flagged_release(env: Env, image: str) -> str:
    annotations = {**provenance(image=image), "changelane.dev/flag": FLAG}
    env.set_image(image, annotations=annotations)
    return f"web-{template_hash(env.deployment('web')['spec']['template'])}"


def users_on(defs: dict[str, Any], users: list[str]) -> set[str]:
    core = FlagdCore()
    core.set_flags(defs)
    return {
        u
        for u in users
        if core.resolve_boolean_value(FLAG, False, EvaluationContext(targeting_key=u)).value
    }


def test_flag_weights_follow_the_steps_and_nobody_is_moved_back(tmp_path: Path) -> None:
    timeline = Timeline()
    with running(tmp_path, lane=flag_lane(), flags=True) as env:
        env.sim.store.add_listener(timeline)
        create_flag_store(env)
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"))
        name = flagged_release(env, "web:2")
        rel = env.wait_phase(["Promoted", "RolledBack", "Rejected", "Paused"], name=name)
        assert rel["status"]["phase"] == "Promoted", rel["status"]
        assert rel["status"]["flagWeights"] == [20, 50, 100]
        # What was written to the ConfigMap, in order: exactly the steps.
        assert timeline.weights() == [20, 50, 100]
        assert ramp_weight(flag_definitions(env), FLAG, "on") == 100
        # flagd's own evaluator over the definitions as written: each raise only adds users.
        users = [f"user-{i}" for i in range(1500)]
        shares = [users_on(defs, users) for defs in timeline.flag_definitions]
        for before, after in itertools.pairwise(shares):
            assert before <= after
        assert 0.1 < len(shares[0]) / len(users) < 0.3
        assert len(shares[-1]) == len(users)


def test_rollback_switches_the_flag_off_before_any_replica_changes(tmp_path: Path) -> None:
    timeline = Timeline()
    with running(tmp_path, lane=flag_lane(), flags=True) as env:
        env.sim.store.add_listener(timeline)
        create_flag_store(env)
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"))
        name = flagged_release(env, "web:2-bad")
        rel = env.wait_phase(["RolledBack", "Promoted"], name=name)
        assert rel["status"]["phase"] == "RolledBack"
        wait(lambda: env.deployment("web")["spec"]["replicas"] == 0)
        entries = timeline.entries
        # The ramp up: flag at 20% with one canary replica; then the way down.
        assert ("flag", 20) in entries and ("replicas", 1) in entries
        up = max(i for i, e in enumerate(entries) if e == ("replicas", 1))
        # The rollback, as the API server applied it: flag off first, then the replicas.
        assert entries[up + 1 :] == [("flag", 0), ("replicas", 0)], entries
        primary = env.deployment("web-primary")
        assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"
        assert rel["status"]["flagWeights"] == [20]


def test_a_human_edit_of_the_feature_flag_pauses_the_release_and_is_left_alone(
    tmp_path: Path,
) -> None:
    steps = [{"weight": 20, "minDuration": "30s"}, {"weight": 100, "minDuration": "1s"}]
    lane = lane_doc(steps=steps, flagRamp={"target": "featureFlag", "name": "web-flags"})
    with running(tmp_path, lane=lane, flags=True) as env:
        create_flag_store(env, "featureFlag")
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"))
        name = flagged_release(env, "web:2")
        wait(lambda: (env.release(name) or {}).get("status", {}).get("flagWeights") == [20])

        # Someone raises the flag by hand mid-ramp.
        ff = env.sim.store.get_obj("featureflags", NS, "web-flags")
        ff["spec"]["flagSpec"]["flags"][FLAG]["targeting"] = {
            "fractional": [["on", 60], ["off", 40]]
        }
        env.sim.store.update("featureflags", ff, namespace=NS, name="web-flags")

        rel = env.wait_phase(["Paused"], name=name, timeout=20)
        condition = next(c for c in rel["status"]["conditions"] if c["type"] == "Progressing")
        assert condition["reason"] == "FlagEdited"
        assert "edited by someone else" in condition["message"]
        assert f"FeatureFlag {NS}/web-flags" in condition["message"]
        time.sleep(2.5)  # several reconciles later: the human's edit still stands
        assert ramp_weight(flag_definitions(env, "featureFlag"), FLAG, "on") == 60
        assert env.release(name)["status"]["phase"] == "Paused"  # type: ignore[index]
        paused = [r for r in env.sink.records if r.decision.value == "paused"]
        assert paused and "edited by someone else" in paused[-1].reason


def test_flag_only_lane_ramps_the_flag_and_never_scales_a_canary(tmp_path: Path) -> None:
    timeline = Timeline()
    with running(tmp_path, lane=flag_lane(flagOnly=True), flags=True) as env:
        env.sim.store.add_listener(timeline)
        create_flag_store(env)
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web"))
        name = flagged_release(env, "web:2")
        rel = env.wait_phase(["Promoted", "RolledBack", "Rejected", "Paused"], name=name)
        assert rel["status"]["phase"] == "Promoted", rel["status"]
        assert rel["status"]["flagWeights"] == [20, 50, 100]
        assert rel["spec"]["from"]["images"] == ["web:1"]
        # The workload rolled out natively; no stable copy, no canary scaling.
        assert env.sim.store.list("deployments", NS).items.__len__() == 1
        assert [v for k, v in timeline.entries if k == "replicas"] == [2]
        assert env.deployment("web")["spec"]["template"]["spec"]["containers"][0]["image"] == (
            "web:2"
        )
