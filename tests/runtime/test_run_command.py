"""``changelane run`` as a process against the simulated cluster: probes, metrics, the kill
switch from a flagd file, fail-safe analysis without Prometheus, and a graceful SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from controller.core.canary import template_hash
from tests.runtime.harness import NS, deployment_doc, lane_doc, running, wait

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


def test_run_serves_probes_fails_safe_without_metrics_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    lane = lane_doc(
        steps=[{"weight": 50, "minDuration": "0s"}, {"weight": 100, "minDuration": "0s"}]
    )
    with running(tmp_path, lane=lane, start=False) as env:
        flags = tmp_path / "flags.json"
        flags.write_text(
            json.dumps(
                {
                    "flags": {
                        "changelane.lane.web-lane.autonomy": {
                            "state": "ENABLED",
                            "variants": {"on": True, "off": False},
                            "defaultVariant": "on",
                        }
                    }
                }
            )
        )
        port = _free_port()
        audit = tmp_path / "audit.jsonl"
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "controller", "run",
                "--kubeconfig", str(env.kubeconfig),
                "--namespace-lease", NS,
                "--instance", "run-test-0",
                "--lease-duration", "4", "--renew-deadline", "3",
                "--metrics-port", str(port), "--metrics-address", "127.0.0.1",
                "--audit-log", str(audit), "--audit-fsync", "never",
                "--flag-provider", "file", "--flag-file", str(flags),
                "--log-level", "warning",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait(lambda: _get(port, "/readyz")[0] == 200, timeout=20)
            assert _get(port, "/healthz")[0] == 200
            wait(lambda: "changelane_leader 1.0" in _get(port, "/metrics")[1], timeout=15)

            env.sim.store.create("deployments", deployment_doc())
            wait(lambda: env.sim.deployment_ready(NS, "web-primary"), timeout=20)
            env.set_image("web:2")
            name = f"web-{template_hash(env.deployment('web')['spec']['template'])}"
            # Gates pass (the kill switch is on in the flagd file); without a metrics
            # backend every measurement is an Error: the release never promotes.
            wait(
                lambda: len(env.release(name)["status"].get("measurements") or []) >= 2, timeout=20
            )
            status = env.release(name)["status"]
            assert status["phase"] in ("Progressing", "Paused"), status
            assert {m["verdict"] for m in status["measurements"]} == {"Error"}
            assert "no metrics backend" in status["measurements"][0]["message"]
            assert (
                env.deployment("web-primary")["spec"]["template"]["spec"]["containers"][0]["image"]
                == "web:1"
            )
            wait(lambda: audit.exists() and '"started"' in audit.read_text(), timeout=10)

            # The dashboard on the metrics port: the release in flight, its step and the
            # kill switch as the controller evaluated it; an unknown page is a 404.
            code, page = _get(port, "/releases")
            assert code == 200 and name in page and "1/2" in page
            code, page = _get(port, "/lanes")
            assert code == 200 and "web-lane" in page and "on <span" in page
            assert _get(port, "/releases/shop/nope")[0] == 404
            # The audit chain's head is anchored in the cluster.
            anchor = env.sim.store.get_obj("configmaps", NS, "changelane-audit-head")
            assert int(anchor["data"]["seq"]) >= 2

            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
            assert time.monotonic() - started < 15
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        lease = env.sim.store.get_obj("leases", NS, "changelane-leader")
        assert not lease["spec"].get("holderIdentity"), "the lease was not handed back"
