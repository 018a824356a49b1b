"""Shadow mode: the controller watches, analyses and records what it would have done, and
never acts on the cluster (no adoption, no scaling, no flag writes)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from controller.core.canary import template_hash
from controller.sim.store import StoreEvent
from tests.runtime.harness import NS, Env, deployment_doc, lane_doc, provenance, running, wait

#: Writers other than the simulated Kubernetes controllers (which own status, ReplicaSets,
#: pods and their own events) and the test itself.
WATCHED = ("deployments.apps", "configmaps", "featureflags.core.openfeature.dev")


class Writes:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, event: StoreEvent) -> None:
        if event.type_key not in WATCHED:
            return
        obj = event.obj.obj()
        if obj["metadata"].get("namespace") != NS:
            return
        # What a writer chose: spec, data, labels and annotations (not the status).
        chosen = {
            "spec": obj.get("spec"),
            "data": obj.get("data"),
            "labels": obj["metadata"].get("labels"),
            # (the Deployment controller's own revision annotation aside)
            "annotations": {
                k: v
                for k, v in (obj["metadata"].get("annotations") or {}).items()
                if not k.startswith("deployment.kubernetes.io/")
            },
        }
        with self._lock:
            key = (event.type_key, obj["metadata"]["name"])
            same = [s for s in self.seen if (s[0], s[1]) == key]
            text = json.dumps(chosen, sort_keys=True)
            if not same or same[-1][3] != text:
                self.seen.append((*key, event.type, text))


def shadow_lane() -> dict[str, Any]:
    steps = [{"weight": 50, "minDuration": "1s"}, {"weight": 100, "minDuration": "1s"}]
    lane = lane_doc(steps=steps, flagRamp={"target": "configMap", "name": "web-flags"})
    lane["spec"]["gates"] = {"mode": "shadow"}
    return lane


def ship(env: Env, image: str) -> str:
    env.set_image(
        image, annotations={**provenance(image=image), "changelane.dev/flag": "new-search"}
    )
    return f"web-{template_hash(env.deployment('web')['spec']['template'])}"


def test_shadow_mode_records_what_it_would_have_done_and_mutates_nothing(
    tmp_path: Path,
) -> None:
    writes = Writes()
    with running(tmp_path, lane=shadow_lane(), flags=True) as env:
        env.sim.store.add_listener(writes)
        flags = {
            "flags": {
                "new-search": {
                    "state": "ENABLED",
                    "variants": {"on": True, "off": False},
                    "defaultVariant": "off",
                }
            }
        }
        env.sim.store.create(
            "configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "web-flags", "namespace": NS},
                "data": {"flags.flagd.json": json.dumps(flags)},
            },
        )
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web"))

        good = ship(env, "web:2")
        rel = env.wait_phase(["Promoted", "RolledBack", "Rejected"], name=good)
        assert rel["status"]["phase"] == "Promoted"
        assert rel["status"]["message"].startswith("shadow: would have finished promoting")
        shadow = next(c for c in rel["status"]["conditions"] if c["type"] == "Shadow")
        assert shadow["status"] == "True"
        assert rel["status"].get("flagWeights", []) == []  # no flag was ever written

        bad = ship(env, "web:3-bad")
        rel = env.wait_phase(["RolledBack", "Promoted"], name=bad)
        assert rel["status"]["phase"] == "RolledBack"
        assert "would have" in rel["status"]["message"]
        assert "errors" in rel["status"]["rollbackReason"]

        wait(lambda: any(r.release == bad and r.phase_to == "RolledBack" for r in env.sink.records))
        records = [r for r in env.sink.records if r.release in (good, bad)]
        assert records and all(r.decision.value == "shadow" for r in records)
        reasons = [r.reason for r in records]
        assert any(r.startswith("would have started the canary") for r in reasons)
        assert any(r.startswith("would have rolled back") for r in reasons)
        assert any(r.startswith("would have measured") for r in reasons)

        # Nothing acted on: the only writes are the test's own.
        mine = [
            ("configmaps", "web-flags", "ADDED"),
            ("deployments.apps", "web", "ADDED"),
            ("deployments.apps", "web", "MODIFIED"),  # web:2
            ("deployments.apps", "web", "MODIFIED"),  # web:3-bad
        ]
        assert [s[:3] for s in writes.seen] == mine, writes.seen
        dep = env.deployment("web")
        assert dep["spec"]["replicas"] == 2
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "web:3-bad"
        assert not any(
            d.obj()["metadata"]["name"] == "web-primary"
            for d in env.sim.store.list("deployments", NS).items
        )
