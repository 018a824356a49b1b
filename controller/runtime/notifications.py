"""Wire the notifier to a running controller: lanes from its informer cache, attempts into
its metrics, delivery outcomes into the lane's ``status.notifications`` (a leader-fenced
write, like every other)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import ValidationError

from controller.adapters.notify.dispatcher import DeliveryOutcome, Notifier, RetryPolicy
from controller.adapters.notify.transports import TransportFactory
from controller.core.models import ChangeLane
from controller.core.models.notifications import NotificationsSpec
from controller.runtime.indexes import ParseCache
from controller.runtime.ports import JsonDict
from controller.runtime.shard_wiring import lane_batch

if TYPE_CHECKING:
    from controller.runtime.manager import Controller


class NotificationConfigError(Exception):
    pass


def load_defaults(path: Path) -> NotificationsSpec:
    """The controller-wide destinations: a YAML/JSON file shaped like a lane's
    ``spec.notifications``."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise NotificationConfigError(f"{path}: cannot read notification defaults: {err}") from None
    try:
        return NotificationsSpec.model_validate(doc)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise NotificationConfigError(f"{path}: {where}: {first['msg']}") from None


def webhook_defaults(url: str) -> NotificationsSpec:
    """One CloudEvents webhook that wants every event (``changelane demo --webhook``)."""
    return NotificationsSpec.model_validate(
        {
            "destinations": [
                {
                    "name": "webhook",
                    "kind": "webhook",
                    "url": url,
                    "events": [
                        "rolledBack",
                        "rejected",
                        "gated",
                        "paused",
                        "laneSuspended",
                        "promoted",
                    ],
                    "gatedAfter": "5s",
                }
            ]
        }
    )


def _lane_or_none(raw: JsonDict) -> ChangeLane | None:
    try:
        return ChangeLane.model_validate(raw)
    except ValidationError:
        return None


def attach_notifier(
    controller: Controller,
    *,
    defaults: NotificationsSpec | None = None,
    secret_dir: Path | None = None,
    dashboard_url: str | None = None,
    retry: RetryPolicy | None = None,
) -> Notifier:
    """A notifier reading lanes from ``controller``'s cache. Add it to the audit fan-out."""
    lane_informer = controller.informers["ChangeLane"]
    status_lock = threading.Lock()

    # Every audit record asks for its lane (2,000 a tick at 1,000 releases): parse each
    # lane once per resourceVersion, not once per record.
    parsed_lanes: ParseCache[ChangeLane] = ParseCache(_lane_or_none)

    def lane(name: str) -> ChangeLane | None:
        raw = lane_informer.get(name)
        return parsed_lanes.parse(raw) if raw is not None else None

    def lane_spec(name: str) -> NotificationsSpec | None:
        found = lane(name)
        return found.spec.notifications if found is not None else None

    def write_status(name: str, outcome: DeliveryOutcome) -> None:
        with status_lock, lane_batch(controller, name):
            raw = controller.api.get_lane(name)
            current = ((raw.get("status") or {}).get("notifications")) or []
            entry = {
                "destination": outcome.destination,
                "ok": outcome.ok,
                "lastAttempt": outcome.time.isoformat().replace("+00:00", "Z"),
                "lastEvent": outcome.event,
            }
            if outcome.error:
                entry["lastError"] = outcome.error[:1000]
            others = [e for e in current if e.get("destination") != outcome.destination]
            controller.api.patch_lane_status(name, {"notifications": [*others, entry]})

    def count(lane_name: str, destination: str, event: str, outcome: str) -> None:
        controller.metrics.notification_attempts.labels(
            lane_name, destination, event, outcome
        ).inc()

    return Notifier(
        lane_spec,
        defaults=defaults,
        transports=TransportFactory(secret_dir),
        dashboard_url=dashboard_url,
        retry=retry,
        count_attempt=count,
        write_status=write_status,
    )
