"""A simulated cluster with the real controller attached, for runtime tests."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.adapters.flags.flag_ramp import FlagWriterRamp
from controller.adapters.flags.lane_gates import KillSwitchPort, LaneGates
from controller.adapters.kube.api import KubeApi
from controller.adapters.kube.client import api_client
from controller.adapters.kube.connection import KubeConnection
from controller.bench.fencing_replica import ImageJudge
from controller.core.audit import AuditRecord
from controller.core.gates import GateResult
from controller.core.models import ChangeLane
from controller.runtime.manager import Controller, Settings
from controller.sim.cluster import SimCluster
from controller.sim.errors import ApiError
from controller.sim.store import Store
from tests import lane_docs

NS = "shop"


def lane_doc(name: str = "web-lane", **strategy: Any) -> dict[str, Any]:
    return lane_docs.lane_doc(name, NS, **strategy)


def deployment_doc(
    name: str = "web", lane: str = "web-lane", image: str = "web:1"
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"changelane.dev/lane": lane}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": provenance(image=image)},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def provenance(
    agent: str = "claude-code", change: str | None = None, image: str = "web:1"
) -> dict[str, str]:
    """What a pipeline sets for a release of ``image``: a change reference of its own
    (derived from the image unless given) and the images it ships."""
    return {
        "changelane.dev/agent": agent,
        "changelane.dev/model": "claude-opus-4",
        "changelane.dev/change": change or change_for(image),
        "changelane.dev/images": image,
    }


def change_for(image: str) -> str:
    """A commit SHA of its own for each image, as a pipeline would record it."""
    return hashlib.sha1(image.encode()).hexdigest()[:12]


class AlwaysOn:
    def check(
        self, lane: ChangeLane, *, namespace: str, workload: str, agent: str | None = None
    ) -> GateResult:
        return GateResult("killSwitch", True, "on (test)")


@dataclass
class MemorySink:
    records: list[AuditRecord] = field(default_factory=list)

    def emit(self, record: AuditRecord) -> None:
        if all(r.id != record.id for r in self.records):
            self.records.append(record)


@dataclass
class Env:
    sim: SimCluster
    kubeconfig: Path
    sink: MemorySink
    controllers: list[Controller]

    def release(self, name: str) -> dict[str, Any] | None:
        try:
            return self.sim.store.get_obj("lanereleases", NS, name)
        except Exception:
            return None

    def releases(self) -> list[dict[str, Any]]:
        store = self.sim.store
        rtype = store.rtype("lanereleases")
        return [store.to_obj(rtype, s) for s in store.list("lanereleases", NS).items]

    def wait_phase(
        self, phases: Sequence[str], timeout: float = 40.0, name: str | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rel in self.releases():
                if name and rel["metadata"]["name"] != name:
                    continue
                if (rel.get("status") or {}).get("phase") in phases:
                    return rel
            time.sleep(0.05)
        raise AssertionError(
            f"no release reached {phases}: {[r.get('status') for r in self.releases()]}"
        )

    def deployment(self, name: str) -> dict[str, Any]:
        return self.sim.store.get_obj("deployments", NS, name)

    def set_image(
        self, image: str, name: str = "web", annotations: dict[str, str] | None = None
    ) -> None:
        def ship(dep: dict[str, Any]) -> None:
            template = dep["spec"]["template"]
            template["spec"]["containers"][0]["image"] = image
            # A pipeline writes fresh provenance for each release; a test that means to carry
            # the previous template's record over passes it explicitly.
            template["metadata"]["annotations"] = (
                annotations if annotations is not None else provenance(image=image)
            )

        edit(self.sim.store, "deployments", NS, name, ship)


def edit(
    store: Store, ref: str, namespace: str, name: str, change: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Read, change, update; again on a conflict, like `kubectl edit` or client-go's
    RetryOnConflict: a running controller (or the simulated kubelet) may write the object
    between our read and our update. Returns the object as sent."""
    for _ in range(50):
        obj = store.get_obj(ref, namespace, name)
        change(obj)
        try:
            store.update(ref, obj, namespace=namespace, name=name)
            return obj
        except ApiError as err:
            if err.code != 409:
                raise
        time.sleep(0.02)
    raise AssertionError(f"{ref} {namespace}/{name} kept conflicting with the controller")


def new_controller(
    kubeconfig: Path,
    sim: SimCluster,
    sink: MemorySink,
    instance: str = "c-0",
    kill_switch: KillSwitchPort | None = None,
    flags: bool = False,
    api_factory: Callable[..., KubeApi] = KubeApi,
    **settings: Any,
) -> Controller:
    base = dict(
        instance=instance,
        lease_namespace=NS,
        resync_seconds=30,
        lease_duration=4,
        renew_deadline=3,
        retry_period=1,
    )
    base.update(settings)
    api = api_client(str(kubeconfig))
    return Controller(
        KubeConnection(api, api_factory),
        gates=LaneGates(kill_switch or AlwaysOn()),
        analyzer=ImageJudge(),
        sinks=[sink],
        flags=FlagWriterRamp(api) if flags else None,
        settings=Settings(**base),
    )


@contextmanager
def running(
    tmp_path: Path, lane: dict[str, Any] | None = None, start: bool = True, **settings: Any
) -> Iterator[Env]:
    with SimCluster(ready_delay=0.2) as sim:
        kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
        sim.store.create(
            "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        )
        sim.store.create("changelanes", lane or lane_doc())
        sink = MemorySink()
        env = Env(sim, kubeconfig, sink, [])
        if start:
            c = new_controller(kubeconfig, sim, sink, **settings)
            env.controllers.append(c)
            c.start()
        try:
            yield env
        finally:
            for c in env.controllers:
                c.stop()


def wait(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    def holds() -> bool:
        try:
            return predicate()
        except Exception:  # e.g. the object does not exist yet
            return False

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if holds():
            return
        time.sleep(0.05)
    assert predicate(), "condition not reached in time"
