"""The cluster as an audit source: LaneReleases (their status) and Events, as records.

What the cluster keeps, and so what ``changelane audit --cluster`` can show:

- **Events**, one per decision the controller made (reason ``Promoted``, ``RolledBack``,
  ...). Each carries annotations with the audit record's id, exact time, decision, actor,
  step and weight, so the timeline is as precise as the audit log's. Events expire
  (the API server's ``--event-ttl``, one hour by default).
- **The LaneRelease status**, which does not expire: phase, message, rollback and gate
  reasons, the last 20 measurements with their evidence, conditions, start and finish.
  The release's current outcome is always derived from it, so a release whose Events are
  gone is still listed with its outcome, reason and deciding evidence.
- **The ChangeLane status**: when the lane was suspended (and why) and resumed (by whom).

Measurement records come from the status only (the controller emits no Event for them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from controller.core.analysis import describe
from controller.core.audit import AuditProvenance, AuditRecord, Decision, Evidence
from controller.core.formatting import iso_z
from controller.core.models import ChangeLane, LaneRelease, Phase, Verdict
from controller.core.release_machine import evidence_of

JsonDict = dict[str, Any]

ANNOTATION_ID = "changelane.dev/record-id"
ANNOTATION_TIME = "changelane.dev/record-time"
ANNOTATION_DECISION = "changelane.dev/decision"
ANNOTATION_ACTOR = "changelane.dev/actor"
ANNOTATION_STEP = "changelane.dev/step"
ANNOTATION_WEIGHT = "changelane.dev/weight"

#: The Event (reason, type) for each decision; decisions without one get no Event.
EVENT_REASONS: dict[Decision, tuple[str, str]] = {
    Decision.RELEASE_SEEN: ("ReleaseSeen", "Normal"),
    Decision.GATED: ("Gated", "Normal"),
    Decision.REJECTED: ("Rejected", "Warning"),
    Decision.STARTED: ("CanaryStarted", "Normal"),
    Decision.STEP_ADVANCED: ("StepAdvanced", "Normal"),
    Decision.PAUSED: ("Paused", "Warning"),
    Decision.RESUMED: ("Resumed", "Normal"),
    Decision.PROMOTING: ("Promoting", "Normal"),
    Decision.PROMOTED: ("Promoted", "Normal"),
    Decision.ROLLING_BACK: ("RollingBack", "Warning"),
    Decision.ROLLED_BACK: ("RolledBack", "Warning"),
    Decision.HUMAN_OVERRIDE: ("HumanOverride", "Normal"),
    Decision.LANE_SUSPENDED: ("LaneSuspended", "Warning"),
    Decision.LANE_RESUMED: ("LaneResumed", "Normal"),
}
_DECISION_OF_REASON = {reason: d for d, (reason, _) in EVENT_REASONS.items()}
_ACTOR_IN_TEXT = re.compile(r"\b(?:aborted|promoted|paused|resumed) by (\S+)")

# The record the status stands for, per phase (None: nothing to add).
_STATUS_DECISION: dict[Phase, Decision | None] = {
    Phase.PENDING: None,
    Phase.GATED: Decision.GATED,
    Phase.REJECTED: Decision.REJECTED,
    Phase.PROGRESSING: Decision.STEP_ADVANCED,
    Phase.PAUSED: Decision.PAUSED,
    Phase.PROMOTING: Decision.PROMOTING,
    Phase.PROMOTED: Decision.PROMOTED,
    Phase.ROLLING_BACK: Decision.ROLLING_BACK,
    Phase.ROLLED_BACK: Decision.ROLLED_BACK,
}
_OUTCOME_DECISIONS = frozenset(d for d in _STATUS_DECISION.values() if d is not None) | {
    Decision.STARTED,
    Decision.RESUMED,
}


iso = iso_z


def event_for(decision: Decision) -> tuple[str | None, str]:
    reason, kind = EVENT_REASONS.get(decision, (None, "Normal"))
    return reason, kind


def event_annotations(record: AuditRecord) -> dict[str, str]:
    """What an Event needs beside its reason and message to give the record back."""
    out = {
        ANNOTATION_TIME: iso(record.time),
        ANNOTATION_DECISION: record.decision.value,
        ANNOTATION_ACTOR: record.actor[:253],
    }
    if record.id:
        out[ANNOTATION_ID] = record.id
    if record.step is not None:
        out[ANNOTATION_STEP] = str(record.step)
    if record.weight is not None:
        out[ANNOTATION_WEIGHT] = str(record.weight)
    return out


def lane_record_id(lane_key: str, decision: Decision, at: datetime) -> str:
    """Stable id of a lane suspension/resumption: the same one from the Event and status."""
    kind = "lane-suspended" if decision is Decision.LANE_SUSPENDED else "lane-resumed"
    return f"{lane_key}/{kind}/{iso(at)}"


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _int(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


class ClusterAuditSource:
    """Records rebuilt from the cluster, oldest first. ``api`` is a ``KubeApi``."""

    def __init__(self, api: Any, namespace: str | None = None, name: str = "the cluster") -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self._warnings: list[str] = []

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def records(self, since: datetime | None = None) -> Iterator[AuditRecord]:
        self._warnings = []
        releases = self.api.list_releases(self.namespace)
        events: dict[tuple[str, str], list[JsonDict]] = {}
        for ev in self.api.list_events("LaneRelease", self.namespace):
            involved = ev.get("involvedObject") or {}
            key = (str(involved.get("namespace") or ""), str(involved.get("name") or ""))
            events.setdefault(key, []).append(ev)
        out: list[AuditRecord] = []
        for raw in releases:
            meta = raw.get("metadata") or {}
            key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            if since is not None and _finished_before(raw, events.get(key, []), since):
                continue  # every record it has is older than the window: skip the parsing
            try:
                rel = LaneRelease.model_validate(raw)
            except ValidationError as err:
                first = str(err).splitlines()[1:2]
                self._warnings.append(
                    f"LaneRelease {key[0]}/{key[1]} skipped: it does not parse ({first})"
                )
                continue
            out.extend(release_records(rel, events.get(key, [])))
        lane_events: dict[str, list[JsonDict]] = {}
        for ev in self.api.list_events("ChangeLane"):
            name = str((ev.get("involvedObject") or {}).get("name") or "")
            lane_events.setdefault(name, []).append(ev)
        for raw in self.api.list_lanes():
            try:
                lane = ChangeLane.model_validate(raw)
            except ValidationError:
                name = (raw.get("metadata") or {}).get("name", "?")
                self._warnings.append(f"ChangeLane {name} skipped: it does not parse")
                continue
            out.extend(lane_records(lane, lane_events.get(lane.name, [])))
        out.sort(key=order_key)
        return iter(out)


def order_key(record: AuditRecord) -> tuple[datetime, int, int]:
    """Time, then as the controller wrote them in one tick: measurements before the
    decision they led to, then by the record's sequence number (its id ends in it)."""
    seq = _int((record.id or "").rsplit("/", 1)[-1]) or 0
    return (record.time, 0 if record.decision is Decision.MEASUREMENT else 1, seq)


# --------------------------------------------------------------------------- releases


def _finished_before(raw: JsonDict, events: list[JsonDict], since: datetime) -> bool:
    finished = _parse_time((raw.get("status") or {}).get("finishedAt"))
    if finished is None or finished >= since:
        return False
    return all((_event_time(ev) or since) < since for ev in events)


def _base(rel: LaneRelease) -> dict[str, Any]:
    spec = rel.spec
    p = spec.provenance
    tests = None
    if p.tests is not None:
        tests = p.tests.result + (f" ({p.tests.command})" if p.tests.command else "")
    total = (rel.status.step or "").partition("/")[2]
    return {
        "lane": spec.lane,
        "steps": int(total) if total.isdigit() else None,
        "namespace": spec.target.namespace,
        "workload": spec.target.name,
        "release": rel.name,
        "from_revision": spec.from_revision.pod_template_hash,
        "to_revision": spec.to_revision.pod_template_hash,
        "from_images": list(spec.from_revision.images),
        "to_images": list(spec.to_revision.images),
        "provenance": AuditProvenance(
            agent=p.agent, model=p.model, change=p.change, tests=tests, reviewer=p.reviewer
        ),
    }


def _event_time(ev: JsonDict) -> datetime | None:
    annotations = (ev.get("metadata") or {}).get("annotations") or {}
    for text in (
        annotations.get(ANNOTATION_TIME),
        ev.get("eventTime"),
        ev.get("lastTimestamp"),
        ev.get("firstTimestamp"),
        (ev.get("metadata") or {}).get("creationTimestamp"),
    ):
        when = _parse_time(text)
        if when is not None:
            return when
    return None


def _event_record(ev: JsonDict, base: dict[str, Any]) -> AuditRecord | None:
    annotations = (ev.get("metadata") or {}).get("annotations") or {}
    try:
        decision = Decision(annotations[ANNOTATION_DECISION])
    except (KeyError, ValueError):
        found = _DECISION_OF_REASON.get(str(ev.get("reason") or ""))
        if found is None:
            return None  # not one of ours (Adopted, LaneConflict, ...)
        decision = found
    when = _event_time(ev)
    if when is None:
        return None
    message = str(ev.get("message") or "")
    actor = annotations.get(ANNOTATION_ACTOR)
    if not actor:
        match = _ACTOR_IN_TEXT.search(message)
        actor = match[1] if match else "controller"
    uid = (ev.get("metadata") or {}).get("uid")
    return AuditRecord(
        id=annotations.get(ANNOTATION_ID) or (f"event/{uid}" if uid else None),
        time=when,
        decision=decision,
        reason=message,
        step=_int(annotations.get(ANNOTATION_STEP)),
        weight=_int(annotations.get(ANNOTATION_WEIGHT)),
        actor=actor,
        **base,
    )


def deciding_evidence(rel: LaneRelease) -> list[Evidence]:
    """For a rollback decided by analysis: the non-passing measurements of the last tick."""
    s = rel.status
    at_step = [m for m in s.measurements if m.step == s.current_step]
    if not at_step:
        return []
    last = max(m.time for m in at_step)
    return [evidence_of(m) for m in at_step if m.time == last and m.verdict is not Verdict.PASS]


def _status_time(rel: LaneRelease, after: datetime) -> datetime:
    s = rel.status
    candidates = [c.last_transition_time for c in s.conditions]
    candidates += [t for t in (s.finished_at, s.step_started_at, s.started_at) if t]
    when = max(candidates, default=after)
    return max(when, after)


def release_records(rel: LaneRelease, events: Iterable[JsonDict]) -> list[AuditRecord]:
    """A release's audit records rebuilt from the cluster: its Events (the timeline, while
    the API server keeps them), its measurements, and the decision its status stands for."""
    base = _base(rel)
    records = _timeline(rel, events, base)
    records += [
        AuditRecord(
            time=m.time,
            decision=Decision.MEASUREMENT,
            reason=describe(m),
            step=m.step,
            evidence=[evidence_of(m)],
            **base,
        )
        for m in rel.status.measurements
    ]
    _add_status_decision(rel, records, base)
    return records


def _timeline(rel: LaneRelease, events: Iterable[JsonDict], base: JsonDict) -> list[AuditRecord]:
    """The records the Events carry, once each, in order, starting with the release."""
    from_events = [r for r in (_event_record(ev, base) for ev in events) if r is not None]
    seen_ids: set[str] = set()
    records: list[AuditRecord] = []
    for r in sorted(from_events, key=order_key):
        if r.id is None or r.id not in seen_ids:
            records.append(r)
            seen_ids.add(r.id or "")
    created = rel.metadata.creation_timestamp or rel.status.started_at
    if created is not None and not any(r.decision is Decision.RELEASE_SEEN for r in records):
        seen = AuditRecord(
            time=created,
            decision=Decision.RELEASE_SEEN,
            reason="new pod template on a lane workload",
            **base,
        )
        records.insert(0, seen)
    return records


def _add_status_decision(rel: LaneRelease, records: list[AuditRecord], base: JsonDict) -> None:
    """The decision the status stands for, with its evidence: attached to the record that
    already says it, else added (its Event expired)."""
    s = rel.status
    wanted = _STATUS_DECISION[s.phase]
    if wanted is None:
        return
    evidence = deciding_evidence(rel) if wanted in _ROLLBACK else []
    # The decision to roll back is where the audit log keeps its evidence: put it there.
    deciding = [i for i, r in enumerate(records) if r.decision is Decision.ROLLING_BACK]
    if evidence and deciding and not records[deciding[-1]].evidence:
        records[deciding[-1]] = records[deciding[-1]].model_copy(update={"evidence": evidence})
        evidence = []
    # A final outcome is said once, whenever its Event says it; a passing state (Paused,
    # Gated, ...) only counts when it is the latest one.
    candidates = [i for i, r in enumerate(records) if r.decision in _OUTCOME_DECISIONS]
    if not s.phase.terminal:
        candidates = candidates and [max(candidates, key=lambda i: order_key(records[i]))]
    found_at = next((i for i in candidates if _same_outcome(records[i].decision, wanted)), None)
    if found_at is not None:
        found = records[found_at]
        if evidence and not found.evidence:
            records[found_at] = found.model_copy(update={"evidence": evidence})
        return
    created = rel.metadata.creation_timestamp or s.started_at
    latest = max((r.time for r in records), default=created or datetime.now(UTC))
    records.append(
        AuditRecord(
            time=_status_time(rel, latest),
            decision=wanted,
            reason=_status_reason(rel),
            message=s.message,
            step=s.current_step,
            weight=s.weight,
            evidence=evidence,
            actor=_status_actor(rel),
            **base,
        )
    )


_ROLLBACK = frozenset({Decision.ROLLING_BACK, Decision.ROLLED_BACK})
_MOVING = frozenset({Decision.STARTED, Decision.STEP_ADVANCED, Decision.RESUMED})


def _same_outcome(found: Decision, wanted: Decision) -> bool:
    return found is wanted or (found in _MOVING and wanted in _MOVING)


def _status_reason(rel: LaneRelease) -> str:
    s = rel.status
    if s.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK):
        return s.rollback_reason or s.message
    if s.phase is Phase.GATED:
        return s.gate_reason or s.message
    if s.phase in (Phase.PROMOTING, Phase.PROMOTED) and s.human_override:
        return s.human_override
    if s.phase is Phase.PROMOTED:
        return "promotion complete"
    return s.message


def _status_actor(rel: LaneRelease) -> str:
    match = _ACTOR_IN_TEXT.search(_status_reason(rel))
    return match[1] if match else "controller"


# --------------------------------------------------------------------------- lanes


def lane_records(lane: ChangeLane, events: Iterable[JsonDict]) -> list[AuditRecord]:
    key = lane.metadata.uid or lane.name
    records: dict[str, AuditRecord] = {}
    for ev in events:
        annotations = (ev.get("metadata") or {}).get("annotations") or {}
        reason = str(ev.get("reason") or "")
        decision = _DECISION_OF_REASON.get(reason)
        when = _event_time(ev)
        if decision not in (Decision.LANE_SUSPENDED, Decision.LANE_RESUMED) or when is None:
            continue
        rid = annotations.get(ANNOTATION_ID) or lane_record_id(key, decision, when)
        records[rid] = AuditRecord(
            id=rid,
            time=when,
            lane=lane.name,
            decision=decision,
            reason=str(ev.get("message") or ""),
            actor=annotations.get(ANNOTATION_ACTOR) or "controller",
        )
    status = lane.status
    if status is not None:
        if status.suspended and status.suspended_at is not None:
            rid = lane_record_id(key, Decision.LANE_SUSPENDED, status.suspended_at)
            records.setdefault(
                rid,
                AuditRecord(
                    id=rid,
                    time=status.suspended_at,
                    lane=lane.name,
                    decision=Decision.LANE_SUSPENDED,
                    reason=status.suspended_reason or "suspended",
                ),
            )
        if status.resumed_at is not None:
            rid = lane_record_id(key, Decision.LANE_RESUMED, status.resumed_at)
            who = status.resumed_by or "unknown"
            records.setdefault(
                rid,
                AuditRecord(
                    id=rid,
                    time=status.resumed_at,
                    lane=lane.name,
                    decision=Decision.LANE_RESUMED,
                    reason=f"resumed by {who}",
                    actor=who,
                ),
            )
    return list(records.values())
