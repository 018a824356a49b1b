"""The audit sink port: one :class:`AuditRecord` in, fanned out to every destination.

Destinations are small objects with ``emit(record)``: structlog (always), the hash-chained
file (optional) and whatever the runtime plugs in (Kubernetes Events, LaneRelease status
summaries). One failing destination never stops the others. The durable log is the record
of truth: if it fails, :meth:`FanOutAuditSink.emit` raises after the others have had the
record, so the runtime can fail safe (not move traffic on a decision it could not record).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import structlog

from controller.adapters.audit.log import AuditLog, FsyncPolicy
from controller.adapters.audit.logging import build_logger
from controller.core.audit import AuditRecord

DECISION_EVENT = "decision"


@runtime_checkable
class AuditSink(Protocol):
    def emit(self, record: AuditRecord) -> None: ...


class AuditSinkError(Exception):
    """A required audit destination could not record a decision."""


class StructlogAuditSink:
    """One ``decision`` event per record, its fields the record's fields."""

    def __init__(self, logger: structlog.typing.FilteringBoundLogger | None = None) -> None:
        self.logger = logger or build_logger()

    def emit(self, record: AuditRecord) -> None:
        fields = record.as_log_fields()
        # structlog owns "event"; the record has no such field, but be explicit about it.
        fields.pop("event", None)
        self.logger.info(DECISION_EVENT, **fields)


class FanOutAuditSink:
    """Sends each record to every sink; failures of required sinks are raised at the end."""

    def __init__(
        self,
        sinks: Sequence[AuditSink],
        *,
        required: Sequence[AuditSink] = (),
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.sinks = list(sinks)
        self.required = list(required)
        self.logger = logger or build_logger()

    def add(self, sink: AuditSink, *, required: bool = False) -> None:
        self.sinks.append(sink)
        if required:
            self.required.append(sink)

    def emit(self, record: AuditRecord) -> None:
        failures: list[str] = []
        for sink in self.sinks:
            try:
                sink.emit(record)
            except Exception as err:  # one destination must not silence the others
                name = type(sink).__name__
                self.logger.error(
                    "audit_sink_failed",
                    sink=name,
                    error=str(err),
                    release=record.release,
                    decision=record.decision.value,
                )
                if any(sink is r for r in self.required):
                    failures.append(f"{name}: {err}")
        if failures:
            raise AuditSinkError("; ".join(failures))


def build_audit_sink(
    *,
    logger: structlog.typing.FilteringBoundLogger | None = None,
    log_path: Path | None = None,
    fsync: FsyncPolicy = FsyncPolicy.ALWAYS,
    extra: Sequence[AuditSink] = (),
) -> tuple[FanOutAuditSink, AuditLog | None]:
    """The controller's sink: structlog, the durable log at ``log_path`` (required when
    given) and ``extra`` sinks. Returns the log too, so the caller can close it."""
    log = AuditLog(log_path, fsync=fsync) if log_path is not None else None
    sinks: list[AuditSink] = [StructlogAuditSink(logger)]
    if log is not None:
        sinks.append(log)
    sinks.extend(extra)
    return FanOutAuditSink(sinks, required=[log] if log else [], logger=logger), log
