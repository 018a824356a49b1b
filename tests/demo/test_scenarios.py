"""`changelane demo --scenario NAME`: one demo run per scenario (embedded metrics, to keep
them quick), checking the outcome, that no canary ran where none should, and the JSON."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from controller.cli.demo import demo
from controller.demo import scenario
from controller.demo.runner import DemoOptions, run_demo
from controller.sim.cluster import SimCluster
from controller.sim.store import StoreEvent


class CanaryReplicas:
    """Every replica count the demo's canary Deployment was given."""

    def __init__(self) -> None:
        self.values: list[int] = []
        self._lock = threading.Lock()

    def attach(self, sim: SimCluster, kubeconfig: Path) -> None:
        sim.store.add_listener(self)

    def __call__(self, event: StoreEvent) -> None:
        if event.type_key != "deployments.apps" or event.type == "DELETED":
            return
        obj = event.obj.obj()
        if obj["metadata"]["name"] == scenario.WORKLOAD:
            with self._lock:
                self.values.append(int(obj["spec"].get("replicas") or 0))


def run(name: str, tmp_path: Path) -> tuple[dict[str, Any], CanaryReplicas]:
    replicas = CanaryReplicas()
    with open(os.devnull, "w") as quiet:
        result = run_demo(
            DemoOptions(
                scenario=name,
                audit_log=tmp_path / "audit.jsonl",
                use_prometheus=False,
                out=quiet,
                on_ready=replicas.attach,
            )
        )
    data = result.as_json()
    assert set(data) == {"metrics_backend", "releases"}
    for entry in data["releases"]:
        assert {"name", "expected", "outcome", "canary_max_weight", "decision_seconds"} <= set(
            entry
        )
    assert result.as_expected, data
    return data, replicas


@pytest.mark.slow
def test_missing_provenance_is_rejected_and_no_canary_runs(tmp_path: Path) -> None:
    data, replicas = run("missing-provenance", tmp_path)
    (release,) = data["releases"]
    assert release["outcome"] == "Rejected" and release["canary_max_weight"] == 0
    assert set(replicas.values) == {0}, replicas.values


@pytest.mark.slow
def test_autonomy_off_holds_the_release_and_no_canary_runs(tmp_path: Path) -> None:
    data, replicas = run("autonomy-off", tmp_path)
    (release,) = data["releases"]
    assert release["outcome"] == "Gated" and release["canary_max_weight"] == 0
    assert "killSwitch" in release["gate_reason"]
    assert set(replicas.values) == {0}, replicas.values


@pytest.mark.slow
def test_flag_ramp_promotes_with_the_flag_ramped_in_step(tmp_path: Path) -> None:
    data, replicas = run("flag-ramp", tmp_path)
    (release,) = data["releases"]
    assert release["outcome"] == "Promoted" and release["canary_max_weight"] == 100
    assert release["flag_weights"] == [20, 50, 100]
    assert max(replicas.values) > 0


@pytest.mark.slow
def test_lane_suspend_holds_the_release_after_the_budget_is_spent(tmp_path: Path) -> None:
    data, _ = run("lane-suspend", tmp_path)
    outcomes = [r["outcome"] for r in data["releases"]]
    assert outcomes == ["RolledBack", "RolledBack", "Gated"]
    held = data["releases"][-1]
    assert held["canary_max_weight"] == 0
    assert "laneSuspended" in held["gate_reason"] and "2 of the last 3" in held["gate_reason"]


@pytest.mark.slow
def test_earned_autonomy_demotes_the_failing_agent_alone(tmp_path: Path) -> None:
    data, _ = run("earned-autonomy", tmp_path)
    outcomes = [r["outcome"] for r in data["releases"]]
    # flaky-bot fails twice and is demoted; claude-code still promotes on its own;
    # flaky-bot's next good release ramps to 100% and waits for a human.
    assert outcomes == ["RolledBack", "RolledBack", "Promoted", "Paused"]
    assert data["releases"][-1]["canary_max_weight"] == 100


def test_cli_lists_the_scenarios_and_refuses_an_unknown_one() -> None:
    result = CliRunner().invoke(demo, ["--scenario", "nope"])
    assert result.exit_code == 2
    assert set(scenario.SCENARIOS) == {
        "default",
        "missing-provenance",
        "autonomy-off",
        "flag-ramp",
        "lane-suspend",
        "earned-autonomy",
    }
    for name in scenario.SCENARIOS:
        assert name in result.output
