"""Reconcile: read state, ask the pure core, write status, converge the world to it.

Order matters for crash safety. A release's status (the decision, with its audit records
in the outbox) is written first; then the outbox is flushed to the sinks (record before
acting: a decision the durable audit log could not take is not acted on); then the world
is converged to what the status says (replicas, route weights, flag exposure, the
primary's template); then the outbox is cleared. A controller killed anywhere in between
finds the decision in the status on restart, flushes the records again (the sinks drop ids
they already have) and converges again (idempotent). Nothing is promoted that the status
does not say was earned, and the status only says so after the core decided it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from controller.adapters.audit.cluster import event_annotations, event_for
from controller.adapters.audit.sink import AuditSink
from controller.adapters.kube.api import ConflictError, JsonDict, KubeApi, NotFoundError, call
from controller.core import canary as mech
from controller.core.gates import GateReport, GateResult, flag_source
from controller.core.gates.policy import shadow_mode
from controller.core.models import (
    API_GROUP,
    API_VERSION,
    ChangeLane,
    ChangeLaneStatus,
    LaneRelease,
    LaneReleaseStatus,
    Measurement,
    Phase,
    TrafficMode,
    parse_duration,
)
from controller.core.release_machine import (
    CanaryObservation,
    CommandKind,
    HumanCommand,
    Observation,
    ReleaseDecision,
    decide,
    inconsistency,
)
from controller.core.replica_plan import (
    ReplicaSplit,
    availability_safe,
    ready_replicas,
    rollout_complete,
    split_for,
)
from controller.runtime.gates import FLAG_SOURCE, flag_source_of, release_spec_from_template
from controller.runtime.lane_validity import (
    INVALID_REASON,
    invalid_lane_message,
    ready_false_conditions,
)
from controller.runtime.poison import refused_reason, unrecordable_release
from controller.runtime.ports import Analyzer, FlagRamp, GateEvaluator

log = structlog.get_logger("changelane.reconciler")

Key = tuple[str, str, str]  # (kind, namespace, name)
RELEASE_LABEL_LANE = "changelane.dev/lane"
RELEASE_LABEL_WORKLOAD = "changelane.dev/workload"
COMMAND_ANNOTATION = "changelane.dev/command"
CONTROLLER_ACTOR = "changelane"

#: Where the canary takes traffic (replicas > 0) for each phase; elsewhere it has none.
_CANARY_SERVES = frozenset({Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING})


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Caches:
    """Read access to the informers' caches (dicts keyed ``ns/name`` or ``name``)."""

    lanes: Callable[[], list[JsonDict]]
    deployment: Callable[[str, str], JsonDict | None]
    releases: Callable[[], list[JsonDict]]
    deployments: Callable[[], list[JsonDict]] = list


def _meta(obj: JsonDict) -> JsonDict:
    meta: JsonDict = obj.get("metadata") or {}
    return meta


def _spec(obj: JsonDict) -> JsonDict:
    spec: JsonDict = obj.get("spec") or {}
    return spec


class Reconciler:
    def __init__(
        self,
        api: KubeApi,
        caches: Caches,
        gates: GateEvaluator,
        analyzer: Analyzer,
        sinks: Sequence[AuditSink],
        flags: FlagRamp | None = None,
        clock: Callable[[], datetime] = utcnow,
        provenance_from: Callable[[JsonDict, JsonDict | None], JsonDict] | None = None,
        instance: str = "changelane",
    ) -> None:
        self.api = api
        self.caches = caches
        self.gates = gates
        self.analyzer = analyzer
        self.sinks = list(sinks)
        self.flags = flags
        self.clock = clock
        self.provenance_from = provenance_from or release_spec_from_template
        self.instance = instance
        self._warned: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ lanes

    def lanes(self) -> dict[str, ChangeLane]:
        """Valid lanes by name; an invalid one is reported and skipped, never fatal."""
        out: dict[str, ChangeLane] = {}
        for raw in self.caches.lanes():
            name = _meta(raw).get("name", "?")
            try:
                out[name] = _parse_lane(raw)
            except ValidationError as exc:
                message = invalid_lane_message(exc)
                key = ("lane-invalid", f"{name}:{message}")
                if key not in self._warned:
                    self._report_invalid_lane(raw, message)
                self._warn_once(key, "lane is invalid; skipped", lane=name, error=message)
        return out

    def _report_invalid_lane(self, raw: JsonDict, message: str) -> None:
        """Ready=False and a Warning Event on a lane that got past the API but does not
        validate: where people look, not only in the controller's log."""
        conditions = ready_false_conditions(raw, message, self.clock())
        if conditions is not None:
            try:
                self.api.patch_lane_status(str(_meta(raw).get("name")), {"conditions": conditions})
            except Exception as exc:  # the lane stays skipped either way; the log says why
                log.warning("could not record Ready=False", error=str(exc)[:300])
        self._event(raw, INVALID_REASON, message, "Warning")

    def _warn_once(self, key: tuple[str, str], message: str, **fields: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, **fields)

    # ------------------------------------------------------------------ deployments

    def reconcile_deployment(self, namespace: str, name: str) -> float | None:
        dep = self.caches.deployment(namespace, name)
        if dep is None or mech.is_primary(dep):
            return None
        labels = _meta(dep).get("labels") or {}
        matching = mech.lanes_for(list(self.lanes().values()), namespace, labels)
        if not matching:
            return None
        owner = (_meta(dep).get("annotations") or {}).get(mech.LANE_ANNOTATION)
        lane = next((ln for ln in matching if ln.name == owner), None)
        if len(matching) > 1:
            # A workload belongs to one lane: the one that adopted it keeps it; one that
            # nobody adopted yet waits until only one lane selects it. The lanes'
            # WorkloadConflict conditions say so (reconcile_lane).
            others = ", ".join(ln.name for ln in matching if ln is not lane)
            if lane is not None:
                message = f"also selected by lane(s) {others}; stays in lane {lane.name}"
            else:
                message = f"selected by several lanes ({others}); not adopted until one does"
            key = ("conflict", f"{namespace}/{name}:{others}")
            if key not in self._warned:
                self._event(dep, "LaneConflict", message, "Warning")
            self._warn_once(key, message, namespace=namespace, workload=name)
            if lane is None:
                return None
        lane = lane or matching[0]
        if _native(lane):
            return self._reconcile_native(lane, dep)
        primary = self.caches.deployment(namespace, mech.primary_name(name))
        if primary is None:
            self._adopt(lane, dep)
            return 1.0
        if not self._handed_over(lane, dep, primary):
            return 1.0
        to_hash = mech.template_hash(_spec(dep)["template"])
        stable_hash = _meta(primary).get("annotations", {}).get(mech.TEMPLATE_HASH_ANNOTATION)
        workload_releases = self._releases_of(namespace, name)
        # A release in flight for another template is superseded by the current one.
        for rel in workload_releases:
            if not rel.status.phase.terminal and rel.spec.to_revision.pod_template_hash != to_hash:
                self._supersede(lane, rel)
        if to_hash == stable_hash:
            if not any(not r.status.phase.terminal for r in workload_releases):
                self._dark(lane, dep)  # steady state: the canary has nothing to serve
            return None
        release_name = f"{name}-{to_hash}"
        existing = next((r for r in workload_releases if r.name == release_name), None)
        if existing is None:
            # Before anything else: a new template gets no traffic until its gates pass.
            self._scale(dep, 0)
            from_revision = {
                "podTemplateHash": _template_hash_of(primary),
                "images": mech.images(_spec(primary).get("template", {})),
            }
            previous = _spec(primary).get("template")
            self._create_release(lane, dep, release_name, to_hash, from_revision, previous)
        elif existing.status.phase.terminal:
            self._dark(lane, dep)  # rejected or rolled back: the template stays dark
        return None

    # ------------------------------------------------------------------ lane status

    def reconcile_lane(self, name: str) -> float | None:
        """Keep the lane's ``WorkloadConflict`` condition true to its selector's overlaps."""
        lanes = self.lanes()
        lane = lanes.get(name)
        if lane is None:
            return None
        conflicts = []
        for dep in self.caches.deployments():
            meta = _meta(dep)
            if mech.is_primary(dep):
                continue
            ns, labels = str(meta.get("namespace")), meta.get("labels") or {}
            if not mech.lane_selects(lane, ns, labels):
                continue
            matching = [ln.name for ln in mech.lanes_for(list(lanes.values()), ns, labels)]
            owner = (meta.get("annotations") or {}).get(mech.LANE_ANNOTATION)
            if len(matching) < 2 or owner == name:
                continue
            if owner in matching:
                conflicts.append(f"{ns}/{meta.get('name')} is already in lane {owner}")
            else:
                others = ", ".join(n for n in matching if n != name)
                conflicts.append(f"{ns}/{meta.get('name')} is also selected by lane(s) {others}")
        if conflicts:
            condition = (
                "True",
                "SelectorOverlap",
                "not adopted: " + "; ".join(sorted(conflicts)),
            )
        else:
            condition = ("False", "NoOverlap", "every workload this lane selects is its own")
        self._set_lane_condition(lane, "WorkloadConflict", *condition)
        self._set_lane_condition(lane, "Ready", "True", "Valid", "the lane's spec is valid")
        source = flag_source_of(self.gates)
        if source is not None:
            self._set_lane_condition(
                lane, flag_source.CONDITION, *flag_source.lane_condition(source)
            )
            return flag_source.recheck_after(source)
        return None

    def _set_lane_condition(
        self, lane: ChangeLane, type_: str, status: str, reason: str, message: str
    ) -> None:
        raw = next((r for r in self.caches.lanes() if _meta(r).get("name") == lane.name), None)
        current = list(((raw or {}).get("status") or {}).get("conditions") or [])
        existing = next((c for c in current if c.get("type") == type_), None)
        if existing is None and status == "False":
            return  # nothing to clear
        if existing is not None and (existing.get("status"), existing.get("message")) == (
            status,
            message,
        ):
            return
        changed = existing is None or existing.get("status") != status
        condition = {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": (
                self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
                if changed
                else existing.get("lastTransitionTime")  # type: ignore[union-attr]
            ),
        }
        if lane.metadata.generation is not None:
            condition["observedGeneration"] = lane.metadata.generation
        conditions = [c for c in current if c.get("type") != type_] + [condition]
        self.api.patch_lane_status(lane.name, {"conditions": conditions})

    def _adopt(self, lane: ChangeLane, dep: JsonDict) -> None:
        """Create the primary beside the original; the original keeps serving until the
        primary is ready (:meth:`_handed_over`)."""
        meta = _meta(dep)
        total = int(_spec(dep).get("replicas") or 1)
        primary = mech.build_primary(dep, total, lane.name)
        with contextlib.suppress(ConflictError):  # an earlier attempt created it already
            self.api.create_deployment(meta["namespace"], primary)
        log.info("adopting", lane=lane.name, namespace=meta["namespace"], workload=meta["name"])

    def _handed_over(self, lane: ChangeLane, dep: JsonDict, primary: JsonDict) -> bool:
        """Whether the original has handed its traffic to the primary; it does so (scaled
        to zero, annotated as adopted) only once the primary has rolled out completely."""
        meta = _meta(dep)
        if (meta.get("annotations") or {}).get(mech.LANE_ANNOTATION):
            return True
        # A template that changed during adoption is a release nobody has gated yet: it
        # must not serve, even at the cost of waiting for the primary with fewer pods.
        changed = mech.template_hash(_spec(dep)["template"]) != _template_hash_of(primary)
        if not changed and not rollout_complete(primary):
            return False
        total = _total_replicas(primary)
        self.api.patch_deployment(
            meta["namespace"],
            meta["name"],
            {
                "metadata": {
                    "annotations": {
                        mech.LANE_ANNOTATION: lane.name,
                        mech.TOTAL_REPLICAS_ANNOTATION: str(total),
                    }
                },
                "spec": {"replicas": 0},
            },
        )
        self._event(
            dep,
            "Adopted",
            f"lane {lane.name} adopted {meta['name']}: {primary['metadata']['name']} "
            f"now serves with {total} replicas",
        )
        log.info("adopted", lane=lane.name, namespace=meta["namespace"], workload=meta["name"])
        return True

    def _reconcile_native(self, lane: ChangeLane, dep: JsonDict) -> float | None:
        """Shadow and flag-only lanes never adopt: the Deployment rolls out as Kubernetes
        rolls it out (in shadow the controller only watches; in a flag-only lane the new
        code runs dark behind its flag). A new pod template is still a release, recorded
        against the previous template (the Deployment's previous ReplicaSet)."""
        meta = _meta(dep)
        namespace, name = str(meta["namespace"]), str(meta["name"])
        to_hash = mech.template_hash(_spec(dep)["template"])
        workload_releases = self._releases_of(namespace, name)
        for rel in workload_releases:
            if not rel.status.phase.terminal and rel.spec.to_revision.pod_template_hash != to_hash:
                self._supersede(lane, rel)
        release_name = f"{name}-{to_hash}"
        if any(r.name == release_name for r in workload_releases):
            return None
        previous = self._previous_template(dep, to_hash)
        if previous is None:
            return None  # the first template seen is the baseline, not a release
        previous_template = previous.pop("template", None)
        self._create_release(lane, dep, release_name, to_hash, previous, previous_template)
        return None

    def _previous_template(self, dep: JsonDict, to_hash: str) -> JsonDict | None:
        """The template the Deployment ran before this one: its newest other ReplicaSet."""
        meta = _meta(dep)
        labels = (_spec(dep).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        # An error here (403, 5xx after retries) must not read as "no previous template",
        # which would mean "not a release": it propagates, is logged and retried.
        sets = call(
            self.api.apps.list_namespaced_replica_set,
            meta["namespace"],
            label_selector=selector,
        ).get("items", [])
        best: tuple[int, JsonDict] | None = None
        for rs in sets:
            owners = _meta(rs).get("ownerReferences") or []
            if meta.get("uid") and not any(o.get("uid") == meta.get("uid") for o in owners):
                continue
            template = json.loads(json.dumps(_spec(rs).get("template") or {}))
            (template.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
            rs_hash = mech.template_hash(template)
            if rs_hash == to_hash:
                continue
            annotations = _meta(rs).get("annotations") or {}
            try:
                revision = int(annotations.get("deployment.kubernetes.io/revision") or 0)
            except ValueError:
                revision = 0
            if best is None or revision > best[0]:
                found = {"podTemplateHash": rs_hash, "images": mech.images(template)}
                best = (revision, {**found, "template": template})
        return best[1] if best is not None else None

    def _create_release(
        self,
        lane: ChangeLane,
        dep: JsonDict,
        name: str,
        to_hash: str,
        from_revision: JsonDict,
        previous_template: JsonDict | None = None,
    ) -> None:
        meta = _meta(dep)
        template = _spec(dep)["template"]
        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "LaneRelease",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": {RELEASE_LABEL_LANE: lane.name, RELEASE_LABEL_WORKLOAD: meta["name"]},
            },
            "spec": {
                "lane": lane.name,
                "target": {
                    "kind": "Deployment",
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                },
                "from": {k: v for k, v in from_revision.items() if v is not None},
                "to": {"podTemplateHash": to_hash, "images": mech.images(template)},
                **self.provenance_from(template, previous_template),
            },
        }
        try:
            self.api.create_release(meta["namespace"], body)
            log.info("release recorded", lane=lane.name, namespace=meta["namespace"], release=name)
        except ConflictError:
            pass  # already recorded
        except ApiException as exc:
            if exc.status not in (400, 422):
                raise
            # The API refused the record (a value the schema cannot hold): record the
            # release anyway, without the values, so it is Rejected and says why instead
            # of this Deployment failing its reconcile forever.
            reason = refused_reason(exc)
            key = ("unrecordable", f"{meta['namespace']}/{name}")
            if key not in self._warned:
                self._event(dep, "ReleaseUnrecordable", reason, "Warning")
            self._warn_once(key, "release record refused", release=name, error=reason)
            with contextlib.suppress(ConflictError):
                self.api.create_release(meta["namespace"], unrecordable_release(body, exc))

    def _releases_of(self, namespace: str, workload: str) -> list[LaneRelease]:
        out = []
        for raw in self.caches.releases():
            meta = _meta(raw)
            if meta.get("namespace") != namespace:
                continue
            if (_spec(raw).get("target") or {}).get("name") != workload:
                continue
            rel = _parse_release(raw)
            if rel is not None:
                out.append(rel)
        return out

    def _supersede(self, lane: ChangeLane, rel: LaneRelease) -> None:
        self._run_machine(
            lane,
            rel,
            extra_command=HumanCommand(
                CommandKind.ABORT, CONTROLLER_ACTOR, "superseded by another pod template"
            ),
        )

    # ------------------------------------------------------------------ releases

    def reconcile_release(self, namespace: str, name: str) -> float | None:
        try:
            raw = self.api.get_release(namespace, name)
        except NotFoundError:
            return None
        rel = _parse_release(raw)
        if rel is None:
            self._unreadable_release(raw)
            return None
        lane = self.lanes().get(rel.spec.lane)
        if lane is None:
            if not rel.status.phase.terminal:
                dep = self.caches.deployment(namespace, rel.spec.target.name)
                if dep is not None:
                    self._scale(dep, 0)  # fail safe: no lane, no canary traffic
                self._warn_once(
                    ("lane-missing", f"{namespace}/{name}"),
                    "release's lane does not exist; canary held at zero",
                    release=name,
                    lane=rel.spec.lane,
                )
            return 30.0
        dep = self.caches.deployment(namespace, rel.spec.target.name)
        extra = None
        if dep is not None and not rel.status.phase.terminal:
            current = mech.template_hash(_spec(dep)["template"])
            if current != rel.spec.to_revision.pod_template_hash:
                extra = HumanCommand(
                    CommandKind.ABORT, CONTROLLER_ACTOR, "superseded by another pod template"
                )
        return self._run_machine(lane, rel, extra_command=extra, raw=raw)

    def _unreadable_release(self, raw: JsonDict) -> None:
        """A LaneRelease that does not even parse (edited by hand into nonsense): take its
        canary's traffic away, leave the primary alone and say which field is wrong."""
        meta = _meta(raw)
        ns, name = str(meta.get("namespace")), str(meta.get("name"))
        try:
            LaneRelease.model_validate(raw)
            return
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = f"{where}: {first['msg']}; canary held at zero, primary untouched"
        status = raw.get("status") or {}
        if status.get("phase") in ("Promoted", "RolledBack", "Rejected"):
            return  # finished: there is no traffic to take away
        target = _spec(raw).get("target") or {}
        dep = self.caches.deployment(ns, str(target.get("name")))
        if dep is not None:
            self._scale(dep, 0)
        conditions = [
            c for c in status.get("conditions") or [] if isinstance(c, dict) and c.get("type")
        ]
        if any(c.get("type") == "InvalidState" and c.get("message") == message for c in conditions):
            return
        conditions = [c for c in conditions if c.get("type") != "InvalidState"]
        conditions.append(
            {
                "type": "InvalidState",
                "status": "True",
                "reason": "Unreadable",
                "message": message,
                "lastTransitionTime": self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        log.warning("LaneRelease does not parse; canary held at zero", release=name, error=message)
        self._event(raw, "InvalidState", message, "Warning")
        try:
            self.api.patch_release_status(ns, name, {"conditions": conditions}, None)
        except Exception as exc:  # the schema may refuse even this: the log says why
            log.warning("could not record InvalidState", release=name, error=str(exc)[:300])

    def _run_machine(
        self,
        lane: ChangeLane,
        rel: LaneRelease,
        extra_command: HumanCommand | None = None,
        raw: JsonDict | None = None,
    ) -> float | None:
        ns = rel.spec.target.namespace
        rv = rel.metadata.resource_version
        stored_wire = _status_wire(rel.status)
        if rel.status.outbox:
            # Left by a controller that stopped between committing a decision and
            # recording it: record it now (the sinks drop ids they already have); the
            # status write below clears the outbox.
            if not self._flush(rel.status.outbox, involved=raw):
                return 5.0
            rel = rel.model_copy(update={"status": rel.status.model_copy(update={"outbox": []})})
        dep = self.caches.deployment(ns, rel.spec.target.name)
        primary = self.caches.deployment(ns, mech.primary_name(rel.spec.target.name))
        now = self.clock()
        command = extra_command or _command_from(raw)
        if inconsistency(lane, rel.status) is None:
            obs = self._observe(lane, rel, dep, primary, now, command)
        else:
            obs = Observation(now=now)  # decide() contains it; nothing to measure
        decision = decide(lane, rel, obs)
        status_wire = _status_wire(decision.status)
        if status_wire != stored_wire:
            try:
                written = self.api.patch_release_status(
                    ns, rel.name, _status_patch(status_wire, stored_wire), rv
                )
            except ConflictError:
                log.info("status conflict; retrying from fresh state", release=rel.name)
                return 0.0
            rv = _meta(written).get("resourceVersion", rv)
        # Record before acting: a decision the durable audit log could not take is not
        # acted on (it stays in the outbox and is retried).
        if decision.status.outbox and not self._flush(decision.status.outbox, involved=raw):
            return 5.0
        converge = not decision.shadow and not rel.status.phase.terminal
        if converge and dep is not None and _native(lane):
            self._converge_flag(lane, rel, decision.status)  # flag-only: no replicas
        elif converge and dep is not None and primary is not None:
            self._converge(lane, rel, decision, dep, primary)
        if decision.status.outbox:
            cleared = decision.status.model_copy(update={"outbox": []})
            try:
                self.api.patch_release_status(ns, rel.name, _status_wire(cleared), rv)
            except ConflictError:
                return 0.0  # recorded already; the next pass clears it (ids dedupe)
        if command is not None and raw is not None and _command_from(raw) is not None:
            self._clear_command(ns, rel.name)
        return decision.requeue_after

    # ------------------------------------------------------------------ observation

    def _observe(
        self,
        lane: ChangeLane,
        rel: LaneRelease,
        dep: JsonDict | None,
        primary: JsonDict | None,
        now: datetime,
        command: HumanCommand | None,
    ) -> Observation:
        phase = rel.status.phase
        gates: GateReport | None = None
        if phase in (Phase.PENDING, Phase.GATED, Phase.PROGRESSING, Phase.PAUSED):
            others = [r for r in self._lane_releases(lane.name) if r.name != rel.name]
            try:
                gates = self.gates.evaluate(lane, rel, now, others)
            except Exception as exc:  # fail closed: a gate that cannot be evaluated is shut
                log.exception("gate evaluation failed", release=rel.name)
                gates = GateReport((GateResult("evaluation", False, f"gates failed: {exc}"),))
            self._report_flag_source(lane, gates)
        native = _native(lane)
        if dep is None:
            canary_obs = None
        elif native:
            canary_obs = self._rollout(dep, rel)
        else:
            canary_obs = self._canary(dep)
        flag = None
        ramps = self._ramps_flag(lane, rel)
        if ramps and phase in (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING):
            assert self.flags is not None
            flag = self.flags.observe(lane, rel)
        measurements: tuple[Measurement, ...] = ()
        if phase is Phase.PROGRESSING and self._analysis_due(lane, rel, now, canary_obs):
            step = rel.status.current_step
            measurements = tuple(
                self.analyzer.measure(lane, rel, check, now).model_copy(update={"step": step})
                for check in lane.spec.analysis.checks
            )
        # A ramped flag must be at 100% (or in someone else's hands, which is reported).
        flag_done = flag is None or flag.weight == 100 or flag.problem is not None
        if native:  # the workload rolled out by itself; only the flag is ours
            template_done = True
        else:
            template_done = (
                primary is not None
                and _template_hash_of(primary) == rel.spec.to_revision.pod_template_hash
                and _rolled_out(primary)
            )
        promotion_complete = phase is Phase.PROMOTING and template_done and flag_done
        rollback_complete = phase is Phase.ROLLING_BACK and self._canary_gone(lane, rel, dep)
        replica_mode = not native and not lane.spec.strategy.flag_only and primary is not None
        replica_mode = replica_mode and lane.spec.strategy.traffic.mode is TrafficMode.REPLICAS
        return Observation(
            now=now,
            gates=gates,
            canary=canary_obs,
            replica_total=_total_replicas(primary) if replica_mode and primary else None,
            measurements=measurements,
            promotion_complete=promotion_complete,
            rollback_complete=rollback_complete,
            command=command,
            flag=flag,
        )

    def _lane_releases(self, lane: str) -> list[LaneRelease]:
        out = []
        for raw in self.caches.releases():
            if _spec(raw).get("lane") == lane:
                rel = _parse_release(raw)
                if rel is not None:
                    out.append(rel)
        return out

    def _analysis_due(
        self,
        lane: ChangeLane,
        rel: LaneRelease,
        now: datetime,
        canary: CanaryObservation | None,
    ) -> bool:
        step = lane.spec.strategy.steps[rel.status.current_step]
        if not step.analysis:
            return False
        if not lane.spec.strategy.flag_only and (canary is None or not canary.ready):
            return False
        last = rel.status.last_analysis_at
        interval = parse_duration(lane.spec.analysis.interval)
        return last is None or (now - last).total_seconds() >= interval - 0.5

    def _canary(self, dep: JsonDict) -> CanaryObservation:
        desired = int(_spec(dep).get("replicas") or 0)
        status = dep.get("status") or {}
        ready = int(status.get("readyReplicas") or 0)
        crash = None
        if desired > 0 and ready < desired:
            crash = self._crash_reason(dep)
        return CanaryObservation(desired_replicas=desired, ready_replicas=ready, crash_reason=crash)

    def _crash_reason(self, dep: JsonDict) -> str | None:
        meta = _meta(dep)
        labels = (_spec(dep).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        selector += f",{mech.TRACK_LABEL}!=primary" if selector else f"{mech.TRACK_LABEL}!=primary"
        try:
            pods = self.api.list_pods(meta["namespace"], selector)
        except Exception:
            log.warning("could not list canary pods", workload=meta.get("name"))
            return None
        for pod in pods:
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (cs.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in (
                    "CrashLoopBackOff",
                    "ImagePullBackOff",
                    "ErrImagePull",
                    "CreateContainerConfigError",
                ):
                    last = (cs.get("lastState") or {}).get("terminated") or {}
                    detail = last.get("reason") or waiting.get("message") or ""
                    return f"{waiting['reason']}: {detail}".rstrip(": ")
        return None

    def _canary_gone(self, lane: ChangeLane, rel: LaneRelease, dep: JsonDict | None) -> bool:
        if shadow_mode(lane):
            return True  # nothing was ever exposed by the controller
        if self._ramps_flag(lane, rel):
            assert self.flags is not None
            if (self.flags.weight(lane, rel) or 0) != 0:
                return False
        if _native(lane) or dep is None:
            return True
        if lane.spec.strategy.traffic.mode is TrafficMode.GATEWAY_API:
            route = lane.spec.strategy.traffic.http_route
            meta = _meta(dep)
            try:
                current = self.api.get_http_route(meta["namespace"], route or "")
            except NotFoundError:
                current = {}
            refs = ((_spec(current).get("rules") or [{}])[0]).get("backendRefs") or []
            canary = f"{meta['name']}-canary"
            if any(r.get("name") == canary and int(r.get("weight") or 0) > 0 for r in refs):
                return False
        return int(_spec(dep).get("replicas") or 0) == 0

    # ------------------------------------------------------------------ converge

    def _converge(
        self,
        lane: ChangeLane,
        rel: LaneRelease,
        decision: ReleaseDecision,
        dep: JsonDict,
        primary: JsonDict,
    ) -> None:
        self.api.fence()  # flag writes go through their own client: fence them here
        status = decision.status
        total = _total_replicas(primary)
        serving = status.phase in _CANARY_SERVES
        weight = status.weight if serving else 0
        # Flag first on the way down: it is the fastest lever and needs no pod. (A lane
        # may ask for replicas first with rollback.flagOffFirst: false.)
        flag_last = weight == 0 and not lane.spec.rollback.flag_off_first
        if not flag_last:
            self._converge_flag(lane, rel, status)
        if status.phase is Phase.PROMOTING or status.phase is Phase.PROMOTED:
            self._promote(rel, dep, primary)
        if not lane.spec.strategy.flag_only:
            replicas = mech.canary_replicas(total, weight)
            if status.phase is Phase.PROMOTED:
                replicas = 0
            if lane.spec.strategy.traffic.mode is TrafficMode.GATEWAY_API:
                self._route_weights(lane, dep, 0 if status.phase is Phase.PROMOTED else weight)
                self._scale(dep, replicas)
            else:
                promoting = status.phase in (Phase.PROMOTING, Phase.PROMOTED)
                self._move_pods(lane, dep, primary, weight, promoting=promoting)
        if flag_last:
            self._converge_flag(lane, rel, status)

    def _ramps_flag(self, lane: ChangeLane, rel: LaneRelease) -> bool:
        return (
            self.flags is not None
            and rel.spec.flag is not None
            and lane.spec.strategy.flag_ramp is not None
            and not shadow_mode(lane)
        )

    def _converge_flag(self, lane: ChangeLane, rel: LaneRelease, status: LaneReleaseStatus) -> None:
        """The release's flag to the weight its status says. Paused holds it where it is;
        a release that never started never touches it."""
        if not self._ramps_flag(lane, rel):
            return
        assert self.flags is not None
        phase = status.phase
        if phase is Phase.PROGRESSING:
            refused = self.flags.set_weight(lane, rel, status.weight)
        elif phase in (Phase.PROMOTING, Phase.PROMOTED):
            refused = self.flags.set_weight(lane, rel, 100)
        elif phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK):
            refused = self.flags.disable(lane, rel)
        else:
            return
        if refused:
            # Not fought: the next observation pauses the release with this reason.
            log.warning("flag write not applied", release=rel.name, reason=refused[:500])

    def _rollout(self, dep: JsonDict, rel: LaneRelease) -> CanaryObservation:
        """A natively rolled-out workload's state, as the canary observation of shadow and
        flag-only lanes: ready once every replica runs the release's template."""
        desired = int(_spec(dep).get("replicas") or 0)
        on_release = mech.template_hash(_spec(dep)["template"]) == (
            rel.spec.to_revision.pod_template_hash
        )
        ready = desired if on_release and _rolled_out(dep) else 0
        crash = self._crash_reason(dep) if ready < desired else None
        return CanaryObservation(desired_replicas=desired, ready_replicas=ready, crash_reason=crash)

    def _report_flag_source(self, lane: ChangeLane, gates: GateReport) -> None:
        """A flag source that stopped parsing: the last good definitions stay in force, and
        the lane says so (a Warning event on the ChangeLane, once per distinct error)."""
        for result in gates.results:
            if result.gate != FLAG_SOURCE or not result.reason:
                continue
            key = ("flag-source", f"{lane.name}:{result.reason}")
            if key not in self._warned:
                raw = next(
                    (r for r in self.caches.lanes() if _meta(r).get("name") == lane.name), None
                )
                if raw is not None:
                    self._event(raw, "FlagSourceError", result.reason, "Warning")
            self._warn_once(key, "flag source error", lane=lane.name, error=result.reason)

    def _promote(self, rel: LaneRelease, dep: JsonDict, primary: JsonDict) -> None:
        to_hash = mech.template_hash(_spec(dep)["template"])
        if to_hash != rel.spec.to_revision.pod_template_hash:
            return  # the canary now runs another template: never promote what was not judged
        if _template_hash_of(primary) == to_hash:
            return
        meta = _meta(primary)
        self.api.patch_deployment(
            meta["namespace"],
            meta["name"],
            {
                "metadata": {"annotations": {mech.TEMPLATE_HASH_ANNOTATION: to_hash}},
                "spec": {"template": mech.promoted_template(primary, _spec(dep)["template"])},
            },
        )

    def _route_weights(self, lane: ChangeLane, dep: JsonDict, weight: int) -> None:
        meta = _meta(dep)
        route = lane.spec.strategy.traffic.http_route
        if route is None:
            return
        name = meta["name"]
        try:
            current = self.api.get_http_route(meta["namespace"], route)
        except NotFoundError:
            self._warn_once(
                ("route-missing", f"{meta['namespace']}/{route}"),
                "HTTPRoute not found",
                route=route,
            )
            return
        rules = _spec(current).get("rules") or [{}]
        # Keep the port the route's author gave its backend (the Services' port).
        port = next((r.get("port") for r in rules[0].get("backendRefs") or [] if r.get("port")), 80)
        refs = [
            {"name": mech.primary_name(name), "port": port, "weight": 100 - weight},
            {"name": f"{name}-canary", "port": port, "weight": weight},
        ]
        if (rules[0].get("backendRefs") or []) != refs:
            rules = [{**rules[0], "backendRefs": refs}, *rules[1:]]
            self.api.patch_http_route(meta["namespace"], route, {"spec": {"rules": rules}})

    def _dark(self, lane: ChangeLane, dep: JsonDict) -> None:
        """No traffic to the canary: route weights back to the primary, no replicas."""
        if lane.spec.strategy.traffic.mode is TrafficMode.GATEWAY_API:
            self._route_weights(lane, dep, 0)
            self._scale(dep, 0)
            return
        meta = _meta(dep)
        primary = self.caches.deployment(meta["namespace"], mech.primary_name(meta["name"]))
        if primary is None:
            self._scale(dep, 0)
            return
        self._move_pods(lane, dep, primary, 0, promoting=False)

    def _move_pods(
        self, lane: ChangeLane, dep: JsonDict, primary: JsonDict, weight: int, *, promoting: bool
    ) -> None:
        """Replica mode: the primary and the canary share the workload's replicas by
        ``weight`` (docs/traffic-shares.md), moving pods without the ready pods of both
        falling below the lane's minimum. Promoting, the primary (now on the canary's
        template) grows back to every replica before the canary lets go."""
        total = _total_replicas(primary)
        traffic = lane.spec.strategy.traffic
        target = split_for(
            total, weight, surge=traffic.surge, keep_baseline=lane.compares_to_baseline
        )
        if promoting:
            target = ReplicaSplit(total, target.canary if weight else 0)
        safe = availability_safe(
            target,
            total=total,
            max_unavailable=traffic.max_unavailable,
            primary_ready=ready_replicas(primary),
            canary_ready=ready_replicas(dep),
        )
        # Grow first, then shrink: whichever copy grows is asked before the other shrinks.
        if safe.primary > int(_spec(primary).get("replicas") or 0):
            self._scale(primary, safe.primary)
            self._scale_canary(dep, safe.canary)
        else:
            self._scale_canary(dep, safe.canary)
            self._scale(primary, safe.primary)

    def _scale_canary(self, dep: JsonDict, replicas: int) -> None:
        """Scale the canary; its pods get the ``track: canary`` label on the way up."""
        labels = (_spec(dep).get("template", {}).get("metadata") or {}).get("labels") or {}
        if replicas == 0 or labels.get(mech.METRICS_TRACK_LABEL) == mech.CANARY_TRACK:
            self._scale(dep, replicas)
            return
        meta = _meta(dep)
        patch = {
            "spec": {
                "replicas": replicas,
                "template": {"metadata": {"labels": {mech.METRICS_TRACK_LABEL: mech.CANARY_TRACK}}},
            }
        }
        self.api.patch_deployment(meta["namespace"], meta["name"], patch)
        dep.setdefault("spec", {})["replicas"] = replicas

    def _scale(self, dep: JsonDict, replicas: int) -> None:
        if int(_spec(dep).get("replicas") or 0) == replicas:
            return
        meta = _meta(dep)
        self.api.patch_deployment(meta["namespace"], meta["name"], {"spec": {"replicas": replicas}})
        dep.setdefault("spec", {})["replicas"] = replicas  # our cached copy, until the watch

    # ------------------------------------------------------------------ records

    def _flush(self, records: Sequence[Any], involved: JsonDict | None = None) -> bool:
        """Send records to every sink; False when one could not take them (the durable
        log, typically), in which case the caller must not act on the decision."""
        ok = True
        for record in records:
            for sink in self.sinks:
                try:
                    sink.emit(record)
                except Exception:
                    ok = False
                    log.exception("audit sink failed", sink=type(sink).__name__, record=record.id)
            if involved is not None:
                reason, kind = event_for(record.decision.value)
                if reason:
                    self._event(
                        involved, reason, record.reason, kind, annotations=event_annotations(record)
                    )
        return ok

    def _event(
        self,
        involved: JsonDict,
        reason: str,
        message: str,
        kind: str = "Normal",
        annotations: dict[str, str] | None = None,
    ) -> None:
        try:
            self.api.emit_event(involved, reason, message, kind, annotations=annotations)
        except Exception:
            log.warning("could not emit event", reason=reason)

    def _clear_command(self, namespace: str, name: str) -> None:
        self.api.remove_release_annotation(namespace, name, COMMAND_ANNOTATION)


# ---------------------------------------------------------------------- helpers


def _status_wire(status: LaneReleaseStatus) -> JsonDict:
    wire: JsonDict = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return wire


def _status_patch(new: JsonDict, stored: JsonDict) -> JsonDict:
    """A merge patch from the stored status to ``new``: a field the new status no longer
    has (gateReason, lastAnalysisAt, ...) is sent as null, which deletes it."""
    return {**{key: None for key in stored if key not in new}, **new}


def _parse_lane(raw: JsonDict) -> ChangeLane:
    """The lane with its status (suspension, resumedAt). A status that does not parse does
    not hide a valid lane; it is dropped, keeping only a suspension (fail safe)."""
    try:
        return ChangeLane.model_validate(raw)
    except ValidationError:
        lane = ChangeLane.model_validate({k: v for k, v in raw.items() if k != "status"})
        if (raw.get("status") or {}).get("suspended") is True:
            lane.status = ChangeLaneStatus(
                suspended=True, suspended_reason="suspended (the lane status does not parse)"
            )
        return lane


def _native(lane: ChangeLane) -> bool:
    """Lanes whose workloads the controller does not adopt (no primary/canary split)."""
    return shadow_mode(lane) or lane.spec.strategy.flag_only


def _parse_release(raw: JsonDict) -> LaneRelease | None:
    try:
        return LaneRelease.model_validate(raw)
    except ValidationError:
        return None


def _template_hash_of(dep: JsonDict) -> str | None:
    value = (_meta(dep).get("annotations") or {}).get(mech.TEMPLATE_HASH_ANNOTATION)
    return str(value) if value is not None else None


def _total_replicas(primary: JsonDict) -> int:
    annotated = (_meta(primary).get("annotations") or {}).get(mech.TOTAL_REPLICAS_ANNOTATION)
    try:
        return max(1, int(annotated)) if annotated else int(_spec(primary).get("replicas") or 1)
    except ValueError:
        return int(_spec(primary).get("replicas") or 1)


def _rolled_out(dep: JsonDict) -> bool:
    return rollout_complete(dep)


def _command_from(raw: JsonDict | None) -> HumanCommand | None:
    """A human command left on the release as ``changelane.dev/command: verb by who``."""
    if raw is None:
        return None
    text = (_meta(raw).get("annotations") or {}).get(COMMAND_ANNOTATION)
    if not text:
        return None
    verb, _, rest = str(text).partition(" ")
    actor = rest.removeprefix("by ").strip() or "unknown"
    try:
        return HumanCommand(CommandKind(verb), actor)
    except ValueError:
        return None
