"""Kill a controller at its Nth effect and restart a fresh one on the same cluster and log.

An *effect* is anything that outlives the process: a write to the API server (every
``KubeApi.write``) or an append to the durable audit log. ``KillPlan(at=N, after=False)``
kills the controller just before its Nth effect (the effect never happens);
``after=True`` kills it just after (the effect happened but the controller never saw the
answer). A killed controller raises :class:`Killed` — a ``BaseException``, so no
``except Exception`` in the controller can swallow it — from that point and on every later
API call or audit append, which is what a dead process does: nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from controller.adapters.audit.log import AuditLog, FsyncPolicy
from controller.adapters.flags.lane_gates import LaneGates
from controller.adapters.kube.api import JsonDict, KubeApi
from controller.adapters.kube.client import api_client
from controller.adapters.kube.connection import KubeConnection
from controller.core import canary as mech
from controller.core.audit import AuditRecord
from controller.runtime.manager import Controller, Settings
from controller.sim.cluster import SimCluster
from tests.runtime.harness import NS, AlwaysOn, ImageJudge

T = TypeVar("T")


class Killed(BaseException):
    """The controller process died here."""


@dataclass
class KillPlan:
    at: int | None = None  # None: never (a dry run that only counts effects)
    after: bool = False
    effects: list[str] = field(default_factory=list)
    dead: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check_alive(self) -> None:
        if self.dead.is_set():
            raise Killed

    def effect(self, what: str, do: Callable[[], T]) -> T:
        with self._lock:
            self.check_alive()
            self.effects.append(what)
            n = len(self.effects)
            if n == self.at and not self.after:
                self.dead.set()
                raise Killed
        try:
            result = do()
        finally:
            # "After" means after the attempt, also one the API refused (a 409 that sends
            # the reconcile back to fresh state): the process dies either way.
            with self._lock:
                if n == self.at and self.after:
                    self.dead.set()
        self.check_alive()
        return result


class KillableApi(KubeApi):
    plan: KillPlan

    def write(self, verb: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> JsonDict:
        return self.plan.effect(
            verb, lambda: super(KillableApi, self).write(verb, fn, *args, **kwargs)
        )

    def get_release(self, namespace: str, name: str) -> JsonDict:
        self.plan.check_alive()
        return super().get_release(namespace, name)

    def list_pods(self, namespace: str, selector: str) -> list[JsonDict]:
        self.plan.check_alive()
        return super().list_pods(namespace, selector)


class KillableLog:
    def __init__(self, log: AuditLog, plan: KillPlan) -> None:
        self.log = log
        self.plan = plan

    def emit(self, record: AuditRecord) -> None:
        self.plan.effect(f"audit {record.decision.value}", lambda: self.log.emit(record))


def start_controller(
    sim: SimCluster, kubeconfig: Path, audit_path: Path, plan: KillPlan, instance: str
) -> tuple[Controller, AuditLog]:
    log = AuditLog(audit_path, fsync=FsyncPolicy.NEVER)

    def api_factory(client: Any, may_write: Any) -> KubeApi:
        api = KillableApi(client, may_write)
        api.plan = plan
        return api

    controller = Controller(
        KubeConnection(api_client(str(kubeconfig)), api_factory),
        gates=LaneGates(AlwaysOn()),
        analyzer=ImageJudge(),
        sinks=[KillableLog(log, plan)],
        settings=Settings(instance=instance, leader_election=False, workers=2, resync_seconds=30),
    )
    controller.start()
    return controller, log


# ---------------------------------------------------------------------- what happened


@dataclass
class History:
    """Every change to the Deployments and LaneReleases of the namespace, in resourceVersion
    order, taken from the simulated API server's own watch (not from the controller)."""

    events: list[tuple[int, str, JsonDict]]

    def primary_changes(self, workload: str) -> list[tuple[int, str | None]]:
        """(resourceVersion, template hash) each time the primary's template changed."""
        out: list[tuple[int, str | None]] = []
        last: str | None = None
        for rv, kind, obj in self.events:
            if kind != "Deployment" or obj["metadata"]["name"] != mech.primary_name(workload):
                continue
            annotated = (obj["metadata"].get("annotations") or {}).get(
                mech.TEMPLATE_HASH_ANNOTATION
            )
            image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
            key = f"{annotated}|{image}"
            if key != last:
                out.append((rv, annotated))
                last = key
        return out

    def release_at(self, name: str, rv: int) -> JsonDict | None:
        """The LaneRelease as it stood just before resourceVersion ``rv``."""
        found = None
        for at, kind, obj in self.events:
            if at >= rv:
                break
            if kind == "LaneRelease" and obj["metadata"]["name"] == name:
                found = obj
        return found


class Recorder:
    def __init__(self, sim: SimCluster) -> None:
        self.sim = sim
        self.watchers = [
            sim.store.watch("deployments", NS),
            sim.store.watch("lanereleases", NS),
        ]

    def history(self) -> History:
        events: list[tuple[int, str, JsonDict]] = []
        for watcher in self.watchers:
            while True:
                lines = watcher.take(0.01)
                if not lines:
                    break
                for line in lines:
                    obj = json.loads(line)["object"]
                    events.append((int(obj["metadata"]["resourceVersion"]), obj["kind"], obj))
        events.sort(key=lambda e: e[0])
        return History(events)

    def close(self) -> None:
        for watcher in self.watchers:
            self.sim.store.stop_watch(watcher)


def audit_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]
