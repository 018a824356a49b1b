"""Sending a lane-level audit record (a suspension, a resumption, an agent's new level).

A lane-level record has no outbox: it is announced when the lane's status differs from
what the controller derives, and the status write that follows marks it as announced. So
the status may only be written once every sink took the record; otherwise the record is
lost for good (the next reconcile sees nothing left to announce). The record's id is
derived from the change, so sending it again after a failure is dropped by the sinks that
already have it.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from controller.adapters.audit.sink import AuditSink
from controller.core.audit import AuditRecord
from controller.runtime.ports import NotLeaderError

log = structlog.get_logger("changelane.audit")

#: Seconds before announcing again a lane-level change a sink could not take.
LANE_RECORD_RETRY_S = 5.0


def send_record(sinks: Sequence[AuditSink], record: AuditRecord) -> bool:
    """True when every sink took ``record`` (each is tried: one destination must not
    silence the others); a replica that lost its Lease raises. Release records use it
    too (``runtime.commit``), from their outbox."""
    ok = True
    for sink in sinks:
        try:
            sink.emit(record)
        except NotLeaderError:
            raise
        except Exception:
            ok = False
            log.exception("audit sink failed", sink=type(sink).__name__, record=record.id)
    return ok
