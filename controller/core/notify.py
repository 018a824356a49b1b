"""Notifications as a pure function of an audit record: which destinations hear of it, and
what the message says.

The adapter (``controller.adapters.notify``) subscribes to the audit records the controller
already emits and delivers what this module composes; nothing here does I/O. A message names
the release, lane, workload, agent, model and change, and for a failing check its value, its
limit and the statistic, and links to the dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from controller.core.audit import AuditRecord, Decision, Evidence
from controller.core.models.common import parse_duration
from controller.core.models.notifications import (
    NotificationDestination,
    NotificationsSpec,
    NotifyEvent,
)

#: The record that announces each event. A rollback is announced when it is decided (the
#: record carries the evidence), not when the canary has finished scaling down.
EVENT_OF_DECISION: dict[Decision, NotifyEvent] = {
    Decision.ROLLING_BACK: NotifyEvent.ROLLED_BACK,
    Decision.REJECTED: NotifyEvent.REJECTED,
    Decision.PAUSED: NotifyEvent.PAUSED,
    Decision.LANE_SUSPENDED: NotifyEvent.LANE_SUSPENDED,
    Decision.PROMOTED: NotifyEvent.PROMOTED,
    Decision.AUTONOMY_CHANGED: NotifyEvent.AGENT_LEVEL_CHANGED,
}

CLOUDEVENT_TYPE_PREFIX = "dev.changelane.release."
SEVERITY = {
    NotifyEvent.ROLLED_BACK: "warning",
    NotifyEvent.REJECTED: "warning",
    NotifyEvent.GATED: "info",
    NotifyEvent.PAUSED: "warning",
    NotifyEvent.LANE_SUSPENDED: "failure",
    NotifyEvent.PROMOTED: "success",
    NotifyEvent.AGENT_LEVEL_CHANGED: "warning",
}
_HEADLINE = {
    NotifyEvent.ROLLED_BACK: "rolled back",
    NotifyEvent.REJECTED: "rejected",
    NotifyEvent.GATED: "held by a gate",
    NotifyEvent.PAUSED: "paused for a human",
    NotifyEvent.LANE_SUSPENDED: "lane suspended",
    NotifyEvent.PROMOTED: "promoted",
    NotifyEvent.AGENT_LEVEL_CHANGED: "agent autonomy level changed",
}


@dataclass(frozen=True)
class Notification:
    """One message for one destination."""

    id: str  # stable: '<record id>/<destination>', so a retried delivery is recognisable
    event: NotifyEvent
    destination: str
    lane: str
    title: str
    body: str
    link: str | None
    data: dict[str, Any] = field(default_factory=dict)  # the CloudEvent's data

    @property
    def cloudevent_type(self) -> str:
        return CLOUDEVENT_TYPE_PREFIX + self.event.value


def event_of(record: AuditRecord) -> NotifyEvent | None:
    return EVENT_OF_DECISION.get(record.decision)


def destinations_for(
    lane: NotificationsSpec | None, defaults: NotificationsSpec | None
) -> list[NotificationDestination]:
    """The lane's destinations, then the controller-wide ones unless the lane opts out
    (a lane destination of the same name wins)."""
    own = list(lane.destinations) if lane is not None else []
    if defaults is None or (lane is not None and not lane.include_defaults):
        return own
    names = {d.name for d in own}
    return own + [d for d in defaults.destinations if d.name not in names]


def route(
    record: AuditRecord,
    destinations: Sequence[NotificationDestination],
    event: NotifyEvent | None = None,
) -> list[NotificationDestination]:
    """The destinations that want ``event`` (default: the record's own event)."""
    wanted = event or event_of(record)
    if wanted is None:
        return []
    return [d for d in destinations if wanted in d.events]


def gated_after_seconds(destination: NotificationDestination) -> float:
    return parse_duration(destination.gated_after)


def release_link(dashboard_url: str | None, record: AuditRecord) -> str | None:
    if not dashboard_url:
        return None
    base = dashboard_url.rstrip("/")
    if record.release and record.namespace:
        return f"{base}/releases/{quote(record.namespace)}/{quote(record.release)}"
    return f"{base}/lanes"


def failing_evidence(record: AuditRecord) -> list[Evidence]:
    """The evidence that explains the decision: failing checks first, else all of it."""
    failing = [e for e in record.evidence if e.verdict.lower() in ("fail", "error")]
    return failing or list(record.evidence)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def evidence_line(e: Evidence) -> str:
    parts = [f"{e.check}: {e.verdict}", f"canary {_number(e.canary)}"]
    if e.baseline is not None:
        parts.append(f"baseline {_number(e.baseline)}")
    if e.threshold is not None:
        parts.append(f"limit {_number(e.threshold)}")
    if e.statistic:
        parts.append(e.statistic)
    return ", ".join(parts)


def compose(
    record: AuditRecord,
    destination: NotificationDestination,
    event: NotifyEvent,
    dashboard_url: str | None = None,
    *,
    held_seconds: float | None = None,
) -> Notification:
    subject = record.release or f"lane {record.lane}"
    headline = _HEADLINE[event]
    if event is NotifyEvent.GATED and held_seconds is not None:
        headline = f"held by a gate for over {held_seconds:.0f}s"
    title = f"[changelane] {subject} {headline}"
    link = release_link(dashboard_url, record)
    prov = record.provenance
    workload = f"{record.namespace}/{record.workload}" if record.workload else None
    facts = [
        ("release", record.release),
        ("lane", record.lane),
        ("workload", workload),
        ("agent", prov.agent),
        ("model", prov.model),
        ("change", prov.change),
        ("step", f"{record.step}" if record.step is not None else None),
        ("weight", f"{record.weight}%" if record.weight is not None else None),
    ]
    lines = [f"{headline}: {record.reason}"]
    lines += [f"{name}: {value}" for name, value in facts if value]
    evidence = failing_evidence(record)
    lines += [f"check {evidence_line(e)}" for e in evidence]
    if link:
        lines.append(f"dashboard: {link}")
    data: dict[str, Any] = {
        "event": event.value,
        "decision": record.decision.value,
        "reason": record.reason,
        "message": record.message,
        "release": record.release,
        "namespace": record.namespace,
        "lane": record.lane,
        "workload": record.workload,
        "agent": prov.agent,
        "model": prov.model,
        "change": prov.change,
        "step": record.step,
        "weight": record.weight,
        "time": record.time.isoformat(),
        "recordId": record.id,
        "evidence": [e.model_dump(mode="json", exclude_none=True) for e in evidence],
        "dashboard": link,
    }
    if held_seconds is not None:
        data["heldSeconds"] = round(held_seconds, 1)
    return Notification(
        id=f"{record.id or record.time.isoformat()}/{event.value}/{destination.name}",
        event=event,
        destination=destination.name,
        lane=record.lane,
        title=title,
        body="\n".join(lines),
        link=link,
        data={k: v for k, v in data.items() if v is not None},
    )
