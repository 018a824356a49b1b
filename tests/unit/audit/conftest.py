from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.bench.audit_history import write_history

END = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def history_log(tmp_path: Path) -> Path:
    """A realistic, intact 600-record audit log ending at END."""
    path = tmp_path / "audit.jsonl"
    write_history(path, 600, end=END, seed=7)
    return path
