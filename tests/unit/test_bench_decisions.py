"""The decision benchmark's machinery (the figures themselves are measured by the command)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from controller.bench import decisions
from controller.cli.main import cli

FIELDS = {
    "scenario",
    "judge",
    "traces",
    "false_rollback_rate",
    "missed_regression_rate",
    "promoted_rate",
    "detection_median_s",
    "detection_p90_s",
}


def test_histogram_quantile_follows_prometheus_interpolation() -> None:
    counts = np.zeros(len(decisions.BUCKETS) + 1)
    counts[decisions.BUCKETS.index(0.1)] = 50  # (0.075, 0.1]
    counts[decisions.BUCKETS.index(0.2)] = 50  # (0.15, 0.2]
    # rank 95 of 100 lies 45/50 into the (0.15, 0.2] bucket
    assert decisions.histogram_quantile(0.95, counts) == pytest.approx(0.15 + 0.05 * 0.9)
    counts[-1] = 1000  # most observations beyond the last finite bucket
    assert decisions.histogram_quantile(0.95, counts) == decisions.BUCKETS[-1]
    assert np.isnan(decisions.histogram_quantile(0.95, np.zeros_like(counts)))


def test_generated_traces_have_the_declared_shape_and_regression() -> None:
    rng = np.random.default_rng(0)
    by_name = {s.name: s for s in decisions.SCENARIOS}
    healthy = decisions.generate(by_name["healthy_10rps"], 50, rng)
    x5 = decisions.generate(by_name["errors_x5_10rps"], 50, rng)
    ratio = x5.canary_errors.sum() / x5.canary_requests.sum()
    base = healthy.canary_errors.sum() / healthy.canary_requests.sum()
    assert 0.004 < base < 0.006 and 4 < ratio / base < 6
    assert healthy.canary_requests.mean() == pytest.approx(100, rel=0.05)  # 10 rps x 10 s


def test_command_writes_every_scenario_and_judge(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "decisions", "--traces", "3", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "fixed-horizon floor" in result.output
    rows = json.loads(out.read_text())["scenarios"]
    assert {(r["scenario"], r["judge"]) for r in rows} == {
        (s.name, j) for s in decisions.SCENARIOS for j in decisions.JUDGES
    }
    for r in rows:
        assert set(r) >= FIELDS and r["traces"] == 3
        regression = next(s for s in decisions.SCENARIOS if s.name == r["scenario"]).regression
        assert (r["false_rollback_rate"] is None) == regression
        assert (r["missed_regression_rate"] is None) != regression
    ours = {r["scenario"]: r for r in rows if r["judge"] == "changelane"}
    # fail-safe outcomes that hold for every trace, not only on average
    assert ours["no_data"]["promoted_rate"] == 0 and ours["prometheus_outage"]["promoted_rate"] == 0
    assert ours["outage_10rps"]["missed_regression_rate"] == 0
