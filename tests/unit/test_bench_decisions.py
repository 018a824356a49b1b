"""The decision benchmark: its machinery, and the key targets on the seed-fixed quick slice."""

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
    "paused_rate",
    "undecided_rate",
    "promote_median_s",
    "promote_p90_s",
    "detection_median_s",
    "detection_p90_s",
    "endings",
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


def by_name(name: str) -> decisions.Scenario:
    return next(s for s in decisions.SCENARIOS if s.name == name)


def test_generated_traces_have_the_declared_shape_ratio_and_regression() -> None:
    rng = np.random.default_rng(0)
    weights = decisions.bench_lane().weights
    healthy = decisions.generate(by_name("healthy_10rps"), 50, rng, weights)
    x5 = decisions.generate(by_name("errors_x5_10rps"), 50, rng, weights)
    ratio = x5.canary_errors.sum() / x5.canary_requests.sum()
    base = healthy.canary_errors.sum() / healthy.canary_requests.sum()
    assert 0.004 < base < 0.006 and 4 < ratio / base < 6
    assert healthy.canary_requests[0].mean() == pytest.approx(100, rel=0.05)  # 10 rps x 10 s
    steps = decisions.generate(by_name("poisson_steps_10rps"), 50, rng, weights)
    # replica-weighted: the canary serves w:100 of the baseline's traffic at weight w
    for s, w in enumerate(weights):
        share = steps.canary_requests[s].sum() / steps.baseline_requests[s].sum()
        assert share == pytest.approx(w / 100, rel=0.05)
    assert steps.canary_requests[0].mean() == pytest.approx(100, rel=0.05)  # rps at step 1


def test_realistic_noise_is_over_dispersed_and_the_bad_pod_is_a_regression() -> None:
    rng = np.random.default_rng(0)
    weights = decisions.bench_lane().weights
    plain = decisions.generate(by_name("poisson_steps_10rps"), 100, rng, weights)
    noisy = decisions.generate(by_name("realistic_10rps"), 100, rng, weights)

    def dispersion(tr: decisions.Traces) -> float:
        errors = tr.baseline_errors[2].reshape(100, -1, 6).sum(axis=2)  # per minute
        return float(np.mean(errors.var(axis=1) / errors.mean(axis=1)))

    assert dispersion(plain) < 1.5 < 3 < dispersion(noisy)
    bad = decisions.generate(by_name("realistic_bad_pod_10rps"), 100, rng, weights)
    ratio = (bad.canary_errors[0].sum() / bad.canary_requests[0].sum()) / (
        bad.baseline_errors[0].sum() / bad.baseline_requests[0].sum()
    )
    assert 2.2 < ratio < 3.5  # (4 healthy pods + one at x10) / 5


def test_quick_slice_meets_the_key_targets() -> None:
    """Seed-fixed: these are the product's promises, measured, and they can fail."""
    result = decisions.run(traces=24, seed=3, quick=True)
    rows = {(r["scenario"], r["judge"]): r for r in result["scenarios"]}
    ours = {name: r for (name, judge), r in rows.items() if judge == "changelane"}
    assert set(ours) == set(decisions.QUICK)
    for r in ours.values():
        assert set(r) >= FIELDS and r["traces"] == 24
        assert sum(r["endings"].values()) == 24
    # at most one of the 24 (the 1% target is measured on 500 a family by the full run)
    for name in ("healthy_10rps", "realistic_10rps", "realistic_prometheus_outage_10rps"):
        assert ours[name]["false_rollback_rate"] <= 1 / 24, ours[name]
    for name in ("outage_10rps", "realistic_x20_10rps"):
        assert ours[name]["missed_regression_rate"] == 0
        assert ours[name]["detection_median_s"] <= 30
    assert ours["errors_x5_10rps"]["missed_regression_rate"] == 0
    for name in ("realistic_x2_10rps", "realistic_bad_pod_10rps", "no_data"):
        assert ours[name]["promoted_rate"] == 0, ours[name]  # never promote a regression
    # one bad pod of five is rolled back by its own per-pod evidence, in minutes (the
    # arm-level test alone missed 10.4% on the full run, detection p50 450 s)
    assert ours["realistic_bad_pod_10rps"]["missed_regression_rate"] == 0
    assert ours["realistic_bad_pod_10rps"]["detection_median_s"] <= 240
    # a healthy equal-arm lane with few errors is promoted within the hour, not paused at
    # a deadline shorter than ruling out x2 takes (18.6% with the 30-minute deadline)
    assert ours["healthy_10rps"]["promoted_rate"] >= 0.5
    # the backend came back after ten minutes: releases went on by themselves (none held
    # for a human, some promoted), none promoted while it was down. Few promote within
    # the hour on this noise since the futility test counts the canary's draw of pods
    # (17.0% on the full run, 51.2% before): the rate is not what this checks.
    down = ours["realistic_prometheus_outage_10rps"]
    assert down["paused_rate"] == 0
    assert down["promoted_rate"] >= 2 / 24 and down["promote_median_s"] > 660
    # Flagger's cumulative failed checks roll the backend outage back; we do not
    flagger = rows[("realistic_prometheus_outage_10rps", "flagger")]
    assert flagger["false_rollback_rate"] == 1.0


def test_command_quick_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        cli, ["bench", "decisions", "--quick", "--count", "2", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["scenarios"]
    assert {(r["scenario"], r["judge"]) for r in rows} == {
        (s, j) for s in decisions.QUICK for j in decisions.JUDGES
    }
    for r in rows:
        regression = by_name(r["scenario"]).regression
        assert (r["false_rollback_rate"] is None) == regression
        assert (r["missed_regression_rate"] is None) != regression


def _scenario(name: str) -> decisions.Scenario:
    return next(s for s in decisions.SCENARIOS if s.name == name)


def test_the_baseline_history_leaves_the_release_traces_as_they_were() -> None:
    weights = decisions.bench_lane().weights
    scenario = _scenario("realistic_10rps")
    without = decisions.generate(scenario, 8, np.random.default_rng(4), weights)
    with_history = decisions.generate(
        scenario, 8, np.random.default_rng(4), weights, np.random.default_rng(5)
    )
    assert without.history is None and with_history.history is not None
    for a, b in (
        (without.canary_errors, with_history.canary_errors),
        (without.baseline_requests, with_history.baseline_requests),
    ):
        assert np.array_equal(a, b)
    assert without.baseline_pods is not None and with_history.baseline_pods is not None
    assert np.array_equal(without.baseline_pods.errors, with_history.baseline_pods.errors)
    history = with_history.history
    assert history.requests.shape == (8, decisions.HISTORY_S // decisions.SCRAPE_S)
    assert history.pod_requests is not None and history.pod_requests.shape[-1] == 10


def test_each_family_s_history_gives_a_prior_in_line_with_its_noise() -> None:
    lane = decisions.with_noise_prior(decisions.bench_lane(), "history")
    check = lane.checks[0]
    assert decisions.bench_lane().checks[0].noise_prior == "fixed"  # the default lane's
    priors = {}
    for name in ("poisson_steps_10rps", "arm_drift_10rps", "realistic_10rps"):
        tr = decisions.generate(
            _scenario(name), 20, np.random.default_rng(2), lane.weights, np.random.default_rng(3)
        )
        found = [decisions.history_evidence(tr, i, check, lane) for i in range(20)]
        priors[name] = float(np.median([e.prior.dispersion for e in found if e and e.prior]))
    assert priors["poisson_steps_10rps"] < 0.03  # Poisson: at the floor
    assert priors["arm_drift_10rps"] > 0.05  # 30% drift over two minutes
    assert priors["realistic_10rps"] > priors["arm_drift_10rps"]


@pytest.mark.parametrize("name", ["arm_drift_10rps", "realistic_10rps"])
def test_a_twin_at_a_multiplier_is_the_family_with_a_worse_canary(name: str) -> None:
    weights = decisions.bench_lane().weights
    family = _scenario(name)
    twin = decisions.at_multiplier(family, 1.25)
    assert twin.name == f"{name}@x1.25" and not twin.regression
    a = decisions.generate(family, 300, np.random.default_rng(4), weights)
    b = decisions.generate(twin, 300, np.random.default_rng(4), weights)

    def ratio(t: decisions.Traces) -> float:
        canary = t.canary_errors.sum() / t.canary_requests.sum()
        return float(canary / (t.baseline_errors.sum() / t.baseline_requests.sum()))

    assert 1.1 < ratio(b) / ratio(a) < 1.4


def test_command_runs_healthy_twins_at_a_multiplier(tmp_path: Path) -> None:
    out = tmp_path / "twins.json"
    args = ["bench", "decisions", "--quick", "--count", "2", "--canary-errors-x", "1.25"]
    result = CliRunner().invoke(cli, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["settings"]["canary_errors_x"] == 1.25
    healthy = [s for s in decisions.QUICK if not _scenario(s).regression]
    assert {r["scenario"] for r in data["scenarios"]} == {f"{s}@x1.25" for s in healthy}
    refused = CliRunner().invoke(
        cli, ["bench", "decisions", "--family", "errors_x5_10rps", "--canary-errors-x", "2"]
    )
    assert refused.exit_code == 2 and "healthy families only" in refused.output
    traces = tmp_path / "mine.jsonl"
    traces.write_text("")
    with_traces = CliRunner().invoke(
        cli, ["bench", "decisions", "--traces", str(traces), "--canary-errors-x", "1.25"]
    )
    assert with_traces.exit_code == 2 and "not --traces" in with_traces.output
