"""The commit protocol of one release reconcile: status, record, act, clear.

Order matters for crash safety. A release's status (the decision, with its audit records
in the outbox) is written first; then the outbox is flushed to the sinks (record before
acting: a decision the durable audit log could not take is not acted on); then the world
is converged to what the status says (replicas, route weights, flag exposure, the
primary's template); then the outbox is cleared. A controller killed anywhere in between
finds the decision in the status on restart, flushes the records again (the sinks drop ids
they already have) and converges again (idempotent). On a tick where nothing acts
(``core.outbox``: measurements only) the clear is left to the release's next status
write, and this process remembers it flushed them (``runtime.flushed``): one status write
per measurement instead of two. Nothing is promoted that the status
does not say was earned, and the status only says so after the core decided it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from controller.adapters.audit.cluster import event_annotations, event_for
from controller.adapters.audit.sink import AuditSink
from controller.core import canary as mech
from controller.core.audit import AuditRecord
from controller.core.commands import COMMAND_ANNOTATION, decode_command
from controller.core.models import ChangeLane, LaneRelease, LaneReleaseStatus
from controller.core.outbox import clears_at_once
from controller.core.release_machine import (
    CommandKind,
    HumanCommand,
    Observation,
    ReleaseDecision,
    decide,
    inconsistency,
)
from controller.runtime.converge import Converger
from controller.runtime.flushed import FlushedOutboxes
from controller.runtime.lane_records import send_record
from controller.runtime.notices import Notices
from controller.runtime.objects import Caches, meta, native
from controller.runtime.observation import Observer
from controller.runtime.ports import Cluster, ConflictError, JsonDict

log = structlog.get_logger("changelane.reconciler")

CONTROLLER_ACTOR = "changelane"
#: Seconds before trying again when an audit sink could not take a decision's records.
RECORD_RETRY_S = 5.0


def superseded() -> HumanCommand:
    """The controller's own abort of a release whose workload moved to another template."""
    return HumanCommand(CommandKind.ABORT, CONTROLLER_ACTOR, "superseded by another pod template")


class ReleaseCommit:
    def __init__(
        self,
        api: Cluster,
        caches: Caches,
        observer: Observer,
        converger: Converger,
        sinks: list[AuditSink],
        notices: Notices,
        clock: Callable[[], datetime],
    ) -> None:
        self.api = api
        self.caches = caches
        self.observer = observer
        self.converger = converger
        self.sinks = sinks  # shared with the Reconciler: a sink added there is used here
        self.notices = notices
        self.clock = clock
        #: Told of every status write (the server's answer), so a later read knows
        #: whether the cache has seen it yet (runtime.release_reads).
        self.written: Callable[[JsonDict], None] = lambda obj: None
        self.flushed = FlushedOutboxes()

    def run(
        self,
        lane: ChangeLane,
        rel: LaneRelease,
        extra_command: HumanCommand | None = None,
        raw: JsonDict | None = None,
    ) -> float | None:
        """Observe, decide, then status, record, act, clear. Returns the requeue delay."""
        ns = rel.spec.target.namespace
        stored_wire = status_wire(rel.status)
        held = bool(rel.status.outbox) and self.flushed.holds(ns, rel.name, rel.status.outbox)
        if rel.status.outbox:
            # Left by a quiet tick of this process (flushed already: ``held``), or by a
            # controller that stopped between committing a decision and recording it:
            # record it now (the sinks drop ids they already have).
            if not held:
                self.api.fence()  # only the leader replays: a lost lease leaves it to the next
                if not self.flush(rel.status.outbox, involved=raw):
                    return RECORD_RETRY_S
            rel = rel.model_copy(update={"status": rel.status.model_copy(update={"outbox": []})})
        dep = self.caches.deployment(ns, rel.spec.target.name)
        primary = self.caches.deployment(ns, mech.primary_name(rel.spec.target.name))
        command = extra_command or command_from(raw)
        if inconsistency(lane, rel.status) is None:
            obs = self.observer.observe(lane, rel, dep, primary, command)
        else:
            obs = Observation(now=self.clock())  # decide() contains it; nothing to measure
        decision = decide(lane, rel, obs)
        if held and not decision.status.phase.terminal:
            # A held outbox needs no write of its own (else the watch echo of the tick's
            # write would send one): the next write that carries records replaces it.
            stored_wire = status_wire(rel.status)
        try:
            rv = self._write_status(rel, decision.status, stored_wire)
        except ConflictError:
            log.info("status conflict; retrying from fresh state", release=rel.name)
            return 0.0
        # Record before acting: a decision the durable audit log could not take is not
        # acted on (it stays in the outbox and is retried).
        if decision.status.outbox and not self.flush(decision.status.outbox, involved=raw):
            return RECORD_RETRY_S
        self._act(lane, rel, decision, dep, primary)
        if decision.status.outbox and not clears_at_once(rel.status, decision.status):
            # Nothing acted: the next status write clears it, and nobody here flushes it again.
            self.flushed.remember(ns, rel.name, decision.status.outbox)
        elif decision.status.outbox:
            # Only the outbox changes (the write is conditional on the one above): the
            # rest of the status, measurement history included, is not sent again.
            self.flushed.forget(ns, rel.name)
            try:
                self.written(self.api.patch_release_status(ns, rel.name, {"outbox": []}, rv))
            except ConflictError:
                self.flushed.remember(ns, rel.name, decision.status.outbox)
                return 0.0  # recorded already; the next pass clears it
        if command is not None and raw is not None and command_from(raw) is not None:
            self.written(self.api.remove_release_annotation(ns, rel.name, COMMAND_ANNOTATION))
        return decision.requeue_after

    def _write_status(
        self, rel: LaneRelease, status: LaneReleaseStatus, stored_wire: JsonDict
    ) -> str | None:
        """Write the decided status if it changed; the resourceVersion to write on with."""
        rv = rel.metadata.resource_version
        wire = status_wire(status)
        if wire == stored_wire:
            return rv
        written = self.api.patch_release_status(
            rel.spec.target.namespace, rel.name, status_patch(wire, stored_wire), rv
        )
        self.written(written)
        return meta(written).get("resourceVersion", rv)

    def _act(
        self,
        lane: ChangeLane,
        rel: LaneRelease,
        decision: ReleaseDecision,
        dep: JsonDict | None,
        primary: JsonDict | None,
    ) -> None:
        if decision.shadow or rel.status.phase.terminal or dep is None:
            return
        if native(lane):
            self.converger.converge_flag(lane, rel, decision.status)  # flag-only: no replicas
        elif primary is not None:
            self.converger.converge(lane, rel, decision.status, dep, primary)

    def flush(self, records: Sequence[AuditRecord], involved: JsonDict | None = None) -> bool:
        """Send records to every sink; False when one could not take them (the durable
        log, typically), in which case the caller must not act on the decision."""
        self.api.fence()  # a replica that lost the Lease records nothing
        ok = True
        for record in records:
            ok = send_record(self.sinks, record) and ok
            if involved is not None:
                reason, kind = event_for(record.decision)
                if reason:
                    self.notices.event(
                        involved, reason, record.reason, kind, annotations=event_annotations(record)
                    )
        return ok


def status_wire(status: LaneReleaseStatus) -> JsonDict:
    wire: JsonDict = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return wire


def status_patch(new: JsonDict, stored: JsonDict) -> JsonDict:
    """The JSON merge patch (RFC 7386) that turns the stored status into ``new``: only what
    changed is sent (a measurement tick changes a few fields of a status of many), a field
    the new status no longer has (gateReason, lastAnalysisAt, ...) is sent as null, which
    deletes it, and an object is patched member by member (a merge patch merges objects,
    so sending a whole one would keep members it no longer has)."""
    patch: JsonDict = {key: None for key in stored if key not in new}
    for key, value in new.items():
        old = stored.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            nested = status_patch(value, old)
            if nested:
                patch[key] = nested
        elif key not in stored or old != value:
            patch[key] = value
    return patch


def command_from(raw: JsonDict | None) -> HumanCommand | None:
    """A human command left on the release (``core.commands``)."""
    if raw is None:
        return None
    return decode_command((meta(raw).get("annotations") or {}).get(COMMAND_ANNOTATION))
