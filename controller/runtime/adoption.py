"""Adoption: a lane takes a workload in, and each new pod template becomes a release.

An adopted Deployment is split Flagger-style: a ``-primary`` copy serves with the total
replicas and the original becomes the canary (zero replicas until a release ramps it). A
new pod template on the canary is recorded as a ``LaneRelease`` and gets no traffic before
its gates pass. Shadow and flag-only lanes never adopt ("native" lanes): the Deployment
rolls out as Kubernetes rolls it out, and the release is recorded against the template it
ran before (its previous ReplicaSet).
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable

import structlog

from controller.core import canary as mech
from controller.core import labels
from controller.core.models import API_GROUP, API_VERSION, ChangeLane, LaneRelease
from controller.core.replica_plan import rollout_complete
from controller.runtime.converge import Converger
from controller.runtime.failures import backoff_delay
from controller.runtime.lane_capacity import LaneWorkloads
from controller.runtime.notices import Notices
from controller.runtime.objects import (
    Caches,
    current_hash,
    meta,
    native,
    selector_of,
    spec,
    template_hash_of,
    total_replicas,
)
from controller.runtime.poison import refused_reason, unrecordable_release
from controller.runtime.ports import Cluster, ConflictError, JsonDict

log = structlog.get_logger("changelane.reconciler")

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
#: Seconds before looking again at a workload just adopted (its primary is starting). The
#: primary's own events (created, ready) bring the workload back at once; this is only the
#: safety net. Polling every second kept 10,000 adoptions spinning through the queue.
ADOPTED_REQUEUE_S = 10.0
#: While a workload keeps waiting, its safety net doubles up to this (10 s, 20 s, ...): at
#: 10,000 adoptions a fixed 10 s was 1,000 reconciles a second, more than two workers
#: do, so the queue stayed 10,000 deep and the hand-overs themselves waited in it.
ADOPTED_REQUEUE_MAX_S = 300.0


def adoption_wait(waits: int) -> float:
    """Seconds before looking again after the ``waits``-th look in a row found the
    workload still waiting for its primary (>= 1)."""
    return backoff_delay(waits, first=ADOPTED_REQUEUE_S, cap=ADOPTED_REQUEUE_MAX_S)


class Adoption:
    def __init__(
        self,
        api: Cluster,
        caches: Caches,
        converger: Converger,
        notices: Notices,
        supersede: Callable[[ChangeLane, LaneRelease], object],
        release_spec: Callable[[JsonDict, JsonDict | None], JsonDict],
    ) -> None:
        self.api = api
        self.caches = caches
        self.converger = converger
        self.notices = notices
        self.supersede = supersede  # aborts an in-flight release (the commit protocol)
        self.release_spec = release_spec
        #: How many workloads each lane may manage (runtime.lane_capacity).
        self.workloads = LaneWorkloads()
        self._waits: dict[tuple[str, str], int] = {}
        self._waits_lock = threading.Lock()

    def reconcile(self, lanes: dict[str, ChangeLane], namespace: str, name: str) -> float | None:
        dep = self.caches.deployment(namespace, name)
        if dep is None or mech.is_primary(dep):
            self.workloads.forget((namespace, name))
            self._done_waiting((namespace, name))
            return None
        # The cache does not show our own last write to the workload yet: deciding from
        # it would re-send that write (and its Event). Its watch event brings us back.
        behind = self.converger.writes.wait_s(namespace, name, mech.primary_name(name))
        if behind is not None:
            return behind
        lane = self._lane_of(list(lanes.values()), dep)
        if lane is None:
            self.workloads.forget((namespace, name))
            self._done_waiting((namespace, name))
            return None
        if not self._within_limit(lane, dep):
            return None
        if native(lane):
            return self._reconcile_native(lane, dep)
        primary = self.caches.deployment(namespace, mech.primary_name(name))
        if primary is None:
            self._adopt(lane, dep)
            return self._still_waiting((namespace, name))
        if not self._handed_over(lane, dep, primary):
            return self._still_waiting((namespace, name))
        self._done_waiting((namespace, name))
        self._reconcile_adopted(lane, dep, primary)
        return None

    def _still_waiting(self, key: tuple[str, str]) -> float:
        with self._waits_lock:
            waits = self._waits[key] = self._waits.get(key, 0) + 1
        return adoption_wait(waits)

    def _done_waiting(self, key: tuple[str, str]) -> None:
        if key in self._waits:
            with self._waits_lock:
                self._waits.pop(key, None)

    def _lane_of(self, lanes: list[ChangeLane], dep: JsonDict) -> ChangeLane | None:
        """The one lane the workload belongs to, if any."""
        dep_meta = meta(dep)
        namespace, name = str(dep_meta.get("namespace")), str(dep_meta.get("name"))
        matching = mech.lanes_for(lanes, namespace, dep_meta.get("labels") or {})
        if not matching:
            return None
        owner = (dep_meta.get("annotations") or {}).get(mech.LANE_ANNOTATION)
        lane = next((ln for ln in matching if ln.name == owner), None)
        if len(matching) == 1:
            return lane or matching[0]
        # A workload belongs to one lane: the one that adopted it keeps it; one that
        # nobody adopted yet waits until only one lane selects it. The lanes'
        # WorkloadConflict conditions say so (runtime.lanes).
        others = ", ".join(ln.name for ln in matching if ln is not lane)
        if lane is not None:
            message = f"also selected by lane(s) {others}; stays in lane {lane.name}"
        else:
            message = f"selected by several lanes ({others}); not adopted until one does"
        key = ("conflict", f"{namespace}/{name}:{others}")
        if not self.notices.warned(key):
            self.notices.event(dep, "LaneConflict", message, "Warning")
        self.notices.warn_once(key, message, namespace=namespace, workload=name)
        return lane

    def _within_limit(self, lane: ChangeLane, dep: JsonDict) -> bool:
        """Whether the lane manages this workload (it may manage at most
        ``workloads.limit``); one it refuses is left alone and the lane says so."""
        namespace, name = str(meta(dep).get("namespace")), str(meta(dep).get("name"))
        already = self.caches.deployment(namespace, mech.primary_name(name)) is not None or bool(
            self.caches.releases_of(namespace, name)
        )
        if self.workloads.admit(lane.name, (namespace, name), managed_already=already):
            return True
        key = ("lane-workload-limit", lane.name)
        if not self.notices.warned(key):
            raw = self.caches.lane(lane.name)
            if raw is not None:
                message = self.workloads.message(lane.name)
                self.notices.event(raw, "WorkloadLimitReached", message, "Warning")
        self.notices.warn_once(
            key,
            "lane selects more workloads than it may manage; the rest are left alone",
            lane=lane.name,
            limit=self.workloads.limit,
            first_refused=f"{namespace}/{name}",
        )
        return False

    # ------------------------------------------------------------------ adopted lanes

    def _adopt(self, lane: ChangeLane, dep: JsonDict) -> None:
        """Create the primary beside the original; the original keeps serving until the
        primary is ready (:meth:`_handed_over`)."""
        dep_meta = meta(dep)
        total = total_replicas(dep)  # the annotation when Git leaves replicas to us
        primary = mech.build_primary(dep, total, lane.name)
        with contextlib.suppress(ConflictError):  # an earlier attempt created it already
            self.converger.writes.wrote(self.api.create_deployment(dep_meta["namespace"], primary))
        # While the original still serves, a template change must not roll out ungated.
        self.converger.patch_deployment(
            dep_meta["namespace"], dep_meta["name"], {"spec": {"paused": True}}
        )
        log.info(
            "adopting", lane=lane.name, namespace=dep_meta["namespace"], workload=dep_meta["name"]
        )

    def _handed_over(self, lane: ChangeLane, dep: JsonDict, primary: JsonDict) -> bool:
        """Whether the original has handed its traffic to the primary; it does so (scaled
        to zero, annotated as adopted) only once the primary has rolled out completely."""
        dep_meta = meta(dep)
        if (dep_meta.get("annotations") or {}).get(mech.LANE_ANNOTATION):
            return True
        # A template that changed during adoption is a release nobody has gated yet: it
        # must not serve, even at the cost of waiting for the primary with fewer pods.
        changed = current_hash(dep) != template_hash_of(primary)
        if not changed and not rollout_complete(primary):
            return False
        total = total_replicas(primary)
        self.converger.patch_deployment(
            dep_meta["namespace"],
            dep_meta["name"],
            {
                "metadata": {
                    "annotations": {
                        mech.LANE_ANNOTATION: lane.name,
                        mech.TOTAL_REPLICAS_ANNOTATION: str(total),
                    }
                },
                "spec": {"replicas": 0, "paused": False},
            },
        )
        self.notices.event(
            dep,
            "Adopted",
            f"lane {lane.name} adopted {dep_meta['name']}: {primary['metadata']['name']} "
            f"now serves with {total} replicas",
        )
        log.info(
            "adopted", lane=lane.name, namespace=dep_meta["namespace"], workload=dep_meta["name"]
        )
        return True

    def _reconcile_adopted(self, lane: ChangeLane, dep: JsonDict, primary: JsonDict) -> None:
        namespace, name = str(meta(dep)["namespace"]), str(meta(dep)["name"])
        to_hash = current_hash(dep)
        releases = self._supersede_others(lane, namespace, name, to_hash)
        if to_hash == template_hash_of(primary):
            if all(r.status.phase.terminal for r in releases):
                # steady state: the canary has nothing to serve
                self.converger.dark(lane, dep, primary)
            return
        release_name = f"{name}-{to_hash}"
        existing = next((r for r in releases if r.name == release_name), None)
        if existing is None:
            # Before anything else: a new template gets no traffic until its gates pass.
            self.converger.scale(dep, 0)
            from_revision = {
                "podTemplateHash": template_hash_of(primary),
                "images": mech.images(spec(primary).get("template", {})),
            }
            previous = spec(primary).get("template")
            self._create_release(lane, dep, release_name, to_hash, from_revision, previous)
        elif existing.status.phase.terminal:
            # rejected or rolled back: the template stays dark
            self.converger.dark(lane, dep, primary)

    def _supersede_others(
        self, lane: ChangeLane, namespace: str, name: str, to_hash: str
    ) -> list[LaneRelease]:
        """The workload's releases; one in flight for another template is superseded by
        the current one."""
        releases = self.caches.releases_of(namespace, name)
        for rel in releases:
            if not rel.status.phase.terminal and rel.spec.to_revision.pod_template_hash != to_hash:
                self.supersede(lane, rel)
        return releases

    # ------------------------------------------------------------------ native lanes

    def _reconcile_native(self, lane: ChangeLane, dep: JsonDict) -> float | None:
        """Shadow and flag-only lanes never adopt: the Deployment rolls out as Kubernetes
        rolls it out (in shadow the controller only watches; in a flag-only lane the new
        code runs dark behind its flag). A new pod template is still a release, recorded
        against the previous template (the Deployment's previous ReplicaSet)."""
        namespace, name = str(meta(dep)["namespace"]), str(meta(dep)["name"])
        to_hash = current_hash(dep)
        releases = self._supersede_others(lane, namespace, name, to_hash)
        release_name = f"{name}-{to_hash}"
        if any(r.name == release_name for r in releases):
            return None
        previous = self._previous_template(dep, to_hash)
        if previous is None:
            return None  # the first template seen is the baseline, not a release
        previous_template = previous.pop("template", None)
        self._create_release(lane, dep, release_name, to_hash, previous, previous_template)
        return None

    def _previous_template(self, dep: JsonDict, to_hash: str) -> JsonDict | None:
        """The template the Deployment ran before this one: its newest other ReplicaSet."""
        dep_meta = meta(dep)
        # An error here (403, 5xx after retries) must not read as "no previous template",
        # which would mean "not a release": it propagates, is logged and retried.
        sets = self.api.list_replica_sets(dep_meta["namespace"], selector_of(dep))
        best: tuple[int, JsonDict] | None = None
        for rs in sets:
            owners = meta(rs).get("ownerReferences") or []
            if dep_meta.get("uid") and not any(o.get("uid") == dep_meta.get("uid") for o in owners):
                continue
            template = copy.deepcopy(spec(rs).get("template") or {})
            (template.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
            rs_hash = mech.template_hash(template)
            if rs_hash == to_hash:
                continue
            revision = _revision(rs)
            if best is None or revision > best[0]:
                found = {"podTemplateHash": rs_hash, "images": mech.images(template)}
                best = (revision, {**found, "template": template})
        return best[1] if best is not None else None

    # ------------------------------------------------------------------ the record

    def _create_release(
        self,
        lane: ChangeLane,
        dep: JsonDict,
        name: str,
        to_hash: str,
        from_revision: JsonDict,
        previous_template: JsonDict | None = None,
    ) -> None:
        dep_meta = meta(dep)
        template = spec(dep)["template"]
        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "LaneRelease",
            "metadata": {
                "name": name,
                "namespace": dep_meta["namespace"],
                "labels": {labels.LANE: lane.name, labels.WORKLOAD: dep_meta["name"]},
            },
            "spec": {
                "lane": lane.name,
                "target": {
                    "kind": "Deployment",
                    "name": dep_meta["name"],
                    "namespace": dep_meta["namespace"],
                },
                "from": {k: v for k, v in from_revision.items() if v is not None},
                "to": {"podTemplateHash": to_hash, "images": mech.images(template)},
                **self.release_spec(template, previous_template),
            },
        }
        try:
            self.api.create_release(dep_meta["namespace"], body)
            log.info(
                "release recorded", lane=lane.name, namespace=dep_meta["namespace"], release=name
            )
        except ConflictError:
            pass  # already recorded
        except Exception as exc:
            if getattr(exc, "status", None) not in (400, 422):
                raise
            # The API refused the record (a value the schema cannot hold): record the
            # release anyway, without the values, so it is Rejected and says why instead
            # of this Deployment failing its reconcile forever.
            reason = refused_reason(exc)
            key = ("unrecordable", f"{dep_meta['namespace']}/{name}")
            if not self.notices.warned(key):
                self.notices.event(dep, "ReleaseUnrecordable", reason, "Warning")
            self.notices.warn_once(key, "release record refused", release=name, error=reason)
            with contextlib.suppress(ConflictError):
                self.api.create_release(dep_meta["namespace"], unrecordable_release(body, exc))


def _revision(replica_set: JsonDict) -> int:
    annotations = meta(replica_set).get("annotations") or {}
    try:
        return int(annotations.get(REVISION_ANNOTATION) or 0)
    except ValueError:
        return 0
