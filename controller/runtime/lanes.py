"""A lane's own status: its conditions about the workloads it selects, and suspension.

``LaneConditions`` keeps the ``WorkloadConflict`` condition true to the overlaps of the
lane's selector with other lanes' (a workload belongs to one lane). ``LaneReconciler``
runs suspension: the autonomy budget suspends a lane; a human resumes it.

Level-triggered, so a restart anywhere is safe. Each reconcile of a lane:

1. **Budget.** Unless the lane is already suspended, the outcomes of its releases that
   finished after ``status.resumedAt`` go through ``autonomy_budget_decision``; when the
   budget is spent, the status becomes ``suspended`` with the reason and ``suspendedAt``
   (a write conditional on the resourceVersion read, so a concurrent human resume wins).
2. **Announce.** The ``Suspended`` condition says which suspension or resumption has been
   announced (its ``lastTransitionTime`` is ``suspendedAt`` or ``resumedAt``). When the
   status holds a newer one, the controller emits the ``lane_suspended``/``lane_resumed``
   audit record (id derived from that time, so a repeat after a crash is dropped by the
   sinks) and an Event, then sets the condition.

``changelane lanes resume`` only writes ``suspended: false``, ``resumedAt`` and
``resumedBy``; the record of it, with the human's identity, is written here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog
from pydantic import ValidationError

from controller.adapters.audit.cluster import event_annotations, lane_record_id
from controller.adapters.audit.sink import AuditSink
from controller.core import canary as mech
from controller.core.audit import AuditRecord, Decision
from controller.core.formatting import iso_z
from controller.core.gates import flag_source
from controller.core.gates.flag_source import FlagSourceState
from controller.core.gates.lane import finished_outcomes
from controller.core.gates.policy import autonomy_budget_decision, lane_budget_applies
from controller.core.models import (
    ChangeLane,
    ChangeLaneStatus,
    Condition,
    ConditionStatus,
    LaneRelease,
)
from controller.core.models.common import set_condition
from controller.runtime.agent_levels import AgentLevels
from controller.runtime.lane_capacity import CONDITION as LIMIT_CONDITION
from controller.runtime.lane_capacity import LaneWorkloads
from controller.runtime.lane_records import LANE_RECORD_RETRY_S, send_record
from controller.runtime.metrics import ControllerMetrics
from controller.runtime.objects import Caches, meta, releases_in_lane
from controller.runtime.ports import Cluster, ConflictError, JsonDict, NotFoundError

log = structlog.get_logger("changelane.lanes")

SUSPENDED_CONDITION = "Suspended"
CONFLICT_CONDITION = "WorkloadConflict"
HUMAN_SUSPENSION = "suspended by a human (status.suspended set by hand)"


def utcnow() -> datetime:
    return datetime.now(UTC)


def flag_source_of(gates: object) -> FlagSourceState | None:
    """The flag source health the gate evaluator reports (unwrapping instrumentation that
    wraps it as ``inner``), if it reports one."""
    for _ in range(5):
        report = getattr(gates, "flag_source", None)
        if callable(report):
            state = report()
            return state if isinstance(state, FlagSourceState) else None
        gates = getattr(gates, "inner", None)
    return None


class LaneConditions:
    """The ``WorkloadConflict`` condition of each lane."""

    def __init__(
        self,
        api: Cluster,
        caches: Caches,
        clock: Callable[[], datetime],
        workloads: LaneWorkloads | None = None,
    ) -> None:
        self.api = api
        self.caches = caches
        self.clock = clock
        self.workloads = workloads

    def reconcile(
        self,
        lanes: dict[str, ChangeLane],
        name: str,
        flag_source_state: FlagSourceState | None = None,
    ) -> float | None:
        lane = lanes.get(name)
        if lane is None:
            return None
        conflicts = self._conflicts(lanes, lane)
        if conflicts:
            message = "not adopted: " + "; ".join(sorted(conflicts))
            self._set(lane, CONFLICT_CONDITION, ConditionStatus.TRUE, "SelectorOverlap", message)
        else:
            message = "every workload this lane selects is its own"
            self._set(lane, CONFLICT_CONDITION, ConditionStatus.FALSE, "NoOverlap", message)
        self._set(lane, "Ready", ConditionStatus.TRUE, "Valid", "the lane's spec is valid")
        if self.workloads is not None:
            if self.workloads.refused(lane.name):
                message = self.workloads.message(lane.name)
                self._set(lane, LIMIT_CONDITION, ConditionStatus.TRUE, "TooManyWorkloads", message)
            else:
                message = f"manages every workload it selects (limit {self.workloads.limit})"
                self._set(lane, LIMIT_CONDITION, ConditionStatus.FALSE, "WithinLimit", message)
        if flag_source_state is None:
            return None
        value, reason, message = flag_source.lane_condition(flag_source_state)
        self._set(lane, flag_source.CONDITION, ConditionStatus(value), reason, message)
        return flag_source.recheck_after(flag_source_state)

    def _conflicts(self, lanes: dict[str, ChangeLane], lane: ChangeLane) -> list[str]:
        """Workloads the lane selects that are not its own, and why."""
        conflicts: list[str] = []
        if len(lanes) < 2:
            return conflicts  # an overlap needs two lanes: skip the scan of every Deployment
        for dep in self.caches.deployments():
            dep_meta = meta(dep)
            if mech.is_primary(dep):
                continue
            ns, labels = str(dep_meta.get("namespace")), dep_meta.get("labels") or {}
            if not mech.lane_selects(lane, ns, labels):
                continue
            matching = [ln.name for ln in mech.lanes_for(list(lanes.values()), ns, labels)]
            owner = (dep_meta.get("annotations") or {}).get(mech.LANE_ANNOTATION)
            if len(matching) < 2 or owner == lane.name:
                continue
            if owner in matching:
                conflicts.append(f"{ns}/{dep_meta.get('name')} is already in lane {owner}")
            else:
                others = ", ".join(n for n in matching if n != lane.name)
                conflicts.append(
                    f"{ns}/{dep_meta.get('name')} is also selected by lane(s) {others}"
                )
        return conflicts

    def _set(
        self, lane: ChangeLane, type_: str, value: ConditionStatus, reason: str, message: str
    ) -> None:
        current = lane.status.conditions if lane.status is not None else []
        existing = next((c for c in current if c.type == type_), None)
        if existing is None and value is ConditionStatus.FALSE:
            return  # nothing to clear
        if existing is not None and (existing.status, existing.message) == (value, message):
            return
        condition = Condition(
            type=type_,
            status=value,
            reason=reason,
            message=message,
            last_transition_time=self.clock(),
            observed_generation=lane.metadata.generation,
        )
        conditions = set_condition(current, condition)
        self.api.patch_lane_status(lane.name, {"conditions": [c.to_wire() for c in conditions]})
        # The patch replaces the list: the next condition set in this reconcile builds on it.
        if lane.status is None:
            lane.status = ChangeLaneStatus()
        lane.status.conditions = conditions


class LaneReconciler:
    def __init__(
        self,
        api: Cluster,
        releases: Callable[[], list[JsonDict]],
        sinks: Sequence[AuditSink],
        metrics: ControllerMetrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        instance: str = "changelane",
        indexed_releases: Callable[[str], list[LaneRelease]] | None = None,
    ) -> None:
        self.api = api
        self.releases = releases
        self.indexed_releases = indexed_releases
        self.sinks = list(sinks)
        self.metrics = metrics
        self.clock = clock
        self.instance = instance
        self.agent_levels = AgentLevels(api, sinks, metrics, clock, instance)

    def reconcile(self, name: str) -> float | None:
        try:
            raw = self.api.get_lane(name)
        except NotFoundError:
            return None
        try:
            lane = ChangeLane.model_validate(raw)
        except ValidationError:
            return None  # the release reconciler reports invalid lanes
        status = lane.status or ChangeLaneStatus()
        rv = lane.metadata.resource_version
        try:
            raw, status = self._apply_budget(lane, raw, status, rv)
        except ConflictError:
            return 0.5  # someone (a human resume?) wrote first: look again
        retry = self._announce(lane, raw, status)
        if self.metrics is not None:
            self.metrics.set_lane_suspended(lane.name, status.suspended)
        try:
            levels_retry = self.agent_levels.reconcile(lane, raw, self.lane_releases(lane.name))
        except ConflictError:
            return 0.5
        retries = [r for r in (retry, levels_retry) if r is not None]
        return min(retries) if retries else None

    # ------------------------------------------------------------------ budget

    def lane_releases(self, lane: str) -> list[LaneRelease]:
        if self.indexed_releases is not None:
            return self.indexed_releases(lane)
        return releases_in_lane(self.releases(), lane)

    def _apply_budget(
        self, lane: ChangeLane, raw: JsonDict, status: ChangeLaneStatus, rv: str | None
    ) -> tuple[JsonDict, ChangeLaneStatus]:
        now = self.clock()
        patch: JsonDict = {}
        if status.suspended and status.suspended_at is None:
            # Suspended by hand: date it, so that its announcement has a stable id.
            patch = {"suspendedAt": iso_z(now)}
            if not status.suspended_reason:
                patch["suspendedReason"] = HUMAN_SUSPENSION
        elif not status.suspended and lane_budget_applies(lane):
            outcomes = finished_outcomes(self.lane_releases(lane.name), status.resumed_at)
            decision = autonomy_budget_decision(lane.spec.gates.autonomy_budget, outcomes)
            if not decision.suspend:
                return raw, status
            patch = {
                "suspended": True,
                "suspendedReason": f"autonomy budget spent: {decision.reason}",
                "suspendedAt": iso_z(now),
            }
            log.warning("lane suspended", lane=lane.name, reason=decision.reason)
        if not patch:
            return raw, status
        written = self.api.patch_lane_status(lane.name, patch, rv)
        fresh = ChangeLane.model_validate(written)
        return written, fresh.status or ChangeLaneStatus()

    # ------------------------------------------------------------------ announce

    def _announce(self, lane: ChangeLane, raw: JsonDict, status: ChangeLaneStatus) -> float | None:
        """Announce a suspension or resumption once; seconds to try again when a sink
        could not take its record."""
        current = next((c for c in status.conditions if c.type == SUSPENDED_CONDITION), None)
        if status.suspended:
            at = status.suspended_at or self.clock()
            wanted = (ConditionStatus.TRUE, at)
            reason_code = (
                "AutonomyBudgetSpent"
                if "budget" in (status.suspended_reason or "")
                else "Suspended"
            )
            message = status.suspended_reason or "suspended"
        elif status.resumed_at is not None:
            at = status.resumed_at
            wanted = (ConditionStatus.FALSE, at)
            reason_code = "Resumed"
            message = f"resumed by {status.resumed_by or 'unknown'}"
        else:
            if current is None:
                self._set_condition(
                    lane, status, ConditionStatus.FALSE, "NotSuspended", "", self.clock()
                )
            return None
        if current is not None and (current.status, current.last_transition_time) == wanted:
            return None
        record = self._record(lane, status, at, message)
        if not send_record(self.sinks, record):
            # The condition is what marks the change announced: leave it, try again.
            return LANE_RECORD_RETRY_S
        event_type = "Warning" if status.suspended else "Normal"
        event_reason = "LaneSuspended" if status.suspended else "LaneResumed"
        try:
            self.api.emit_event(
                raw, event_reason, message, event_type, annotations=event_annotations(record)
            )
        except Exception:
            log.warning("could not emit event", reason=event_reason, lane=lane.name)
        self._set_condition(lane, status, wanted[0], reason_code, message, at)
        return None

    def _record(
        self, lane: ChangeLane, status: ChangeLaneStatus, at: datetime, message: str
    ) -> AuditRecord:
        key = lane.metadata.uid or lane.name
        if status.suspended:
            return AuditRecord(
                id=lane_record_id(key, Decision.LANE_SUSPENDED, at),
                time=at,
                lane=lane.name,
                decision=Decision.LANE_SUSPENDED,
                reason=message,
                message=f"releases wait as Gated until: changelane lanes resume {lane.name}",
                instance=self.instance,
            )
        who = status.resumed_by or "unknown"
        return AuditRecord(
            id=lane_record_id(key, Decision.LANE_RESUMED, at),
            time=at,
            lane=lane.name,
            decision=Decision.LANE_RESUMED,
            reason=message,
            message="the autonomy budget counts releases that finish from now on",
            actor=who,
            instance=self.instance,
        )

    def _set_condition(
        self,
        lane: ChangeLane,
        status: ChangeLaneStatus,
        value: ConditionStatus,
        reason: str,
        message: str,
        at: datetime,
    ) -> None:
        condition = Condition(
            type=SUSPENDED_CONDITION,
            status=value,
            reason=reason,
            message=message[:32768],
            last_transition_time=at,
            observed_generation=lane.metadata.generation,
        )
        # The time says which suspension or resumption was announced (see the module
        # docstring): it is the event's time, also when the status does not flip.
        updated = set_condition(status.conditions, condition, keep_transition_time=False)
        conditions = [c.to_wire() for c in updated]
        try:
            self.api.patch_lane_status(lane.name, {"conditions": conditions})
        except Exception:
            log.warning("could not set the lane condition", lane=lane.name)
