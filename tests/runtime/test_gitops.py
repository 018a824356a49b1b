"""A GitOps applier and the controller on one lane Deployment (docs/gitops.md).

The applier does what Argo CD and Flux do: every half second it server-side applies the
Deployment manifest from Git (field manager ``argocd-controller``, no force), while the
controller adopts the workload, ramps and promotes a release, rolls a bad one back, and
sees Git change the template in the middle of a ramp. Git follows the documented rules:
no ``spec.replicas`` (the total is the ``changelane.dev/replicas`` annotation), and no
``-primary`` Deployment in Git.

Checked: neither side flaps (the template changes only with Git commits, every other
apply is a no-op, replicas move only with the ramp); no release is lost or duplicated (one
LaneRelease per committed template); the primary only ever serves templates that were
promoted; and the Deployment ends as Git says plus the fields the controller owns.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from controller.core.canary import TRACK_LABEL, template_hash
from controller.sim import apply as ssa
from controller.sim.store import StoreEvent
from tests.runtime.harness import NS, Env, lane_doc, provenance, running, wait

pytestmark = pytest.mark.slow

APPLY = "application/apply-patch+yaml"
GIT = "argocd-controller"


def git_manifest(image: str, change: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": NS,
            "labels": {"changelane.dev/lane": "web-lane", "team": "docs"},
            "annotations": {"changelane.dev/replicas": "2"},
        },
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {
                    "labels": {"app": "web"},
                    "annotations": provenance(change=change, image=image),
                },
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
            **spec,
        },
    }


@dataclass
class Applier:
    """Re-applies ``manifest`` every ``period`` seconds, as a GitOps controller does."""

    api: client.AppsV1Api
    manifest: dict[str, Any]
    period: float = 0.5
    applied: int = 0
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def commit(self, manifest: dict[str, Any]) -> None:
        with self._lock:
            self.manifest = manifest
        self.sync()

    def sync(self) -> None:
        with self._lock:
            manifest = self.manifest
        try:
            self.api.patch_namespaced_deployment(
                "web", NS, manifest, field_manager=GIT, _content_type=APPLY
            )
            self.applied += 1
        except ApiException as exc:
            (self.conflicts if exc.status == 409 else self.errors).append(str(exc.body))

    def run(self) -> None:
        while not self._stop.wait(self.period):
            self.sync()

    @contextmanager
    def running(self) -> Iterator[Applier]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=10)


@dataclass
class History:
    """Every committed change of web and web-primary, from the store itself."""

    templates: list[str] = field(default_factory=list)  # web's template hash per change
    replicas: list[int] = field(default_factory=list)
    primary_templates: list[str] = field(default_factory=list)

    def __call__(self, event: StoreEvent) -> None:
        if event.type_key != "deployments.apps" or event.obj.namespace != NS:
            return
        spec = event.obj.obj().get("spec") or {}
        digest = template_hash(spec.get("template") or {})
        if event.obj.name == "web-primary":
            # the primary's copy carries the track label; hash what was reviewed
            template = copy.deepcopy(spec.get("template") or {})
            template.get("metadata", {}).get("labels", {}).pop(TRACK_LABEL, None)
            digest = template_hash(template)
            if not self.primary_templates or self.primary_templates[-1] != digest:
                self.primary_templates.append(digest)
        elif event.obj.name == "web":
            if not self.templates or self.templates[-1] != digest:
                self.templates.append(digest)
            replicas = int(spec.get("replicas") or 0)
            if not self.replicas or self.replicas[-1] != replicas:
                self.replicas.append(replicas)


def phase(env: Env, name: str) -> str | None:
    rel = env.release(name)
    return None if rel is None else (rel.get("status") or {}).get("phase")


def desired_state(dep: dict[str, Any]) -> dict[str, Any]:
    """Everything but status and the status writers' bookkeeping."""
    meta = dep["metadata"]
    managed = [e for e in meta.get("managedFields") or [] if e.get("subresource") != "status"]
    return {
        "spec": dep["spec"],
        "generation": meta.get("generation"),
        "labels": meta.get("labels"),
        "annotations": meta.get("annotations"),
        "managedFields": managed,
    }


def live_hash(env: Env) -> str:
    """The hash of web's template as stored (with the API's defaults), as releases use."""
    return template_hash(env.deployment("web")["spec"]["template"])


def test_gitops_applier_and_controller_coexist(tmp_path: Path) -> None:
    history = History()
    lane = lane_doc(
        steps=[{"weight": 50, "minDuration": "1s"}, {"weight": 100, "minDuration": "1s"}]
    )
    with running(tmp_path, lane=lane) as env:
        env.sim.store.add_listener(history)
        apps = client.AppsV1Api(config.new_client_from_config(config_file=str(env.kubeconfig)))
        commits = [git_manifest("web:1", "c1c1c1c")]
        applier = Applier(apps, commits[0])
        applier.sync()
        hashes = [live_hash(env)]  # per commit, as stored
        with applier.running():
            wait(lambda: env.sim.deployment_ready(NS, "web-primary"), timeout=30)
            promoted = {hashes[0]}

            def commit(image: str, change: str) -> str:
                commits.append(git_manifest(image, change))
                applier.commit(commits[-1])
                hashes.append(live_hash(env))
                return f"web-{hashes[-1]}"

            # A good release ramps and is promoted while Git keeps re-applying.
            good = commit("web:2", "c2c2c2c")
            env.wait_phase(["Promoted"], name=good, timeout=60)
            promoted.add(hashes[-1])

            # A bad one is rolled back; Git still says web:bad and keeps applying it.
            bad = commit("web:bad", "c3c3c3c")
            env.wait_phase(["RolledBack"], name=bad, timeout=60)
            wait(lambda: int(env.deployment("web")["spec"]["replicas"]) == 0, timeout=20)

            # Git changes the template in the middle of a ramp: that release is superseded
            # and the new template starts over from its gates.
            interrupted = commit("web:4", "c4c4c4c")
            wait(lambda: phase(env, interrupted) == "Progressing", timeout=30)
            last = commit("web:5", "c5c5c5c")
            env.wait_phase(["Promoted"], name=last, timeout=60)
            promoted.add(hashes[-1])
            superseded = env.release(interrupted)
            assert superseded is not None
            assert superseded["status"]["phase"] == "RolledBack", superseded["status"]

            # Quiet: once the canary is dark, more rounds of Git re-applying change nothing
            # (the simulated Deployment controller may still write status).
            wait(lambda: int(env.deployment("web")["spec"]["replicas"]) == 0, timeout=20)
            settled = desired_state(env.deployment("web"))
            rounds = applier.applied
            wait(lambda: applier.applied >= rounds + 4, timeout=20)
            assert desired_state(env.deployment("web")) == settled

        assert applier.conflicts == [] and applier.errors == []

        # No release lost or duplicated: one per committed template, none other.
        names = sorted(r["metadata"]["name"] for r in env.releases())
        assert names == sorted(f"web-{h}" for h in hashes[1:])
        assert [phase(env, f"web-{h}") for h in hashes[1:]] == [
            "Promoted", "RolledBack", "RolledBack", "Promoted",
        ]  # fmt: skip

        # Neither side flaps: web's template changed once per commit and nobody changed
        # it back; replicas only moved with the ramps (adopt, 2 steps, dark, per release).
        assert history.templates == hashes
        assert len(history.replicas) <= 1 + 3 * len(commits), history.replicas

        # The primary never served a template that was not promoted.
        assert set(history.primary_templates) <= promoted, history.primary_templates
        assert history.primary_templates[-1] == hashes[-1]

        # Converged: Git's fields hold Git's values and are Git's alone; the controller
        # owns what it sets (replicas, its lane annotation); nobody else owns spec.
        live = env.deployment("web")
        rtype = env.sim.store.rtype("deployments")
        wanted = ssa.flatten(rtype, commits[-1])
        have = ssa.flatten(rtype, live)
        assert {p: have.get(p) for p in wanted} == wanted
        owners = ssa.Managers(live["metadata"]["managedFields"]).sets
        assert owners[(GIT, "Apply", "")] == set(wanted)
        controller = owners[("changelane", "Update", "")]
        assert ("f:spec", "f:replicas") in controller
        assert ("f:metadata", "f:annotations", "f:changelane.dev/lane") in controller
        assert not controller & set(wanted)
        spec_owners = {k[0] for k, paths in owners.items() if any(p[0] == "f:spec" for p in paths)}
        assert spec_owners == {GIT, "changelane"}


def test_git_that_sets_replicas_gets_a_conflict_not_a_tug_of_war(tmp_path: Path) -> None:
    """Breaking the rule: Git states spec.replicas. The controller's first scale takes the
    field; every later apply without force is refused with the API's 409 naming the field
    and its owner, and the Deployment does not flap."""
    with running(tmp_path) as env:
        apps = client.AppsV1Api(config.new_client_from_config(config_file=str(env.kubeconfig)))
        applier = Applier(apps, git_manifest("web:1", "c1c1c1c", replicas=2))
        applier.sync()
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"), timeout=30)
        wait(lambda: int(env.deployment("web")["spec"]["replicas"]) == 0, timeout=20)
        # generation, not resourceVersion: the Deployment controller may still be writing
        # the scale-down's status; only a spec change (a flap) moves the generation.
        before = env.deployment("web")["metadata"]["generation"]
        for _ in range(3):
            applier.sync()
        assert len(applier.conflicts) == 3
        assert (
            'Apply failed with 1 conflict: conflict with \\"changelane\\" using apps/v1: '
            ".spec.replicas" in applier.conflicts[0]
        )
        assert env.deployment("web")["metadata"]["generation"] == before
        assert int(env.deployment("web")["spec"]["replicas"]) == 0
