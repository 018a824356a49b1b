"""Reconcile: read state, ask the pure core, write status, converge the world to it.

The ``Reconciler`` is the entry point per kind of key, and wires the parts, each in its
own module:

- ``adoption``: a lane takes a workload in; a new pod template becomes a LaneRelease.
- ``observation``: what the core needs to decide (gates, canary, flag, measurements).
- ``commit``: the crash-safe order of a release reconcile (status, record, act, clear).
- ``converge``: replicas, route weights, flag exposure and the primary's template.
- ``lanes``: the lanes' own conditions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import structlog
from pydantic import ValidationError

from controller.adapters.audit.sink import AuditSink
from controller.core.gates.lane import release_spec_from_template
from controller.core.models import ChangeLane, Condition, ConditionStatus, LaneRelease
from controller.core.models.common import conditions_from_wire, set_condition
from controller.core.models.release import TERMINAL_PHASES
from controller.core.packed_status import unpacked
from controller.runtime.adoption import Adoption
from controller.runtime.commit import ReleaseCommit, superseded
from controller.runtime.converge import Converger
from controller.runtime.deployment_writes import DeploymentWrites
from controller.runtime.indexes import ParseCache, parse_lane_or_none
from controller.runtime.lane_validity import (
    INVALID_REASON,
    invalid_lane_message,
    ready_false_conditions,
)
from controller.runtime.lanes import LaneConditions, flag_source_of
from controller.runtime.notices import Notices
from controller.runtime.objects import (
    Caches,
    Key,
    current_hash,
    meta,
    parse_lane,
    spec,
    utcnow,
)
from controller.runtime.observation import Observer
from controller.runtime.ports import (
    Analyzer,
    Cluster,
    FlagRamp,
    GateEvaluator,
    JsonDict,
    NotFoundError,
)
from controller.runtime.release_reads import ReleaseReads

__all__ = ["Caches", "Key", "Reconciler", "utcnow"]

log = structlog.get_logger("changelane.reconciler")

#: Seconds before looking again at a release whose lane does not exist.
LANE_MISSING_REQUEUE_S = 30.0
INVALID_CONDITION = "InvalidState"


class Reconciler:
    def __init__(
        self,
        api: Cluster,
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
        self.sinks = list(sinks)
        self.clock = clock
        self.instance = instance
        self.notices = Notices(api)
        self.converger = Converger(api, flags, self.notices, DeploymentWrites(caches.deployment))
        observer = Observer(api, caches, gates, analyzer, flags, self.notices, clock)
        self.observer = observer
        # A reconcile reads its release from the cache unless its own last write is not
        # there yet (runtime.release_reads); without a cache accessor, always a GET.
        cached = caches.release or (lambda namespace, name: None)
        self.release_reads = ReleaseReads(cached, api.get_release)
        self.commit = ReleaseCommit(
            api, caches, observer, self.converger, self.sinks, self.notices, clock
        )
        self.commit.written = self.release_reads.wrote
        self.adoption = Adoption(
            api,
            caches,
            self.converger,
            self.notices,
            supersede=self._supersede,
            release_spec=provenance_from or release_spec_from_template,
        )
        self.lane_conditions = LaneConditions(api, caches, clock, self.adoption.workloads)
        self._lane_cache: ParseCache[ChangeLane | ValidationError] = ParseCache(
            parse_lane_or_none(parse_lane)
        )
        self.gates = gates

    def lanes(self) -> dict[str, ChangeLane]:
        """Valid lanes by name; an invalid one is reported and skipped, never fatal."""
        out: dict[str, ChangeLane] = {}
        for raw in self.caches.lanes():
            name = meta(raw).get("name", "?")
            parsed = self._lane_cache.parse(raw)  # once per resourceVersion
            if isinstance(parsed, ChangeLane):
                out[name] = parsed
            elif parsed is not None:
                message = invalid_lane_message(parsed)
                key = ("lane-invalid", f"{name}:{message}")
                if not self.notices.warned(key):
                    self._report_invalid_lane(raw, message)
                self.notices.warn_once(key, "lane is invalid; skipped", lane=name, error=message)
        return out

    def _report_invalid_lane(self, raw: JsonDict, message: str) -> None:
        """Ready=False and a Warning Event on a lane that got past the API but does not
        validate: where people look, not only in the controller's log."""
        conditions = ready_false_conditions(raw, message, self.clock())
        if conditions is not None:
            try:
                self.api.patch_lane_status(str(meta(raw).get("name")), {"conditions": conditions})
            except Exception as exc:  # the lane stays skipped either way; the log says why
                log.warning("could not record Ready=False", error=str(exc)[:300])
        self.notices.event(raw, INVALID_REASON, message, "Warning")

    def reconcile_deployment(self, namespace: str, name: str) -> float | None:
        return self.adoption.reconcile(self.lanes(), namespace, name)

    def reconcile_lane(self, name: str) -> float | None:
        """Keep the lane's ``WorkloadConflict`` condition true to its selector's overlaps."""
        return self.lane_conditions.reconcile(self.lanes(), name, flag_source_of(self.gates))

    def reconcile_release(self, namespace: str, name: str) -> float | None:
        try:
            raw = self.release_reads.read(namespace, name)
        except NotFoundError:
            return None
        rel = self.caches.parse_release(raw)
        if rel is None:
            self._unreadable_release(raw)
            return None
        lane = self.lanes().get(rel.spec.lane)
        if lane is None:
            self._lane_missing(rel)
            return LANE_MISSING_REQUEUE_S
        dep = self.caches.deployment(namespace, rel.spec.target.name)
        moved_on = (
            dep is not None
            and not rel.status.phase.terminal
            and current_hash(dep) != rel.spec.to_revision.pod_template_hash
        )
        extra = superseded() if moved_on else None
        return self.commit.run(lane, rel, extra_command=extra, raw=raw)

    def _supersede(self, lane: ChangeLane, rel: LaneRelease) -> float | None:
        """Abort ``rel`` (its workload moved on to another template), from the release as
        stored: the index's copy has no measurement history to write back."""
        ns = rel.spec.target.namespace
        try:
            raw = self.release_reads.read(ns, rel.name)
        except NotFoundError:
            return None
        whole = self.caches.parse_release(raw)
        if whole is None:
            return None  # its own reconcile reports what does not parse
        return self.commit.run(lane, whole, extra_command=superseded(), raw=raw)

    def _lane_missing(self, rel: LaneRelease) -> None:
        """Fail safe: no lane, no canary traffic."""
        if rel.status.phase.terminal:
            return
        namespace = rel.spec.target.namespace
        dep = self.caches.deployment(namespace, rel.spec.target.name)
        if dep is not None:
            self.converger.scale(dep, 0)
        self.notices.warn_once(
            ("lane-missing", f"{namespace}/{rel.name}"),
            "release's lane does not exist; canary held at zero",
            release=rel.name,
            lane=rel.spec.lane,
        )

    def _unreadable_release(self, raw: JsonDict) -> None:
        """A LaneRelease that does not even parse (edited by hand into nonsense): take its
        canary's traffic away, leave the primary alone and say which field is wrong."""
        raw_meta = meta(raw)
        ns, name = str(raw_meta.get("namespace")), str(raw_meta.get("name"))
        message = _parse_error(raw)
        if message is None:
            return
        status = raw.get("status") or {}
        if status.get("phase") in TERMINAL_PHASES:
            return  # finished: there is no traffic to take away
        target = spec(raw).get("target") or {}
        dep = self.caches.deployment(ns, str(target.get("name")))
        if dep is not None:
            self.converger.scale(dep, 0)
        current = conditions_from_wire(status.get("conditions"))
        if any(c.type == INVALID_CONDITION and c.message == message for c in current):
            return
        invalid = Condition(
            type=INVALID_CONDITION,
            status=ConditionStatus.TRUE,
            reason="Unreadable",
            message=message[:32768],
            last_transition_time=self.clock(),
        )
        conditions = [c.to_wire() for c in set_condition(current, invalid)]
        log.warning("LaneRelease does not parse; canary held at zero", release=name, error=message)
        self.notices.event(raw, INVALID_CONDITION, message, "Warning")
        try:
            self.api.patch_release_status(ns, name, {"conditions": conditions}, None)
        except Exception as exc:  # the schema may refuse even this: the log says why
            log.warning("could not record InvalidState", release=name, error=str(exc)[:300])


def _parse_error(raw: JsonDict) -> str | None:
    """Where the release fails to parse, for on-call; None when it parses."""
    try:
        LaneRelease.model_validate(unpacked(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}; canary held at zero, primary untouched"
    return None
