"""The simulated Deployment and ReplicaSet controllers, plus the kubelet stand-in for pods.

Deployments get one ReplicaSet per pod template (``<name>-<pod-template-hash>``), rolled
with the RollingUpdate arithmetic of the real controller (maxSurge / maxUnavailable,
unhealthy old replicas cleaned up first) or Recreate; Deployment status and its
Available/Progressing conditions are kept the way kube-controller-manager keeps them.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import structlog

from controller.core.formatting import api_time, parse_api_time
from controller.sim.errors import ApiError
from controller.sim.objects import Stored
from controller.sim.pods import is_ready, plan_pod
from controller.sim.selectors import selector_from_spec
from controller.sim.store import Store, StoreEvent, random_suffix
from controller.workqueue import ShutDownError, WorkQueue

JsonDict = dict[str, Any]
log = structlog.get_logger("changelane.sim")

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def pod_template_hash(template: JsonDict, collision_count: int = 0) -> str:
    """FNV-32a of the template, encoded with the apimachinery safe alphabet (as the real one)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE[ord(ch) % len(_SAFE)] for ch in str(value))


def _resolve(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        fraction = int(value[:-1]) * total / 100
        return math.ceil(fraction) if round_up else math.floor(fraction)
    return int(value or 0)


def _now() -> str:
    return api_time(datetime.now(UTC))


def _parse_time(stamp: str | None) -> float | None:
    when = parse_api_time(stamp)
    return when.timestamp() if when is not None else None


def _owner_ref(kind: str, api_version: str, obj: JsonDict) -> JsonDict:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _controller_uid(stored: Stored) -> str | None:
    return stored.owner_uids[0] if stored.owner_uids else None


class SimController:
    """Runs the three reconcilers on one thread, fed by store events and timers."""

    def __init__(
        self,
        store: Store,
        *,
        ready_delay: float = 1.0,
        crash_restart_interval: float = 2.0,
        emit_events: bool = True,
    ) -> None:
        self.store = store
        self.ready_delay = ready_delay
        self.crash_restart_interval = crash_restart_interval
        self.emit_events = emit_events
        self._queue: WorkQueue[Hashable] = WorkQueue()
        self._first_seen: dict[str, float] = {}
        self._ip_counter = 0
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.store.add_listener(self._on_event)
        for key, kind in (
            ("deployments.apps", "deploy"),
            ("replicasets.apps", "rs"),
            ("pods", "pod"),
        ):
            for stored in self.store.iter_objects(key):
                self._queue.add((kind, stored.namespace, stored.name))
        self._thread = threading.Thread(target=self._run, name="sim-controllers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.store.remove_listener(self._on_event)
        self._queue.shut_down()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _on_event(self, event: StoreEvent) -> None:
        obj = event.obj
        if event.type_key == "deployments.apps":
            if event.type != "DELETED":
                self._queue.add(("deploy", obj.namespace, obj.name))
        elif event.type_key == "replicasets.apps":
            if event.type != "DELETED":
                self._queue.add(("rs", obj.namespace, obj.name))
            self._queue.add(("owner", obj.namespace, _controller_uid(obj) or ""))
        elif event.type_key == "pods":
            if event.type == "DELETED":
                self._first_seen.pop(obj.uid, None)
            else:
                self._queue.add(("pod", obj.namespace, obj.name))
            self._queue.add(("owner", obj.namespace, _controller_uid(obj) or ""))

    def _run(self) -> None:
        while True:
            try:
                key = self._queue.get()
            except ShutDownError:
                return
            if key is None:
                continue
            try:
                self._reconcile(key)
            except ApiError as err:
                # a conflict with a concurrent writer: look again from fresh state
                if err.code not in (404, 409):
                    log.warning("sim.reconcile_failed", key=str(key), error=err.message)
                self._queue.add_after(key, 0.05)
            except Exception:
                log.exception("sim.reconcile_crashed", key=str(key))
                self._queue.add_after(key, 1.0)
            finally:
                self._queue.done(key)

    def _reconcile(self, key: Hashable) -> None:
        kind, namespace, name = cast(tuple[str, str, str], key)
        if kind == "deploy":
            self._sync_deployment(namespace, name)
        elif kind == "rs":
            self._sync_replicaset(namespace, name)
        elif kind == "pod":
            self._sync_pod(namespace, name)
        elif kind == "owner" and name:
            self._enqueue_owner(namespace, name)

    def _enqueue_owner(self, namespace: str, uid: str) -> None:
        found = self.store.find_uid(uid)
        if found is None:
            return
        rtype, stored = found
        kind = {"replicasets.apps": "rs", "deployments.apps": "deploy"}.get(rtype.storage_key)
        if kind is not None:
            self._queue.add((kind, namespace, stored.name))

    # ------------------------------------------------------------------ events

    def _event(
        self, involved: JsonDict, kind: str, reason: str, message: str, etype: str = "Normal"
    ) -> None:
        if not self.emit_events:
            return
        meta = involved["metadata"]
        now = _now()
        event = {
            "metadata": {
                "generateName": f"{meta['name']}.",
                "namespace": meta.get("namespace", "default"),
            },
            "involvedObject": {
                "kind": kind,
                "namespace": meta.get("namespace"),
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": involved.get("apiVersion", "v1"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "source": {"component": "deployment-controller" if kind != "Pod" else "kubelet"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": etype,
            "reportingComponent": "changelane-sim",
            "reportingInstance": "sim",
        }
        # an ApiError means the namespace is going away: the event has nowhere to live
        with contextlib.suppress(ApiError):
            self.store.create("events", event)

    # ------------------------------------------------------------------ pods

    def _sync_pod(self, namespace: str, name: str) -> None:
        try:
            stored = self.store.get("pods", namespace, name)
        except ApiError:
            return
        if stored.deleting:
            return
        first = self._first_seen.setdefault(stored.uid, time.monotonic())
        pod = stored.obj()
        was_ready = is_ready(pod)
        plan = plan_pod(
            pod,
            now=_now(),
            elapsed=time.monotonic() - first,
            ready_delay=self.ready_delay,
            crash_interval=self.crash_restart_interval,
            pod_ip=(pod.get("status") or {}).get("podIP") or self._next_ip(),
        )
        if plan.node_name is not None:
            pod["spec"]["nodeName"] = plan.node_name
            pod = self.store.update("pods", pod).obj()
            self._event(
                pod,
                "Pod",
                "Scheduled",
                f"Successfully assigned {namespace}/{name} to {plan.node_name}",
            )
        if plan.status is not None:
            pod["status"] = plan.status
            updated = self.store.update("pods", pod, subresource="status").obj()
            if is_ready(updated) and not was_ready:
                self._event(updated, "Pod", "Started", "Started container")
            restarts = [
                c.get("restartCount", 0) for c in plan.status.get("containerStatuses") or []
            ]
            if restarts and max(restarts) == 1 and "waiting" in str(plan.status):
                self._event(
                    updated, "Pod", "BackOff", "Back-off restarting failed container", "Warning"
                )
        if plan.requeue_after is not None:
            self._queue.add_after(("pod", namespace, name), plan.requeue_after)

    def _next_ip(self) -> str:
        self._ip_counter += 1
        n = self._ip_counter
        return f"10.244.{(n // 250) % 250}.{n % 250 + 2}"

    # ------------------------------------------------------------------ replicasets

    def _owned(self, owner_uid: str, type_key: str) -> list[Stored]:
        return [
            s
            for rtype, s in self.store.dependents(owner_uid)
            if rtype.storage_key == type_key and _controller_uid(s) == owner_uid
        ]

    def _sync_replicaset(self, namespace: str, name: str) -> None:
        try:
            stored = self.store.get("replicasets", namespace, name)
        except ApiError:
            return
        rs = stored.obj()
        if stored.deleting:
            return
        desired = int(rs["spec"].get("replicas", 1))
        pods = [p for p in self._owned(stored.uid, "pods") if not p.deleting]
        if len(pods) < desired:
            pods += self._create_pods(rs, desired - len(pods))
        elif len(pods) > desired:
            pods = self._delete_pods(rs, pods, len(pods) - desired)
        status = _replicaset_status(rs, [p.obj() for p in pods])
        if rs.get("status") != status:
            rs["status"] = status
            self.store.update("replicasets", rs, subresource="status")

    def _create_pods(self, rs: JsonDict, count: int) -> list[Stored]:
        meta, template = rs["metadata"], rs["spec"].get("template") or {}
        created = []
        for _ in range(count):
            pod = {
                "metadata": {
                    "name": f"{meta['name']}-{random_suffix()}",
                    "namespace": meta["namespace"],
                    "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                    "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                    "ownerReferences": [_owner_ref("ReplicaSet", "apps/v1", rs)],
                },
                "spec": json.loads(json.dumps(template.get("spec") or {})),
            }
            if not pod["metadata"]["annotations"]:
                del pod["metadata"]["annotations"]
            stored = self.store.create("pods", pod)
            created.append(stored)
            self._event(rs, "ReplicaSet", "SuccessfulCreate", f"Created pod: {stored.name}")
        return created

    def _delete_pods(self, rs: JsonDict, pods: list[Stored], count: int) -> list[Stored]:
        """Like the real controller: not-ready pods go first, then the newest."""
        left = list(pods)
        parsed = [(p, p.obj()) for p in pods]
        parsed.sort(key=lambda pair: (is_ready(pair[1]), -pair[0].rv))
        for victim, _ in parsed[:count]:
            try:
                self.store.delete("pods", rs["metadata"]["namespace"], victim.name)
            except ApiError:
                continue
            left.remove(victim)
            self._event(rs, "ReplicaSet", "SuccessfulDelete", f"Deleted pod: {victim.name}")
        return left

    # ------------------------------------------------------------------ deployments

    def _sync_deployment(self, namespace: str, name: str) -> None:
        try:
            stored = self.store.get("deployments", namespace, name)
        except ApiError:
            return
        if stored.deleting:
            return
        deploy = stored.obj()
        spec = deploy["spec"]
        desired = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        collision = int((deploy.get("status") or {}).get("collisionCount", 0))
        wanted_hash = pod_template_hash(template, collision)
        owned = sorted(
            ((s, s.obj()) for s in self._owned(stored.uid, "replicasets.apps")),
            key=lambda pair: _revision(pair[1]),
        )
        new = next(
            (
                pair
                for pair in owned
                if pair[1]["metadata"].get("labels", {}).get(HASH_LABEL) == wanted_hash
            ),
            None,
        )
        old = [pair for pair in owned if pair is not new]
        max_revision = max((_revision(o) for _, o in owned), default=0)
        created_new = False
        if new is None:
            new = self._create_replicaset(deploy, wanted_hash, max_revision + 1, desired, old)
            created_new = True
        elif _revision(new[1]) < max_revision:
            # rolling back to an older template: it becomes the newest revision again
            meta = new[1]["metadata"]
            meta.setdefault("annotations", {})[REVISION] = str(max_revision + 1)
            new = (self.store.update("replicasets", new[1]), new[1])
            new = (new[0], new[0].obj())
        if not spec.get("paused"):
            self._roll(deploy, new, old, desired)
        else:
            self._scale(deploy, new, max(desired, 0))
        self._cleanup_history(deploy, old)
        revision = new[1]["metadata"].get("annotations", {}).get(REVISION)
        if revision and deploy["metadata"].get("annotations", {}).get(REVISION) != revision:
            deploy["metadata"].setdefault("annotations", {})[REVISION] = revision
            deploy = self.store.update("deployments", deploy).obj()
        self._update_status(deploy, new, old, desired, created_new)

    def _create_replicaset(
        self,
        deploy: JsonDict,
        pod_hash: str,
        revision: int,
        desired: int,
        old: list[tuple[Stored, JsonDict]],
    ) -> tuple[Stored, JsonDict]:
        meta = deploy["metadata"]
        spec = deploy["spec"]
        template = json.loads(json.dumps(spec.get("template") or {}))
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels[HASH_LABEL] = pod_hash
        template.setdefault("metadata", {})["labels"] = labels
        selector = json.loads(json.dumps(spec.get("selector") or {}))
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        surge = _resolve(
            ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxSurge"), desired, True
        )
        active_old = any(int(o["spec"].get("replicas", 0)) > 0 for _, o in old)
        rs = {
            "metadata": {
                "name": f"{meta['name']}-{pod_hash}",
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": {
                    REVISION: str(revision),
                    DESIRED: str(desired),
                    MAX_REPLICAS: str(desired + surge),
                },
                "ownerReferences": [_owner_ref("Deployment", "apps/v1", deploy)],
            },
            "spec": {
                "replicas": 0 if active_old else desired,
                "minReadySeconds": spec.get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        stored = self.store.create("replicasets", rs)
        obj = stored.obj()
        if not active_old and desired:
            self._event(
                deploy,
                "Deployment",
                "ScalingReplicaSet",
                f"Scaled up replica set {stored.name} from 0 to {desired}",
            )
        return stored, obj

    def _set_replicas(
        self, deploy: JsonDict, pair: tuple[Stored, JsonDict], replicas: int
    ) -> tuple[Stored, JsonDict]:
        stored, rs = pair
        current = int(rs["spec"].get("replicas", 0))
        if current == replicas:
            return pair
        rs["spec"]["replicas"] = replicas
        annotations = rs["metadata"].setdefault("annotations", {})
        annotations[DESIRED] = str(deploy["spec"].get("replicas", 1))
        updated = self.store.update("replicasets", rs)
        direction = "up" if replicas > current else "down"
        self._event(
            deploy,
            "Deployment",
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {stored.name} from {current} to {replicas}",
        )
        return updated, updated.obj()

    def _scale(self, deploy: JsonDict, new: tuple[Stored, JsonDict], desired: int) -> None:
        self._set_replicas(deploy, new, desired)

    def _roll(
        self,
        deploy: JsonDict,
        new: tuple[Stored, JsonDict],
        old: list[tuple[Stored, JsonDict]],
        desired: int,
    ) -> None:
        strategy = deploy["spec"].get("strategy") or {}
        if strategy.get("type") == "Recreate":
            self._recreate(deploy, new, old, desired)
            return
        active_old = [p for p in old if _spec_replicas(p[1]) > 0]
        if not active_old:
            self._set_replicas(deploy, new, desired)
            return
        rolling = strategy.get("rollingUpdate") or {}
        surge = _resolve(rolling.get("maxSurge", "25%"), desired, True)
        unavailable = _resolve(rolling.get("maxUnavailable", "25%"), desired, False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        # scale up the new ReplicaSet within maxSurge
        new_replicas = _spec_replicas(new[1])
        all_pods = new_replicas + sum(_spec_replicas(p[1]) for p in active_old)
        target = min(desired, max(new_replicas, desired + surge - all_pods + new_replicas))
        if new_replicas > desired:
            target = desired
        new = self._set_replicas(deploy, new, target)
        self._scale_down_old(deploy, new, active_old, desired - unavailable)

    def _recreate(
        self,
        deploy: JsonDict,
        new: tuple[Stored, JsonDict],
        old: list[tuple[Stored, JsonDict]],
        desired: int,
    ) -> None:
        """Every old pod goes before the new ReplicaSet gets any."""
        pending_old = False
        for pair in old:
            if _spec_replicas(pair[1]) or int((pair[1].get("status") or {}).get("replicas", 0)):
                pending_old = True
            self._set_replicas(deploy, pair, 0)
        if not pending_old:
            self._set_replicas(deploy, new, desired)

    def _scale_down_old(
        self,
        deploy: JsonDict,
        new: tuple[Stored, JsonDict],
        active_old: list[tuple[Stored, JsonDict]],
        min_available: int,
    ) -> None:
        """Old ReplicaSets down within maxUnavailable, their unhealthy replicas first."""
        new_replicas = _spec_replicas(new[1])
        new_ready = _ready_replicas(new[1])
        new_unavailable = max(0, new_replicas - new_ready)
        old_ready = sum(_ready_replicas(p[1]) for p in active_old)
        all_replicas = new_replicas + sum(_spec_replicas(p[1]) for p in active_old)
        max_cleanup = all_replicas - min_available - new_unavailable
        for i, pair in enumerate(active_old):
            if max_cleanup <= 0:
                break
            replicas = _spec_replicas(pair[1])
            unhealthy = min(max(0, replicas - _ready_replicas(pair[1])), max_cleanup)
            if unhealthy:
                active_old[i] = self._set_replicas(deploy, pair, replicas - unhealthy)
                max_cleanup -= unhealthy
        scale_down = new_ready + old_ready - min_available - new_unavailable
        for i, pair in enumerate(active_old):
            if scale_down <= 0:
                break
            replicas = _spec_replicas(pair[1])
            step = min(replicas, scale_down)
            if step:
                active_old[i] = self._set_replicas(deploy, pair, replicas - step)
                scale_down -= step

    def _cleanup_history(self, deploy: JsonDict, old: list[tuple[Stored, JsonDict]]) -> None:
        limit = deploy["spec"].get("revisionHistoryLimit")
        if limit is None:
            return
        idle = [
            pair
            for pair in old
            if int(pair[1]["spec"].get("replicas", 0)) == 0
            and int((pair[1].get("status") or {}).get("replicas", 0)) == 0
        ]
        for stored, _ in idle[: max(0, len(idle) - int(limit))]:
            try:
                self.store.delete("replicasets", stored.namespace, stored.name)
            except ApiError:
                continue

    def _update_status(
        self,
        deploy: JsonDict,
        new: tuple[Stored, JsonDict],
        old: list[tuple[Stored, JsonDict]],
        desired: int,
        created_new: bool,
    ) -> None:
        """Status as kube-controller-manager keeps it: replica counts from the ReplicaSets,
        and the Available and Progressing conditions."""
        fresh = [f for f in [self._fresh(new)] + [self._fresh(p) for p in old] if f is not None]
        new_fresh = fresh[0] if fresh and fresh[0]["metadata"]["name"] == new[0].name else None
        counts = _rollout_counts(fresh, new_fresh)
        old_status = deploy.get("status") or {}
        now = _now()
        status: JsonDict = {"observedGeneration": deploy["metadata"].get("generation", 1)}
        status.update({k: v for k, v in counts.items() if v})
        available = counts["availableReplicas"]
        if desired - available > 0:
            status["unavailableReplicas"] = desired - available
        conditions = {c.get("type"): c for c in old_status.get("conditions") or []}
        avail_cond = _available_condition(
            conditions.get("Available"),
            available >= desired - _max_unavailable(deploy, desired),
            now,
        )
        rollout = _Rollout(
            rs_name=new[0].name,
            complete=all(counts[k] == desired for k in _COMPLETE_WHEN),
            created_new=created_new,
            progressed=created_new or any(old_status.get(k, 0) != v for k, v in counts.items()),
        )
        prog, recheck_in = _progressing_condition(
            deploy, conditions.get("Progressing"), rollout, now
        )
        if recheck_in is not None:
            meta = deploy["metadata"]
            self._queue.add_after(("deploy", meta["namespace"], meta["name"]), recheck_in)
        status["conditions"] = [c for c in (avail_cond, prog) if c is not None]
        if "collisionCount" in old_status:
            status["collisionCount"] = old_status["collisionCount"]
        if status != old_status:
            deploy["status"] = status
            self.store.update("deployments", deploy, subresource="status")

    def _fresh(self, pair: tuple[Stored, JsonDict]) -> JsonDict | None:
        try:
            return self.store.get("replicasets", pair[0].namespace, pair[0].name).obj()
        except ApiError:
            return None


def _revision(obj: JsonDict) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, 0))
    except ValueError:
        return 0


def _spec_replicas(obj: JsonDict) -> int:
    return int(obj["spec"].get("replicas", 0))


def _ready_replicas(obj: JsonDict) -> int:
    return int((obj.get("status") or {}).get("readyReplicas", 0))


def _replicaset_status(rs: JsonDict, pods: list[JsonDict]) -> JsonDict:
    ready = sum(1 for p in pods if is_ready(p))
    selector = selector_from_spec(rs["spec"].get("selector"))
    return {
        "replicas": len(pods),
        "fullyLabeledReplicas": sum(
            1 for p in pods if selector.matches(p["metadata"].get("labels"))
        ),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": rs["metadata"].get("generation", 1),
    }


#: The counts that must all equal the desired replicas for a rollout to be complete.
_COMPLETE_WHEN = ("updatedReplicas", "availableReplicas", "replicas")


@dataclass(frozen=True)
class _Rollout:
    """What the Progressing condition is decided from."""

    rs_name: str
    complete: bool
    created_new: bool
    progressed: bool


def _rollout_counts(replica_sets: list[JsonDict], new_rs: JsonDict | None) -> dict[str, int]:
    """The Deployment's replica counts: sums over its ReplicaSets; updated = the new one's."""
    statuses = [rs.get("status") or {} for rs in replica_sets]
    return {
        "replicas": sum(int(s.get("replicas", 0)) for s in statuses),
        "updatedReplicas": int(((new_rs or {}).get("status") or {}).get("replicas", 0)),
        "readyReplicas": sum(int(s.get("readyReplicas", 0)) for s in statuses),
        "availableReplicas": sum(int(s.get("availableReplicas", 0)) for s in statuses),
    }


def _max_unavailable(deploy: JsonDict, desired: int) -> int:
    strategy = deploy["spec"].get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return desired
    rolling = strategy.get("rollingUpdate") or {}
    return _resolve(rolling.get("maxUnavailable", "25%"), desired, False)


def _available_condition(prev: JsonDict | None, minimum: bool, now: str) -> JsonDict:
    if minimum:
        reason, message = "MinimumReplicasAvailable", "Deployment has minimum availability."
    else:
        reason, message = (
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    return _cond(prev, "Available", minimum, reason, message, now, touch=False)


def _progressing_condition(
    deploy: JsonDict, prev: JsonDict | None, rollout: _Rollout, now: str
) -> tuple[JsonDict | None, float | None]:
    """The Progressing condition, and in how many seconds to look again (the progress
    deadline of a rollout that stalled)."""
    name = rollout.rs_name
    if rollout.complete:
        touch = rollout.progressed or (prev or {}).get("reason") != "NewReplicaSetAvailable"
        message = f'ReplicaSet "{name}" has successfully progressed.'
        return _cond(
            prev, "Progressing", True, "NewReplicaSetAvailable", message, now, touch=touch
        ), None
    if rollout.created_new:
        message = f'Created new replica set "{name}"'
        return _cond(
            prev, "Progressing", True, "NewReplicaSetCreated", message, now, touch=True
        ), None
    if rollout.progressed or prev is None or prev.get("reason") == "NewReplicaSetAvailable":
        message = f'ReplicaSet "{name}" is progressing.'
        return _cond(prev, "Progressing", True, "ReplicaSetUpdated", message, now, touch=True), None
    last = _parse_time(prev.get("lastUpdateTime"))
    if last is None or prev.get("reason") == "ProgressDeadlineExceeded":
        return prev, None
    remaining = last + int(deploy["spec"].get("progressDeadlineSeconds", 600)) - time.time()
    if remaining > 0:
        return prev, remaining + 0.05
    message = f'ReplicaSet "{name}" has timed out progressing.'
    return _cond(
        prev, "Progressing", False, "ProgressDeadlineExceeded", message, now, touch=True
    ), None


def _cond(
    prev: JsonDict | None,
    kind: str,
    status: bool,
    reason: str,
    message: str,
    now: str,
    *,
    touch: bool,
) -> JsonDict:
    value = "True" if status else "False"
    flipped = prev is None or prev.get("status") != value
    return {
        "type": kind,
        "status": value,
        "lastUpdateTime": now
        if (touch or flipped or prev is None)
        else prev.get("lastUpdateTime", now),
        "lastTransitionTime": now if flipped else (prev or {}).get("lastTransitionTime", now),
        "reason": reason,
        "message": message,
    }
