"""Observation: everything the core needs to decide a release's next step, read from the
world (gates, the canary's pods, the flag, measurements when an analysis is due) and
returned as one ``Observation``. Nothing here writes, except a best-effort Event when
the flag source breaks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import structlog

from controller.core import canary as mech
from controller.core.gates import GateReport, GateResult
from controller.core.gates.lane import FLAG_SOURCE
from controller.core.gates.policy import shadow_mode
from controller.core.models import (
    ChangeLane,
    LaneRelease,
    Measurement,
    Phase,
    TrafficMode,
    parse_duration,
)
from controller.core.release_machine import CanaryObservation, HumanCommand, Observation
from controller.runtime.converge import ramps_flag
from controller.runtime.notices import Notices
from controller.runtime.objects import (
    Caches,
    current_hash,
    meta,
    native,
    replicas,
    rolled_out,
    selector_of,
    spec,
    template_hash_of,
    total_replicas,
)
from controller.runtime.ports import (
    Analyzer,
    Cluster,
    FlagRamp,
    GateEvaluator,
    JsonDict,
    NotFoundError,
)

log = structlog.get_logger("changelane.reconciler")

#: Phases whose gates are evaluated (a release that moved on keeps its gate history).
GATED_PHASES = frozenset({Phase.PENDING, Phase.GATED, Phase.PROGRESSING, Phase.PAUSED})
#: Phases in which the release's flag is observed.
FLAG_PHASES = frozenset({Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING})
#: Container waiting reasons that mean the canary will not become ready by itself.
CRASH_REASONS = frozenset(
    {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError"}
)


class ScheduledMeasurements(Protocol):
    """Measurements a lane's analysis tick judged off the reconcile path
    (``runtime.lane_analysis``); a release's reconcile takes them instead of querying."""

    def take(self, lane: ChangeLane, release: LaneRelease) -> tuple[Measurement, ...]: ...


class Observer:
    #: When set, analysis runs on per-lane ticks and reconciles only take its results.
    scheduled: ScheduledMeasurements | None = None

    def __init__(
        self,
        api: Cluster,
        caches: Caches,
        gates: GateEvaluator,
        analyzer: Analyzer,
        flags: FlagRamp | None,
        notices: Notices,
        clock: Callable[[], datetime],
    ) -> None:
        self.api = api
        self.caches = caches
        self.gates = gates
        self.analyzer = analyzer
        self.flags = flags
        self.notices = notices
        self.clock = clock

    def observe(
        self,
        lane: ChangeLane,
        rel: LaneRelease,
        dep: JsonDict | None,
        primary: JsonDict | None,
        command: HumanCommand | None,
    ) -> Observation:
        now = self.clock()
        phase = rel.status.phase
        in_flight = phase is Phase.PROGRESSING  # only autonomy_off is read (core)
        gates = self._gates(lane, rel, now, in_flight) if phase in GATED_PHASES else None
        canary = self._canary_state(lane, rel, dep)
        flag = None
        if phase in FLAG_PHASES and self.flags is not None and ramps_flag(self.flags, lane, rel):
            flag = self.flags.observe(lane, rel)
        measurements: tuple[Measurement, ...] = ()
        if phase is Phase.PROGRESSING and self._analysis_due(lane, rel, now, canary):
            if self.scheduled is not None:
                measurements = self.scheduled.take(lane, rel)
            else:
                measurements = self._measure(lane, rel, now)
        # A ramped flag must be at 100% (or in someone else's hands, which is reported).
        flag_done = flag is None or flag.weight == 100 or flag.problem is not None
        replica_mode = (
            primary is not None
            and not native(lane)
            and not lane.spec.strategy.flag_only
            and lane.spec.strategy.traffic.mode is TrafficMode.REPLICAS
        )
        return Observation(
            now=now,
            gates=gates,
            canary=canary,
            replica_total=total_replicas(primary) if replica_mode and primary else None,
            measurements=measurements,
            promotion_complete=(
                phase is Phase.PROMOTING and self._template_done(lane, rel, primary) and flag_done
            ),
            rollback_complete=phase is Phase.ROLLING_BACK and self.canary_gone(lane, rel, dep),
            command=command,
            flag=flag,
        )

    # ------------------------------------------------------------------ gates

    def _gates(
        self, lane: ChangeLane, rel: LaneRelease, now: datetime, in_flight: bool = False
    ) -> GateReport:
        view = self.caches.gate_releases(lane.name)
        # In flight only finished releases are read (the lane's suspension), and this one
        # is not finished: the lane's view serves as it is, not copied per reconcile
        # (a list of 1,000 a reconcile, 15% of a replica's busy samples).
        others = view if in_flight else [r for r in view if r.name != rel.name]
        try:
            gates = self.gates.evaluate(lane, rel, now, others, in_flight=in_flight)
        except Exception as exc:  # fail closed: a gate that cannot be evaluated is shut
            log.exception("gate evaluation failed", release=rel.name)
            gates = GateReport((GateResult("evaluation", False, f"gates failed: {exc}"),))
        self._report_flag_source(lane, gates)
        return gates

    def _report_flag_source(self, lane: ChangeLane, gates: GateReport) -> None:
        """A flag source that stopped parsing: the last good definitions stay in force, and
        the lane says so (a Warning event on the ChangeLane, once per distinct error)."""
        for result in gates.results:
            if result.gate != FLAG_SOURCE or not result.reason:
                continue
            key = ("flag-source", f"{lane.name}:{result.reason}")
            if not self.notices.warned(key):
                raw = self.caches.lane(lane.name)
                if raw is not None:
                    self.notices.event(raw, "FlagSourceError", result.reason, "Warning")
            self.notices.warn_once(key, "flag source error", lane=lane.name, error=result.reason)

    # ------------------------------------------------------------------ analysis

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
        if self.scheduled is not None:
            return True  # the lane's tick decided it was due
        last = rel.status.last_analysis_at
        interval = parse_duration(lane.spec.analysis.interval)
        return last is None or (now - last).total_seconds() >= interval - 0.5

    def _measure(
        self, lane: ChangeLane, rel: LaneRelease, now: datetime
    ) -> tuple[Measurement, ...]:
        step = rel.status.current_step
        return tuple(
            self.analyzer.measure(lane, rel, check, now).model_copy(update={"step": step})
            for check in lane.spec.analysis.checks
        )

    # ------------------------------------------------------------------ workload

    def _canary_state(
        self, lane: ChangeLane, rel: LaneRelease, dep: JsonDict | None
    ) -> CanaryObservation | None:
        if dep is None:
            return None
        if native(lane):
            return self._rollout(dep, rel)
        desired = replicas(dep)
        ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
        crash = self._crash_reason(dep) if desired > 0 and ready < desired else None
        return CanaryObservation(desired_replicas=desired, ready_replicas=ready, crash_reason=crash)

    def _rollout(self, dep: JsonDict, rel: LaneRelease) -> CanaryObservation:
        """A natively rolled-out workload's state, as the canary observation of shadow and
        flag-only lanes: ready once every replica runs the release's template."""
        desired = replicas(dep)
        on_release = current_hash(dep) == rel.spec.to_revision.pod_template_hash
        ready = desired if on_release and rolled_out(dep) else 0
        crash = self._crash_reason(dep) if ready < desired else None
        return CanaryObservation(desired_replicas=desired, ready_replicas=ready, crash_reason=crash)

    def _crash_reason(self, dep: JsonDict) -> str | None:
        """Why the canary's pods do not start, from their containers' waiting state."""
        selector = selector_of(dep)
        selector += f",{mech.TRACK_LABEL}!=primary" if selector else f"{mech.TRACK_LABEL}!=primary"
        try:
            pods = self.api.list_pods(meta(dep)["namespace"], selector)
        except Exception:
            log.warning("could not list canary pods", workload=meta(dep).get("name"))
            return None
        for pod in pods:
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (cs.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in CRASH_REASONS:
                    last = (cs.get("lastState") or {}).get("terminated") or {}
                    detail = last.get("reason") or waiting.get("message") or ""
                    return f"{waiting['reason']}: {detail}".rstrip(": ")
        return None

    def _template_done(self, lane: ChangeLane, rel: LaneRelease, primary: JsonDict | None) -> bool:
        """The primary runs the release's template everywhere (native: it rolled itself)."""
        if native(lane):
            return True
        return (
            primary is not None
            and template_hash_of(primary) == rel.spec.to_revision.pod_template_hash
            and rolled_out(primary)
        )

    def canary_gone(self, lane: ChangeLane, rel: LaneRelease, dep: JsonDict | None) -> bool:
        """A rollback is complete: no flag exposure, no route weight, no canary replicas."""
        if shadow_mode(lane):
            return True  # nothing was ever exposed by the controller
        flags = self.flags
        if flags is not None and ramps_flag(flags, lane, rel) and flags.weight(lane, rel):
            return False
        if native(lane):
            return True
        if dep is None:
            # Missing from the cache: "deleted" once the informer has synced, but a rollback
            # that declares the canary gone must not rest on a cache; ask the API server.
            target = rel.spec.target
            try:
                dep = self.api.get_deployment(target.namespace, target.name)
            except NotFoundError:
                return True
        if self._route_still_weighted(lane, dep):
            return False
        return replicas(dep) == 0

    def _route_still_weighted(self, lane: ChangeLane, dep: JsonDict) -> bool:
        if lane.spec.strategy.traffic.mode is not TrafficMode.GATEWAY_API:
            return False
        route = lane.spec.strategy.traffic.http_route
        dep_meta = meta(dep)
        try:
            current = self.api.get_http_route(dep_meta["namespace"], route or "")
        except NotFoundError:
            current = {}
        refs = ((spec(current).get("rules") or [{}])[0]).get("backendRefs") or []
        canary = f"{dep_meta['name']}-canary"
        return any(r.get("name") == canary and int(r.get("weight") or 0) > 0 for r in refs)
