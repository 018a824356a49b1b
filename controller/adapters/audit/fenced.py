"""An audit sink that appends only while this replica holds the Lease.

Wraps any sink: ``check`` (a lease fence's ``Fence.check``) runs before every record and
raises ``NotLeaderError`` when this replica does not act, so a replica that lost the Lease
never appends, not even a record replayed from an outbox it read before it lost it.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.adapters.audit.sink import AuditSink
from controller.core.audit import AuditRecord


class FencedAuditSink:
    def __init__(self, sink: AuditSink, check: Callable[[], object]) -> None:
        self.sink = sink
        self.check = check

    def emit(self, record: AuditRecord) -> None:
        self.check()
        self.sink.emit(record)
