"""`changelane demo` end to end: the real controller, the simulated cluster, real Prometheus
(when installed; CI installs it), two releases with the expected outcomes, and nothing left
running afterwards, also when interrupted."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.audit.log import verify
from controller.adapters.metrics.prometheus_process import prometheus_binary
from controller.demo import scenario
from controller.demo.runner import DemoOptions, run_demo
from controller.sim.cluster import SimCluster
from tests.notify.receiver import receiver
from tests.runtime.harness import edit

REQUIRE_PROMETHEUS = os.environ.get("CHANGELANE_REQUIRE_PROMETHEUS") == "1"


def _children(pid: int) -> list[str]:
    out = subprocess.run(
        ["ps", "-o", "pid=,cmd=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["prometheus", "embedded"])
def test_demo_promotes_the_good_release_and_rolls_back_the_bad_one(
    backend: str, tmp_path: Path
) -> None:
    if backend == "prometheus" and prometheus_binary() is None:
        if REQUIRE_PROMETHEUS:
            pytest.fail("prometheus binary missing but CHANGELANE_REQUIRE_PROMETHEUS=1")
        pytest.skip("prometheus binary not installed")
    audit = tmp_path / "audit.jsonl"
    started = time.monotonic()
    out = io.StringIO()
    kept: dict[str, Any] = {}
    keep = backend == "embedded"  # --keep: controller and dashboard stay up with the cluster

    def on_ready(sim: SimCluster, kubeconfig: Path) -> None:
        kept["sim"] = sim

    def on_kept(url: str) -> None:
        kept["lanes"] = urllib.request.urlopen(url + "lanes", timeout=10).read().decode()
        # A release shipped on the kept cluster is handled: the controller still runs.
        store = kept["sim"].store

        def ship(dep: dict[str, Any]) -> None:
            dep["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/docs:9"

        edit(store, "deployments", scenario.NAMESPACE, scenario.WORKLOAD, ship)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "phase" not in kept:
            for item in store.list("lanereleases", scenario.NAMESPACE).items:
                obj = store.to_obj(store.rtype("lanereleases"), item)
                images = obj["spec"]["to"].get("images") or []
                if images == ["registry.example/docs:9"] and obj.get("status", {}).get("phase"):
                    kept["phase"] = obj["status"]["phase"]
            time.sleep(0.2)

    with receiver() as rx:
        result = run_demo(
            DemoOptions(
                audit_log=audit,
                use_prometheus=backend == "prometheus",
                out=out,
                webhook=rx.url,  # --webhook: the demo's notifications as CloudEvents
                keep=keep,
                on_ready=on_ready,
                on_kept=on_kept,
            )
        )
    types = sorted(e.body["type"].rsplit(".", 1)[1] for e in rx.received)
    # (with --keep, the extra release shipped on the kept cluster may add its own)
    assert types == ["promoted", "rolledBack"] or (
        keep and {"promoted", "rolledBack"} <= set(types)
    )
    if keep:
        urls = [line for line in out.getvalue().splitlines() if line.startswith("http://")]
        assert len(urls) == 1 and urls[0].endswith("/")  # the dashboard's URL, on its own line
        assert "docs-demo" in kept["lanes"]
        assert kept.get("phase") not in (None, "Pending"), kept
    elapsed = time.monotonic() - started
    data = result.as_json()
    assert data["metrics_backend"] == backend
    outcomes = [(r["expected"], r["outcome"]) for r in data["releases"]]
    assert outcomes == [("promote", "Promoted"), ("rollback", "RolledBack")]
    good, bad = data["releases"]
    assert good["canary_max_weight"] == 100
    assert 0 < bad["canary_max_weight"] < 100
    assert bad["decision_seconds"] < good["decision_seconds"]
    assert verify(audit).ok
    decisions = [r.decision.value for r in result.records]
    assert decisions.count("promoted") == 1 and decisions.count("rolled_back") == 1
    assert elapsed < 180
    assert not [c for c in _children(os.getpid()) if "prometheus" in c]


@pytest.mark.slow
def test_demo_cli_writes_json_and_cleans_up_on_ctrl_c(tmp_path: Path) -> None:
    out = tmp_path / "demo.json"
    # As from a terminal: a shell without job control starts background commands (a CI
    # script's `check &`) with SIGINT ignored, and the child would inherit that.
    as_from_a_terminal = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv = ['changelane', *sys.argv[1:]]; runpy.run_module('controller', "
        "run_name='__main__')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", as_from_a_terminal, "demo", "--json", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 60
    for line in proc.stdout:  # wait until the first release is under way
        seen.append(line)
        if "Progressing" in line or time.monotonic() > deadline:
            break
    children = _children(proc.pid)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + rest
    assert "everything the demo started has been stopped" in rest
    assert not out.exists()
    for line in children:
        pid = int(line.split()[0])
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        ), f"left behind: {line}"
