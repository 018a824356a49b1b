"""Each lane's per-agent autonomy levels, kept in its status and announced once per change.

The levels are derived (``controller.core.autonomy.levels.replay``) from the lane's
LaneReleases in the cluster and the humans' pins in the lane's status, so a restarted or
newly elected controller derives the same levels without any state of its own. The status
field ``agents`` caches the result: when a pair's level (or pin) differs from what the
status says, the change is announced - an audit record with the figures that caused it
(its id is derived from the change, so a repeat after a crash is dropped by the sinks),
an Event on the ChangeLane and a log line - and then the status is written. The status
is what marks a change announced, so a pair whose record a sink could not take keeps its
stored entry and is announced again on the next try (``runtime.lane_records``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from controller.adapters.audit.sink import AuditSink
from controller.core.audit import AuditRecord, Decision
from controller.core.autonomy.labels import fold_labels, tracked_pairs
from controller.core.autonomy.levels import LevelChange, Pin, replay
from controller.core.autonomy.record import outcome_of_release, track_records
from controller.core.formatting import iso_z
from controller.core.gates.provenance import author_allowed
from controller.core.models import ChangeLane, ChangeLaneStatus, LaneRelease
from controller.runtime.lane_records import LANE_RECORD_RETRY_S, send_record
from controller.runtime.metrics import ControllerMetrics
from controller.runtime.ports import Cluster, JsonDict

log = structlog.get_logger("changelane.autonomy")


def _event_reason(change: LevelChange) -> str:
    if change.reason.startswith(("pinned", "reset")):
        return "AgentLevelPinned" if change.reason.startswith("pinned") else "AgentLevelReset"
    return "AgentGraduated" if change.to_level.rank > change.from_level.rank else "AgentDemoted"


class AgentLevels:
    def __init__(
        self,
        api: Cluster,
        sinks: Sequence[AuditSink],
        metrics: ControllerMetrics | None,
        clock: Callable[[], datetime],
        instance: str,
    ) -> None:
        self.api = api
        self.sinks = list(sinks)
        self.metrics = metrics
        self.clock = clock
        self.instance = instance

    def reconcile(
        self, lane: ChangeLane, raw: JsonDict, releases: list[LaneRelease]
    ) -> float | None:
        """Announce and store each pair's level; seconds to try again when a sink could
        not take a change's record."""
        outcomes = [outcome_of_release(r) for r in releases]
        tracked = tracked_pairs(lane, outcomes)
        if self.metrics is not None:
            records = track_records(fold_labels(outcomes, tracked))
            self.metrics.publish_track_records(lane.name, records.values())
        spec = lane.spec.gates.agent_autonomy
        if spec is None:
            return None
        status = lane.status or ChangeLaneStatus()
        # Only authors the lane allows hold a level: an unknown identity mints no state.
        allowed = [o for o in outcomes if author_allowed(lane, o.agent, o.model)]
        pins = [Pin(p.agent, p.model, p.level, p.by, p.at, p.reason) for p in status.agent_pins]
        standings, changes = replay(spec, allowed, pins)
        if self.metrics is not None:
            self.metrics.publish_levels(
                lane.name, [s for key, s in standings.items() if key in tracked]
            )
        stored = {(a.agent, a.model): a for a in status.agents}
        latest = {(c.agent, c.model): c for c in changes}
        wanted: list[JsonDict] = []
        unannounced = False
        for key, standing in sorted(standings.items()):
            before = stored.get(key)
            moved = before is None or (before.level, before.pinned_by) != (
                standing.level,
                standing.pinned_by,
            )
            if moved and key in latest and not self._announce(lane, raw, latest[key]):
                unannounced = True
                if before is not None:
                    wanted.append(before.to_wire())
                continue
            wanted.append(standing.to_wire())
        if wanted != [a.to_wire() for a in status.agents]:
            self.api.patch_lane_status(lane.name, {"agents": wanted})
        return LANE_RECORD_RETRY_S if unannounced else None

    def _announce(self, lane: ChangeLane, raw: JsonDict, change: LevelChange) -> bool:
        """Record, log and tell the lane's Event stream of ``change``; False when a sink
        could not take the record (nothing else is done then)."""
        who = f"agent {change.agent} (model {change.model})"
        message = f"{who}: {change.from_level} -> {change.to_level}: {change.reason}"
        figures = ", ".join(f"{k}={v}" for k, v in change.figures)
        key = lane.metadata.uid or lane.name
        record = AuditRecord(
            id=f"{key}/autonomy/{change.agent}/{change.model}/{iso_z(change.at)}",
            time=change.at,
            lane=lane.name,
            decision=Decision.AUTONOMY_CHANGED,
            reason=message,
            message=figures,
            actor=str(dict(change.figures).get("by", "controller")),
            instance=self.instance,
        )
        if not send_record(self.sinks, record):
            return False
        log.warning(
            "agent autonomy level changed",
            lane=lane.name,
            agent=change.agent,
            model=change.model,
            level_from=change.from_level.value,
            level_to=change.to_level.value,
            reason=change.reason,
            figures=figures,
        )
        try:
            self.api.emit_event(raw, _event_reason(change), message, "Normal")
        except Exception:
            log.warning("could not emit event", reason=_event_reason(change), lane=lane.name)
        return True
