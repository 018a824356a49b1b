from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from controller.cli.main import cli


def test_bench_audit_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        cli, ["bench", "audit", "--records", "400", "--runs", "1", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "last-hour command (new process), median" in result.stdout
    data = json.loads(out.read_text())
    assert data["records"] == 400 and data["verify_ok"] is True
    assert data["releases"] > 10
    for key in ("last_hour_query_seconds", "cli_last_hour_seconds", "verify_seconds"):
        assert data[key]["median"] > 0 and len(data[key]["runs"]) >= 1
    assert set(data["peak_memory_bytes"]) == {
        "last_hour_query",
        "read_all_records",
        "verify",
        "whole_log_query",
    }
