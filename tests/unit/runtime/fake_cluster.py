"""An in-memory ``Cluster`` (the runtime's port) for reconciler unit tests.

It keeps what the reconciler relies on: uids, a resourceVersion that grows with every
write, 409 on a create of an existing object or a write with a stale resourceVersion,
404 on a missing object, generation bumped on a spec change only, JSON merge patches,
a status separate from spec. It has no Deployment controller: a test says when pods are
ready (:meth:`FakeCluster.roll_out`). Every write is logged, so a test can assert that a
second pass writes nothing.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable

from controller.runtime.objects import Caches
from controller.runtime.ports import ConflictError, JsonDict, NotFoundError, NotLeaderError
from controller.sim.patching import merge_patch

DEPLOYMENTS, RELEASES, LANES = "deployments", "lanereleases", "changelanes"
PODS, REPLICA_SETS, ROUTES = "pods", "replicasets", "httproutes"


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        else:
            key, value = term.split("=", 1)
            if labels.get(key) != value:
                return False
    return True


class FakeCluster:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], JsonDict] = {}
        self.writes: list[tuple[str, str]] = []  # (verb, name)
        self.events: list[JsonDict] = []
        self.may_write: Callable[[], bool] = lambda: True
        #: Verbs whose next call answers 409, as a racing writer would make it.
        self.conflict_once: set[str] = set()
        self._rv = itertools.count(1)
        self._uid = itertools.count(1)

    # ------------------------------------------------------------------ test side

    def put(self, plural: str, obj: JsonDict) -> JsonDict:
        """Create or replace, as another client would (not logged as our write)."""
        meta = obj.setdefault("metadata", {})
        key = (plural, str(meta.get("namespace") or ""), str(meta["name"]))
        old = self.objects.get(key)
        meta.setdefault("uid", (old or {}).get("metadata", {}).get("uid") or self._new_uid())
        generation = int((old or {}).get("metadata", {}).get("generation") or 0)
        if old is None or old.get("spec") != obj.get("spec"):
            generation += 1
        meta["generation"] = generation
        meta["resourceVersion"] = str(next(self._rv))
        self.objects[key] = copy.deepcopy(obj)
        return copy.deepcopy(obj)

    def get(self, plural: str, namespace: str, name: str) -> JsonDict:
        try:
            return copy.deepcopy(self.objects[(plural, namespace, name)])
        except KeyError:
            raise NotFoundError(f"{plural} {namespace}/{name}") from None

    def items(self, plural: str) -> list[JsonDict]:
        return [copy.deepcopy(o) for (p, _, _), o in sorted(self.objects.items()) if p == plural]

    def roll_out(self, namespace: str, name: str) -> None:
        """The Deployment controller's part: every replica updated and ready."""
        dep = self.objects[(DEPLOYMENTS, namespace, name)]
        want = int(dep["spec"].get("replicas") or 0)
        dep["status"] = {
            "observedGeneration": dep["metadata"]["generation"],
            "replicas": want,
            "updatedReplicas": want,
            "readyReplicas": want,
        }
        dep["metadata"]["resourceVersion"] = str(next(self._rv))

    def caches(self) -> Caches:
        """What the informers would hold: the current objects."""

        def deployment(ns: str, name: str) -> JsonDict | None:
            found = self.objects.get((DEPLOYMENTS, ns, name))
            return copy.deepcopy(found) if found is not None else None

        return Caches(
            lanes=lambda: self.items(LANES),
            deployment=deployment,
            releases=lambda: self.items(RELEASES),
            deployments=lambda: self.items(DEPLOYMENTS),
        )

    # ------------------------------------------------------------------ the port

    def fence(self) -> None:
        if not self.may_write():
            raise NotLeaderError("not the leader: write refused")

    def _write(self, verb: str, name: str) -> None:
        self.fence()
        if verb in self.conflict_once:
            self.conflict_once.discard(verb)
            raise ConflictError(f"{verb} {name}: the object has been modified")
        self.writes.append((verb, name))

    def _new_uid(self) -> str:
        return f"uid-{next(self._uid)}"

    def _create(self, verb: str, plural: str, namespace: str, body: JsonDict) -> JsonDict:
        name = body["metadata"]["name"]
        self._write(verb, name)
        if (plural, namespace, name) in self.objects:
            raise ConflictError(f"{plural} {namespace}/{name} already exists")
        obj = copy.deepcopy(body)
        obj["metadata"]["namespace"] = namespace
        return self.put(plural, obj)

    def _patch(
        self,
        verb: str,
        key: tuple[str, str, str],
        patch: JsonDict,
        resource_version: str | None = None,
    ) -> JsonDict:
        self._write(verb, key[2])
        current = self.objects.get(key)
        if current is None:
            raise NotFoundError(f"{key[0]} {key[1]}/{key[2]}")
        if resource_version and current["metadata"]["resourceVersion"] != resource_version:
            raise ConflictError(f"{key[2]}: stale resourceVersion {resource_version}")
        patched = merge_patch(current, patch)
        patched["metadata"].pop("resourceVersion", None)
        return self.put(key[0], patched)

    def get_deployment(self, namespace: str, name: str) -> JsonDict:
        return self.get(DEPLOYMENTS, namespace, name)

    def create_deployment(self, namespace: str, body: JsonDict) -> JsonDict:
        return self._create("create deployment", DEPLOYMENTS, namespace, body)

    def patch_deployment(self, namespace: str, name: str, patch: JsonDict) -> JsonDict:
        return self._patch("patch deployment", (DEPLOYMENTS, namespace, name), patch)

    def list_pods(self, namespace: str, selector: str) -> list[JsonDict]:
        return self._select(PODS, namespace, selector)

    def list_replica_sets(self, namespace: str, selector: str) -> list[JsonDict]:
        return self._select(REPLICA_SETS, namespace, selector)

    def _select(self, plural: str, namespace: str, selector: str) -> list[JsonDict]:
        return [
            o
            for o in self.items(plural)
            if o["metadata"].get("namespace") == namespace
            and _matches(o["metadata"].get("labels") or {}, selector)
        ]

    def get_release(self, namespace: str, name: str) -> JsonDict:
        return self.get(RELEASES, namespace, name)

    def create_release(self, namespace: str, body: JsonDict) -> JsonDict:
        return self._create("create lanerelease", RELEASES, namespace, body)

    def patch_release_status(
        self, namespace: str, name: str, status: JsonDict, resource_version: str | None
    ) -> JsonDict:
        return self._patch(
            "patch lanerelease/status",
            (RELEASES, namespace, name),
            {"status": status},
            resource_version,
        )

    def remove_release_annotation(self, namespace: str, name: str, key: str) -> JsonDict:
        return self._patch(
            "patch lanerelease",
            (RELEASES, namespace, name),
            {"metadata": {"annotations": {key: None}}},
        )

    def get_lane(self, name: str) -> JsonDict:
        return self.get(LANES, "", name)

    def patch_lane_status(
        self, name: str, status: JsonDict, resource_version: str | None = None
    ) -> JsonDict:
        return self._patch(
            "patch changelane/status", (LANES, "", name), {"status": status}, resource_version
        )

    def get_http_route(self, namespace: str, name: str) -> JsonDict:
        return self.get(ROUTES, namespace, name)

    def patch_http_route(self, namespace: str, name: str, patch: JsonDict) -> JsonDict:
        return self._patch("patch httproute", (ROUTES, namespace, name), patch)

    def emit_event(
        self,
        involved: JsonDict,
        reason: str,
        message: str,
        event_type: str = "Normal",
        component: str = "changelane",
        annotations: dict[str, str] | None = None,
    ) -> None:
        self._write("create event", reason)
        self.events.append(
            {
                "involvedObject": (involved.get("metadata") or {}).get("name"),
                "reason": reason,
                "message": message,
                "type": event_type,
                "annotations": annotations or {},
            }
        )
