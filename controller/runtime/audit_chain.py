"""The leader's durable audit log, continuing one chain across leaders.

Opened on the first record of a leadership term (a standby must not hold the log's lock
while it waits: the volume may be shared). Before each append, it reads the head anchored
in the cluster; when another leader has appended since this pod's log ended, the old file
is kept as a finished segment (``audit.jsonl.<last seq>``) and a new one continues from
the anchored head. A record whose id the anchor already holds is in the chain (an earlier
leader appended it) and is not appended again. After every append the new head is
anchored (a fenced write, conditional on the state read before) and the exact line is
logged as an ``audit_line`` event, so pod logs carry the chain too.
"""

from __future__ import annotations

import threading
from pathlib import Path

import structlog

from controller.adapters.audit.anchor import AuditAnchor
from controller.adapters.audit.log import AuditLog, FsyncPolicy
from controller.adapters.audit.segments import AUDIT_LINE_EVENT, Head
from controller.core.audit import AuditRecord

log = structlog.get_logger("changelane.audit")


class AnchoredAuditLog:
    def __init__(
        self,
        path: Path,
        fsync: FsyncPolicy = FsyncPolicy.ALWAYS,
        anchor: AuditAnchor | None = None,
        instance: str = "changelane",
    ) -> None:
        self.path, self.fsync, self.anchor, self.instance = path, fsync, anchor, instance
        self._log: AuditLog | None = None
        self._lock = threading.Lock()
        self._appended = 0

    def emit(self, record: AuditRecord) -> None:
        with self._lock:
            state = self.anchor.read_state() if self.anchor is not None else None
            self._log = self._continue(self._log, state.head if state is not None else None)
            if state is not None and record.id is not None and state.holds(record.id):
                # Appended and anchored by an earlier leader (its segment holds it): this
                # is the replay of the outbox it could not clear. Once in the chain is enough.
                log.info("audit record already in the chain", id=record.id)
                return
            before = self._log.seq
            self._log.emit(record)
            if self._log.seq != before and self._log.last_line is not None:
                self._appended += 1
                log.info(AUDIT_LINE_EVENT, line=self._log.last_line.decode("utf-8").rstrip("\n"))
            if self.anchor is not None:
                head = Head(self._log.seq, self._log.head_hash)
                self.anchor.write(head, self.instance, record.id, known=state)

    @property
    def appended(self) -> int:
        """Lines this object appended (a record already in the chain adds none)."""
        return self._appended

    def _continue(self, current: AuditLog | None, anchored: Head | None) -> AuditLog:
        """This pod's log, continuing the anchored chain. Read on every record, not once
        per term: leadership can leave and come back between two records."""
        if current is None:
            current = AuditLog(self.path, fsync=self.fsync)
        if anchored is None or anchored.seq <= current.seq:
            return current  # ours is the head, or the anchor lags (a failed write catches up)
        # Another leader appended since this log ended: keep it as a finished segment and
        # continue the chain from the anchored head in a new one.
        ended = current.seq
        current.close()
        if ended > 0:
            self.path.rename(self.path.with_name(f"{self.path.name}.{ended:08d}"))
        log.info(
            "audit chain continues",
            from_seq=anchored.seq + 1,
            previous_segment_end=ended,
            instance=self.instance,
        )
        return AuditLog(self.path, fsync=self.fsync, start=(anchored.seq, anchored.hash))

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None
