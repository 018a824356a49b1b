"""``changelane bench controller --quick``: the CI slice of the scale benchmark, run for real
(simulated cluster, Prometheus stand-in, ``changelane run`` as its own process)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.bench.controller_replicas import lane_names
from controller.bench.controller_scale import (
    Size,
    first_analysis_p99,
    histogram_quantile,
    lag_ratios,
    replica_plans,
)
from controller.bench.grouped_answers import grouped_series
from controller.cli.main import cli
from controller.core.release_machine import MEASUREMENT_HISTORY
from controller.core.sharding import shard_of

FIELDS = {
    "deployments",
    "releases",
    "lanes",
    "rss_steady_mib",
    "rss_peak_mib",
    "cpu_idle_pct",
    "adoption_s",
    "reconcile_p50_ms",
    "reconcile_p99_ms",
    "analysis_lag_p99_ratio",
    "queries_per_tick",
    "checks_per_lane",
}


def test_histogram_quantile_interpolates_within_the_bucket() -> None:
    before = {0.01: 0.0, 0.1: 0.0, math.inf: 0.0}
    after = {0.01: 50.0, 0.1: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, before, after) == pytest.approx(0.01)
    assert histogram_quantile(0.75, before, after) == pytest.approx(0.055)
    assert math.isnan(histogram_quantile(0.5, after, after))


def test_lag_counts_the_gap_still_open_at_the_end() -> None:
    ratios = lag_ratios({"a": [0.0, 30.0, 60.0], "b": [0.0, 30.0]}, window_end=70.0, interval_s=30)
    assert ratios == [pytest.approx(1.0), pytest.approx(40 / 30)]


def test_first_measurement_is_timed_from_the_new_templates() -> None:
    first = {f"r{i}": 100.0 + i for i in range(100)}  # 0 s .. 99 s after the templates
    assert first_analysis_p99(first, started=100.0) == 98.0
    assert first_analysis_p99({}, started=100.0) is None


def test_a_release_never_measured_counts_as_waiting_until_the_wait_gave_up() -> None:
    first = {f"r{i}": 110.0 for i in range(90)}  # 10 s for 90 releases, 10 never measured
    assert first_analysis_p99(first, started=100.0, expected=100, now=400.0) == 300.0


def test_replica_worlds_give_each_shard_a_lane_and_compare_like_with_like() -> None:
    lanes = lane_names(3, 3)
    assert sorted(shard_of(lane, 3) for lane in lanes) == [0, 1, 2]
    one, three = replica_plans(3)
    assert (one.replicas, three.replicas) == (1, 3)
    assert one.lanes == three.lanes == 3 and one.deployments == three.deployments
    assert three.releases == (3 * one.releases[0],)
    # A smaller world (--size): the same releases per replica, its own interval and window.
    one, three = replica_plans(3, size=Size(1_500, 100, 10, 40.0))
    assert (one.deployments, one.releases, three.releases) == (1_500, (100,), (300,))
    assert one.interval_s == three.interval_s == 10 and three.window_s == 40.0


def test_stand_in_answers_a_grouped_query_per_listed_value() -> None:
    query = 'sum by (app, track) (x{app=~"a|b\\\\.c", track=~"canary|baseline"})'
    assert grouped_series(query) == [
        {"app": "a", "track": "canary"},
        {"app": "a", "track": "baseline"},
        {"app": "b.c", "track": "canary"},
        {"app": "b.c", "track": "baseline"},
    ]
    assert grouped_series('histogram_quantile(0.9, sum by (le) (x{app="a"}))') is None


@pytest.mark.slow
def test_quick_slice_writes_the_issue_shape_with_sane_values(tmp_path: Path) -> None:
    out = tmp_path / "controller.json"
    result = CliRunner().invoke(cli, ["bench", "controller", "--quick", "--json", str(out)])
    assert result.exit_code == 0, result.output
    runs = json.loads(out.read_text())["runs"]
    assert [(r["deployments"], r["releases"]) for r in runs] == [(40, 0), (40, 10), (40, 10)]
    # The last window again, every release's measurement history as long as it gets.
    assert runs[2].pop("history") == MEASUREMENT_HISTORY
    for r in runs:
        assert set(r) == FIELDS
        assert 20 < r["rss_steady_mib"] <= r["rss_peak_mib"] < 2000
        assert 0 <= r["cpu_idle_pct"] < 200
        assert 0 < r["adoption_s"] < 120
        assert r["lanes"] == 1 and r["checks_per_lane"] == 2
    idle, busy, full = runs
    assert 0.9 <= full["analysis_lag_p99_ratio"] < 5
    assert idle["queries_per_tick"] == 0 and idle["analysis_lag_p99_ratio"] is None
    # Every release was measured, on a cadence near the lane's interval (2 s, loaded CI).
    assert 0.9 <= busy["analysis_lag_p99_ratio"] < 5
    assert busy["queries_per_tick"] > 0
    assert 0 < busy["reconcile_p50_ms"] <= busy["reconcile_p99_ms"]
    assert "lag p99" in result.output
