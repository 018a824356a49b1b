"""The backtest benchmark's CI slice: two days on a real Prometheus, figures in JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli.main import cli

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]


def test_bench_backtest_quick_writes_its_figures(prometheus_bin: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "backtest", "--quick", "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["days"] == 2.0 and doc["ok"] is None  # the target is for thirty days
    assert set(doc["scenarios"]) == {"discovered, no A/A", "csv + A/A"}
    for scenario in doc["scenarios"].values():
        assert scenario["releases"] == 8 and scenario["queries"] > 0
        assert scenario["median_s"] > 0 and scenario["known_bad"] == 2
    assert doc["scenarios"]["csv + A/A"]["aa_runs"] > 0
    assert "median s" in result.output and f"wrote {out}" in result.output
