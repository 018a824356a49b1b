"""Crash safety: kill the controller at every effect of a release's life, start a fresh one.

For a good release and a bad one, a dry run counts the controller's effects (API writes
and audit appends) from adopting the workload to the release's end. Then, for every
effect N, a controller is killed just before and just after its Nth effect and a fresh
controller (another instance id) takes over the same cluster and the same audit log. Each
run must end exactly as an undisturbed one: the good release Promoted, the bad one
RolledBack, the primary taking the release's template only after the release was decided
Promoting with a Pass at full exposure (checked against the API server's own history),
each decision record in the durable audit log exactly once and none missing, one
LaneRelease, and the canary at zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from controller.core import canary as mech
from controller.runtime.manager import Controller
from controller.sim.cluster import SimCluster
from tests.runtime.crashkit import (
    Killed,
    KillPlan,
    Recorder,
    audit_ids,
    start_controller,
)
from tests.runtime.harness import NS, deployment_doc, edit, lane_doc, provenance

pytestmark = pytest.mark.slow

FAST_LANE = lane_doc(
    steps=[{"weight": 50, "minDuration": "0s"}, {"weight": 100, "minDuration": "0s"}],
    progressDeadline="30s",
)
GOOD, BAD = "web:2", "web:2-bad"
#: scenarios run side by side: each mostly waits on the simulated cluster's timers
PARALLEL = 4


@dataclass
class Outcome:
    point: str
    effects: list[str]
    killed: bool
    problems: list[str] = field(default_factory=list)


class Supervisor:
    """Runs one controller; when it dies, abandons it and starts a fresh one."""

    def __init__(self, sim: SimCluster, kubeconfig: Path, audit: Path, plan: KillPlan) -> None:
        self.sim, self.kubeconfig, self.audit = sim, kubeconfig, audit
        self.plan = plan
        self.generation = 0
        self.controller, self.log = start_controller(sim, kubeconfig, audit, plan, "c-0")

    def supervise(self) -> None:
        if self.plan.dead.is_set() and self.generation == 0:
            self._abandon(self.controller)
            self.log.close()  # the dead process's file lock goes with it
            self.generation = 1
            self.controller, self.log = start_controller(
                self.sim, self.kubeconfig, self.audit, KillPlan(), "c-1"
            )

    def _abandon(self, controller: Controller) -> None:
        # No graceful shutdown for a dead process: every call it attempts raises Killed.
        controller.stop(timeout=5)

    def close(self) -> None:
        self.controller.stop(timeout=5)
        self.log.close()


def _wait(predicate: Callable[[], bool], supervise: Callable[[], None], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervise()
        try:
            if predicate():
                return True
        except Exception:  # not there yet
            pass
        time.sleep(0.02)
    return False


def run_scenario(root: Path, image: str, plan: KillPlan, point: str) -> Outcome:
    root.mkdir(parents=True, exist_ok=True)
    outcome = Outcome(point, plan.effects, killed=False)
    problems = outcome.problems
    with SimCluster(ready_delay=0.05, emit_events=False) as sim:
        store = sim.store
        kubeconfig = sim.write_kubeconfig(root / "kubeconfig")
        store.create(
            "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        )
        store.create("changelanes", FAST_LANE)
        recorder = Recorder(sim)
        store.create("deployments", deployment_doc())
        audit = root / "audit.jsonl"
        sup = Supervisor(sim, kubeconfig, audit, plan)
        try:

            def adopted() -> bool:
                dep = store.get_obj("deployments", NS, "web")
                return sim.deployment_ready(NS, "web-primary") and dep["spec"]["replicas"] == 0

            if not _wait(adopted, sup.supervise, 30):
                problems.append("the workload was not adopted")
                return outcome

            def ship(dep: dict[str, Any]) -> None:
                dep["spec"]["template"]["spec"]["containers"][0]["image"] = image
                dep["spec"]["template"]["metadata"]["annotations"] = provenance(image=image)

            dep = edit(store, "deployments", NS, "web", ship)
            release_name = f"web-{mech.template_hash(dep['spec']['template'])}"

            def settled() -> bool:
                rel = store.get_obj("lanereleases", NS, release_name)
                status = rel.get("status") or {}
                canary = store.get_obj("deployments", NS, "web")
                return (
                    status.get("phase") in ("Promoted", "RolledBack", "Rejected")
                    and not status.get("outbox")
                    and canary["spec"]["replicas"] == 0
                    and (status["phase"] != "Promoted" or sim.deployment_ready(NS, "web-primary"))
                )

            if not _wait(settled, sup.supervise, 60):
                rel = store.get_obj("lanereleases", NS, release_name)
                problems.append(f"release did not settle: {rel.get('status')}")
                return outcome
        finally:
            sup.close()
            outcome.killed = plan.dead.is_set()
        history = recorder.history()
        recorder.close()
        _check(outcome, store, history, audit, image, release_name)
    return outcome


def _check(
    outcome: Outcome, store: Any, history: Any, audit: Path, image: str, release_name: str
) -> None:
    problems = outcome.problems
    good = "bad" not in image
    rel = store.get_obj("lanereleases", NS, release_name)
    status = rel["status"]
    want = "Promoted" if good else "RolledBack"
    if status["phase"] != want:
        problems.append(f"phase {status['phase']}, expected {want}: {status.get('message')}")
    releases = store.list("lanereleases", NS).items
    if len(releases) != 1:
        problems.append(f"{len(releases)} LaneReleases, expected 1")
    primary = store.get_obj("deployments", NS, "web-primary")
    primary_image = primary["spec"]["template"]["spec"]["containers"][0]["image"]
    if primary_image != (image if good else "web:1"):
        problems.append(f"primary runs {primary_image}")
    to_hash = rel["spec"]["to"]["podTemplateHash"]
    changes = [(rv, h) for rv, h in history.primary_changes("web")[1:]]
    if good and [h for _, h in changes] != [to_hash]:
        problems.append(f"primary template changes {changes}, expected one to {to_hash}")
    if not good and changes:
        problems.append(f"primary changed during a bad release: {changes}")
    for rv, h in changes:
        before = history.release_at(release_name, rv)
        earned = before is not None and _earned(before)
        if not earned:
            problems.append(f"primary took {h} at rv {rv} without an earned promotion")
    ids = audit_ids(audit)
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        problems.append(f"records written twice: {dupes}")
    uid = rel["metadata"]["uid"]
    expected = {f"{uid}/{n}" for n in range(1, int(status["recordSeq"]) + 1)}
    missing = sorted(expected - set(ids), key=lambda i: int(i.rsplit("/", 1)[1]))
    if missing:
        problems.append(f"records lost: {missing}")
    extra = sorted(set(ids) - expected)
    if extra:
        problems.append(f"records not in the release's sequence: {extra}")
    if status.get("outbox"):
        problems.append("outbox not flushed")


def _earned(release: dict[str, Any]) -> bool:
    """The stored status said Promoting, after a Pass of every check at the last step at
    full exposure (the lane's last step, 100%)."""
    status = release.get("status") or {}
    last = len(FAST_LANE["spec"]["strategy"]["steps"]) - 1
    checks = status.get("checks") or []
    names = {c["name"] for c in FAST_LANE["spec"]["analysis"]["checks"]}
    passed = {
        c["name"]
        for c in checks
        if c.get("lastStep") == last
        and c.get("lastVerdict") == "Pass"
        and c.get("passesAtStep", 0) >= 1
    }
    return (
        status.get("phase") in ("Promoting", "Promoted")
        and status.get("maxWeightReached") == 100
        and names <= passed
    )


def _quiet_killed_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    original = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not Killed:
            original(args)

    monkeypatch.setattr(threading, "excepthook", hook)


@pytest.mark.parametrize("image", [GOOD, BAD], ids=["good-release", "bad-release"])
def test_killed_at_every_effect_the_release_still_ends_right(
    image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _quiet_killed_threads(monkeypatch)
    dry = run_scenario(tmp_path / "dry", image, KillPlan(), "dry run")
    assert not dry.problems, dry.problems
    total = len(dry.effects)
    assert total >= 12, dry.effects  # adopt, record, ramp, analyse, decide, log...
    points = [(n, after) for n in range(1, total + 1) for after in (False, True)]

    def one(point: tuple[int, bool]) -> Outcome:
        n, after = point
        name = f"{'after' if after else 'before'} effect {n} ({dry.effects[n - 1]})"
        return run_scenario(tmp_path / name, image, KillPlan(at=n, after=after), name)

    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(one, points))
    failed = [f"{o.point}: {o.problems}" for o in outcomes if o.problems]
    assert not failed, "\n".join(failed)
    killed = [o for o in outcomes if o.killed]
    # Every point a run reached was a real kill. The number of effects varies by one or
    # two with timing (an extra status write after a conflict, one reconcile more or
    # less), so a run may end, correctly, before its last points: only then may a point
    # go unkilled.
    unreached = [
        f"{o.point}: the run had {len(o.effects)} effects"
        for o, (n, _) in zip(outcomes, points, strict=True)
        if not o.killed and len(o.effects) >= n
    ]
    assert not unreached, unreached
    assert len(killed) >= 25  # per release: at least 50 distinct kill points in all
