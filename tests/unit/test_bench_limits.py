"""The detection-limits bench: the one-pod bound, the oracle's threshold, the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from controller.bench import limits
from controller.cli.main import cli


def test_one_pod_bound_is_the_false_rollback_rate_for_healthy_code() -> None:
    # a healthy one-pod canary is rolled back at exactly the budget by the best test
    assert limits.one_pod_bound(1.0) == pytest.approx(limits.FALSE_ROLLBACK_RATE)


def test_one_pod_bound_for_x2_at_the_issues_pod_spread() -> None:
    # sigma = 0.2 sqrt(1.1) = 0.2098; (ln 2 - 2.3263 sigma) / sigma = 0.978
    assert limits.one_pod_bound(2.0) == pytest.approx(0.836, abs=0.001)
    # more spread, less reach; a larger effect, more
    assert limits.one_pod_bound(2.0, pod_sd=0.3) < limits.one_pod_bound(2.0)
    assert limits.one_pod_bound(3.0) > limits.one_pod_bound(2.0)


def test_oracle_threshold_sits_at_the_healthy_quantile() -> None:
    rng = np.random.default_rng(0)
    healthy = {"z": rng.normal(0, 1, 200_000)}
    held_out = {"z": rng.normal(0, 1, 200_000)}
    shifted = {"z": rng.normal(2.326, 1, 200_000)}  # shifted by z_0.99: power one half
    out = limits.oracle_power(healthy, shifted, held_out)["z"]
    assert out["held_out_false_rollback"] == pytest.approx(0.01, abs=0.001)
    assert out["power"] == pytest.approx(0.5, abs=0.01)
    same = limits.oracle_power(healthy, held_out, held_out)["z"]
    assert same["power"] == pytest.approx(0.01, abs=0.001)


def test_no_oracle_beats_the_one_pod_bound_on_the_generator() -> None:
    # The bound is a theorem about the generator's pod factors; the oracle is measured on
    # it. An oracle above the bound (beyond sampling noise) would mean the generator's
    # one-pod canary is not what the bound assumes.
    result = limits.run(count=400, seed=3, quick=True)
    one_pod = [r for r in result["rows"] if r["one_pod_bound"] is not None]
    assert one_pod, "the realistic one-pod cases carry the bound"
    for r in one_pod:
        slack = 3 * np.sqrt(r["one_pod_bound"] * (1 - r["one_pod_bound"]) / 400) + 0.01
        assert r["oracle_power"] <= r["one_pod_bound"] + slack, r


def test_limits_command_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "limits.json"
    result = CliRunner().invoke(
        cli, ["bench", "limits", "--quick", "--count", "200", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "| errors_x5_10rps | healthy_10rps | equal arms | 30 |" in result.output
    assert "| realistic_x2_10rps | realistic_10rps | 50% | 600 |" in result.output
    data = json.loads(out.read_text())
    assert {r["regression"] for r in data["rows"]} == {c.regression for c in limits.CASES}
    for r in data["rows"]:
        assert 0.0 <= r["oracle_power"] <= 1.0
        assert set(r["statistics"]) == {"log ratio", "difference", "poisson z"}
        assert 0.0 <= r["tolerance_power"] <= 1.0
    assert data["tolerance"] == pytest.approx(0.25)
    assert "| at x1.25 | fpr |" in result.output


def test_a_twin_at_the_tolerance_is_harder_to_tell_from_a_regression() -> None:
    # The threshold set on a healthy twin worse by exactly the lane's tolerance sits
    # higher than on the healthy family, so the oracle catches no more (beyond sampling
    # noise), and its budget holds on an independent draw of the twin.
    result = limits.run(count=600, seed=5, quick=True)
    for r in result["rows"]:
        slack = 3 * np.sqrt(0.25 / 600) + 0.01
        assert r["tolerance_power"] <= r["oracle_power"] + slack, r
        assert r["tolerance_held_out_false_rollback"] <= 0.01 + 3 * np.sqrt(0.01 / 600), r
