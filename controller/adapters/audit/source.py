"""Where ``changelane audit`` reads records from.

A source yields records (oldest first) and afterwards says what it had to skip. The file
source reads a hash-chained audit log; the cluster source (LaneReleases and Events) plugs in
beside it with the runtime.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

from controller.adapters.audit.log import ReadReport, read_records
from controller.core.audit import AuditRecord


class AuditSource(Protocol):
    name: str

    def records(self, since: datetime | None = None) -> Iterator[AuditRecord]:
        """Records in time order. ``since`` is a hint; earlier records may still come."""
        ...

    def warnings(self) -> list[str]:
        """What reading skipped or could not vouch for (after ``records`` is exhausted)."""
        ...


class FileAuditSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self.report = ReadReport(str(path))

    def records(self, since: datetime | None = None) -> Iterator[AuditRecord]:
        self.report = ReadReport(str(self.path))
        return read_records(self.path, self.report, since=since)

    def warnings(self) -> list[str]:
        return self.report.warnings()
