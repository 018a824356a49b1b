"""The controller, through the official client, against the simulated cluster."""

from __future__ import annotations

from pathlib import Path

from tests.runtime.harness import NS, deployment_doc, running, wait


def test_adopts_promotes_a_good_release_and_rolls_back_a_bad_one(tmp_path: Path) -> None:
    with running(tmp_path) as env:
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"), timeout=20)
        # The original hands over once the primary is ready (never before).
        wait(lambda: env.deployment("web")["spec"]["replicas"] == 0)

        env.set_image("web:2")
        promoted = env.wait_phase(["Promoted", "RolledBack", "Rejected"])
        assert promoted["status"]["phase"] == "Promoted", promoted["status"]
        primary = env.deployment("web-primary")
        assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
        wait(lambda: env.deployment("web")["spec"]["replicas"] == 0)

        env.set_image("web:3-bad")
        rolled = env.wait_phase(["RolledBack", "Promoted"], name=f"web-{_hash(env)}")
        assert rolled["status"]["phase"] == "RolledBack"
        assert "errors" in rolled["status"]["rollbackReason"]
        primary = env.deployment("web-primary")
        assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
        wait(lambda: env.deployment("web")["spec"]["replicas"] == 0)
        wait(lambda: [r.decision.value for r in env.sink.records].count("rolled_back") == 1)
        decisions = [r.decision.value for r in env.sink.records]
        assert decisions.count("promoted") == 1 and decisions.count("rolled_back") == 1


def _hash(env: object) -> str:
    from controller.core.canary import template_hash

    dep = env.deployment("web")  # type: ignore[attr-defined]
    return template_hash(dep["spec"]["template"])


def test_a_decision_the_audit_log_cannot_take_is_not_acted_on(tmp_path: Path) -> None:
    from controller.core.audit import AuditRecord

    class BrokenDisk:
        def __init__(self) -> None:
            self.broken = True
            self.kept: list[AuditRecord] = []

        def emit(self, record: AuditRecord) -> None:
            if self.broken:
                raise OSError("disk full")
            self.kept.append(record)

    disk = BrokenDisk()
    with running(tmp_path) as env:
        env.controllers[0].reconciler.sinks.append(disk)
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"), timeout=20)
        env.set_image("web:2")
        rel = env.wait_phase(["Progressing"], timeout=20)
        import time

        time.sleep(2)  # several reconciles: the decision is committed but not recorded
        assert env.deployment("web")["spec"]["replicas"] == 0
        assert env.release(rel["metadata"]["name"])["status"]["outbox"]
        disk.broken = False
        env.wait_phase(["Promoted"], timeout=40)
        ids = [r.id for r in disk.kept]
        assert len(ids) == len(set(ids))
        assert [r.decision.value for r in disk.kept][:2] == ["release_seen", "started"]
