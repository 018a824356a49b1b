"""One audit chain across leaders: each leader appends to its own pod's log, continuing
from the head the previous leader anchored in the cluster; `audit verify --cluster` checks
the segments as one chain against that anchor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from controller.adapters.audit.anchor import AuditAnchor
from controller.adapters.audit.log import FsyncPolicy
from controller.adapters.audit.segments import verify_segments
from controller.adapters.audit.sink import FanOutAuditSink
from controller.core.canary import template_hash
from controller.runtime.audit_chain import AnchoredAuditLog
from controller.runtime.manager import Controller
from tests.runtime.harness import NS, Env, deployment_doc, lane_doc, new_controller, running, wait

pytestmark = pytest.mark.slow

LANE = lane_doc(
    steps=[{"weight": 50, "minDuration": "3s"}, {"weight": 100, "minDuration": "2s"}],
    progressDeadline="60s",
)


def _controller(env: Env, instance: str, log: Path) -> Controller:
    fanout = FanOutAuditSink([env.sink])
    c = new_controller(env.kubeconfig, env.sim, fanout, instance=instance)  # type: ignore[arg-type]
    fanout.add(
        AnchoredAuditLog(log, FsyncPolicy.NEVER, AuditAnchor(c.api, NS), instance), required=True
    )
    env.controllers.append(c)
    c.start()
    return c


def _kill_lease(controller: Controller) -> None:
    """The leader loses the Lease as if it died: it stops writing at its renew deadline."""
    assert controller.leadership is not None
    lock = controller.leadership._config.lock

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ApiException(status=500, reason="injected: leader killed")

    for verb in ("read_namespaced_lease", "replace_namespaced_lease", "create_namespaced_lease"):
        setattr(lock.api_instance, verb, refuse)


def _verify_cli(env: Env, *segments: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "controller", "audit", "verify"),
            *map(str, segments),
            *("--cluster", "--kubeconfig", str(env.kubeconfig), "--anchor-namespace", NS),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_killing_the_leader_mid_release_leaves_one_anchored_chain(tmp_path: Path) -> None:
    logs = {"c-a": tmp_path / "a" / "audit.jsonl", "c-b": tmp_path / "b" / "audit.jsonl"}
    for path in logs.values():
        path.parent.mkdir()
    with running(tmp_path, lane=LANE, start=False) as env:
        a = _controller(env, "c-a", logs["c-a"])
        b = _controller(env, "c-b", logs["c-b"])
        wait(lambda: a.is_leader() or b.is_leader(), timeout=15)
        leader = a if a.is_leader() else b
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"), timeout=20)
        env.set_image("web:2")
        name = f"web-{template_hash(env.deployment('web')['spec']['template'])}"
        env.wait_phase(["Progressing"], name=name)
        _kill_lease(leader)
        env.wait_phase(["Promoted"], name=name, timeout=60)
        wait(lambda: not env.release(name)["status"].get("outbox"), timeout=20)
        anchored = AuditAnchor(a.api, NS).read()
        assert anchored is not None
        segments = sorted(p for d in logs.values() for p in d.parent.iterdir())
        result = verify_segments(segments, anchored)
        assert result.ok, result.problems
        assert result.head == anchored and result.records == anchored.seq
        # Both leaders wrote part of the one chain.
        assert all(path.stat().st_size > 0 for path in logs.values())
        ok = _verify_cli(env, *segments)
        assert ok.returncode == 0, ok.stderr
        assert f"one chain; head seq {anchored.seq}" in ok.stdout

        # Cut the chain's last line: the anchor says it existed.
        holder = next(p for p in segments if f'"seq":{anchored.seq},'.encode() in p.read_bytes())
        lines = holder.read_bytes().splitlines(keepends=True)
        holder.write_bytes(b"".join(lines[:-1]))
        cut = _verify_cli(env, *segments)
    assert cut.returncode == 1
    assert "cut off the end" in cut.stderr and f"anchored seq {anchored.seq}" in cut.stderr
