"""The reconciler on an in-memory cluster: adoption, every phase transition, converge
idempotence, a 409 in the middle of the commit protocol and a LaneRelease that does not
parse. No HTTP, no threads: each test runs in milliseconds."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.adapters.flags.lane_gates import LaneGates
from controller.core.audit import AuditRecord, Decision
from controller.core.canary import template_hash
from controller.core.commands import COMMAND_ANNOTATION, encode_command
from controller.core.gates import GateResult
from controller.core.models import AnalysisCheck, ChangeLane, LaneRelease, Measurement, Verdict
from controller.core.release_machine import CommandKind
from controller.runtime.adoption import ADOPTED_REQUEUE_MAX_S, ADOPTED_REQUEUE_S, adoption_wait
from controller.runtime.crash_checks import RECHECK_S
from controller.runtime.reconciler import Reconciler
from tests import lane_docs
from tests.unit.runtime.fake_cluster import DEPLOYMENTS, LANES, PODS, RELEASES, FakeCluster

NS = "shop"
LANE = "web-lane"
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def lane_doc(**strategy: Any) -> dict[str, Any]:
    return lane_docs.lane_doc(LANE, NS, generation=1, **strategy)


def provenance(image: str) -> dict[str, str]:
    """What a pipeline writes for a release of ``image``: its own change, its images."""
    return {
        "changelane.dev/agent": "claude-code",
        "changelane.dev/model": "claude-opus-4",
        "changelane.dev/change": hashlib.sha1(image.encode()).hexdigest()[:12],
        "changelane.dev/images": image,
    }


def deployment_doc(name: str = "web", image: str = "web:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"changelane.dev/lane": LANE}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": provenance(image)},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 2.0) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Switch:
    on: bool = True

    def check(
        self, lane: ChangeLane, *, namespace: str, workload: str, agent: str | None = None
    ) -> GateResult:
        return GateResult("killSwitch", self.on, "on (test)" if self.on else "off (test)")


@dataclass
class Judge:
    verdict: Verdict = Verdict.PASS
    calls: int = 0

    def measure(
        self, lane: ChangeLane, release: LaneRelease, check: AnalysisCheck, now: datetime
    ) -> Measurement:
        self.calls += 1
        return Measurement(
            check=check.name,
            time=now,
            step=release.status.current_step,
            verdict=self.verdict,
            canary=0.3 if self.verdict is Verdict.FAIL else 0.01,
            threshold=check.threshold,
            statistic="value",
        )


@dataclass
class Sink:
    records: list[AuditRecord] = field(default_factory=list)
    broken: bool = False

    def emit(self, record: AuditRecord) -> None:
        if self.broken:
            raise OSError("disk full")
        if all(r.id != record.id for r in self.records):
            self.records.append(record)


@dataclass
class World:
    cluster: FakeCluster
    reconciler: Reconciler
    clock: Clock
    switch: Switch
    judge: Judge
    sink: Sink

    def deployment(self, name: str = "web") -> dict[str, Any]:
        return self.cluster.get(DEPLOYMENTS, NS, name)

    def release(self) -> dict[str, Any]:
        (only,) = self.cluster.items(RELEASES)
        return only

    def phase(self) -> str | None:
        phase: str | None = (self.release().get("status") or {}).get("phase")
        return phase

    def set_image(self, image: str) -> None:
        dep = self.deployment()
        dep["spec"]["template"]["spec"]["containers"][0]["image"] = image
        dep["spec"]["template"]["metadata"]["annotations"] = provenance(image)
        self.cluster.put(DEPLOYMENTS, dep)

    def new_release(self, image: str = "web:2") -> str:
        """A new template on the adopted workload, recorded as a release."""
        self.set_image(image)
        self.reconciler.reconcile_deployment(NS, "web")
        name: str = self.release()["metadata"]["name"]
        return name

    def tick(self) -> float | None:
        """Time passes, the Deployment controller rolls out, the release is reconciled."""
        self.clock.tick()
        for name in ("web", "web-primary"):
            self.cluster.roll_out(NS, name)
        return self.reconciler.reconcile_release(NS, self.release()["metadata"]["name"])

    def run_until(self, *phases: str, limit: int = 20) -> list[str]:
        seen: list[str] = []
        for _ in range(limit):
            self.tick()
            phase = self.phase() or ""
            if not seen or seen[-1] != phase:
                seen.append(phase)
            if phase in phases:
                return seen
        raise AssertionError(f"never reached {phases}: {seen}")

    def decisions(self) -> list[str]:
        return [
            r.decision.value for r in self.sink.records if r.decision is not Decision.MEASUREMENT
        ]


@pytest.fixture
def world() -> Iterator[World]:
    cluster = FakeCluster()
    cluster.put(LANES, lane_doc())
    clock, switch, judge, sink = Clock(), Switch(), Judge(), Sink()
    reconciler = Reconciler(
        api=cluster,
        caches=cluster.caches(),
        gates=LaneGates(switch),
        analyzer=judge,
        sinks=[sink],
        clock=clock,
    )
    yield World(cluster, reconciler, clock, switch, judge, sink)


def adopted(world: World) -> World:
    world.cluster.put(DEPLOYMENTS, deployment_doc())
    world.reconciler.reconcile_deployment(NS, "web")
    world.cluster.roll_out(NS, "web-primary")
    world.reconciler.reconcile_deployment(NS, "web")  # hands over to the ready primary
    return world


# ---------------------------------------------------------------------- adoption


def test_adoption_splits_the_workload_into_a_serving_primary_and_an_idle_canary(
    world: World,
) -> None:
    world.cluster.put(DEPLOYMENTS, deployment_doc())
    assert world.reconciler.reconcile_deployment(NS, "web") == ADOPTED_REQUEUE_S
    primary, canary = world.deployment("web-primary"), world.deployment()
    assert primary["spec"]["replicas"] == 2
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"
    # The original serves until the primary is ready: never a moment without pods.
    assert canary["spec"]["replicas"] == 2 and world.cluster.events == []
    # Still waiting: the safety net backs off (the primary's events bring it back).
    assert world.reconciler.reconcile_deployment(NS, "web") == 2 * ADOPTED_REQUEUE_S
    assert world.deployment()["spec"]["replicas"] == 2
    world.cluster.roll_out(NS, "web-primary")
    assert world.reconciler.reconcile_deployment(NS, "web") is None
    canary = world.deployment()
    assert canary["spec"]["replicas"] == 0
    assert canary["metadata"]["annotations"]["changelane.dev/lane"] == LANE
    assert [e["reason"] for e in world.cluster.events] == ["Adopted"]
    assert world.cluster.items(RELEASES) == [], "adopting is not a release"

    world.cluster.writes.clear()
    assert world.reconciler.reconcile_deployment(NS, "web") is None
    assert world.cluster.writes == [], "steady state writes nothing"


def test_a_workload_no_lane_selects_is_left_alone(world: World) -> None:
    doc = deployment_doc()
    doc["metadata"]["labels"] = {}
    world.cluster.put(DEPLOYMENTS, doc)
    assert world.reconciler.reconcile_deployment(NS, "web") is None
    assert world.cluster.writes == []


def test_a_new_template_is_recorded_as_a_release_and_kept_dark(world: World) -> None:
    adopted(world)
    name = world.new_release("web:2")
    rel = world.release()
    assert name == f"web-{template_hash(world.deployment()['spec']['template'])}"
    assert rel["spec"]["lane"] == LANE
    assert rel["spec"]["to"]["images"] == ["web:2"]
    assert rel["spec"]["from"]["images"] == ["web:1"]
    assert rel["spec"]["provenance"]["agent"] == "claude-code"
    assert world.deployment()["spec"]["replicas"] == 0


# ---------------------------------------------------------------------- phases


def test_a_healthy_release_progresses_step_by_step_and_is_promoted(world: World) -> None:
    adopted(world)
    world.new_release("web:2")
    world.tick()
    assert world.phase() == "Progressing"
    assert world.deployment()["spec"]["replicas"] == 1, "50% of 2 replicas"
    seen = world.run_until("Promoted")
    assert seen[-2:] == ["Promoting", "Promoted"]
    primary = world.deployment("web-primary")
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
    assert world.deployment()["spec"]["replicas"] == 0
    assert world.decisions() == [
        "release_seen",
        "started",
        "step_advanced",
        "promoting",
        "promoted",
    ]


def test_a_failing_check_rolls_back_and_leaves_the_primary_untouched(world: World) -> None:
    adopted(world)
    world.new_release("web:bad")
    world.judge.verdict = Verdict.FAIL
    seen = world.run_until("RolledBack")
    assert "RollingBack" in seen
    assert world.deployment()["spec"]["replicas"] == 0
    primary = world.deployment("web-primary")
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"
    assert world.decisions()[-2:] == ["rolling_back", "rolled_back"]


def test_autonomy_off_gates_the_release_and_no_traffic_moves(world: World) -> None:
    adopted(world)
    world.new_release()
    world.switch.on = False
    world.tick()
    assert world.phase() == "Gated"
    assert world.deployment()["spec"]["replicas"] == 0
    world.switch.on = True
    world.tick()
    assert world.phase() == "Progressing"


def test_a_release_without_provenance_is_rejected(world: World) -> None:
    adopted(world)
    dep = world.deployment()
    dep["spec"]["template"]["metadata"]["annotations"] = {}
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
    world.cluster.put(DEPLOYMENTS, dep)
    world.reconciler.reconcile_deployment(NS, "web")
    world.tick()
    assert world.phase() == "Rejected"
    assert world.deployment()["spec"]["replicas"] == 0


def test_human_pause_and_resume_are_applied_and_the_command_is_cleared(world: World) -> None:
    adopted(world)
    name = world.new_release()
    world.tick()
    for verb, phase in (("pause", "Paused"), ("resume", "Progressing")):
        rel = world.release()
        rel["metadata"].setdefault("annotations", {})[COMMAND_ANNOTATION] = encode_command(
            CommandKind(verb), "alice"
        )
        world.cluster.put(RELEASES, rel)
        world.reconciler.reconcile_release(NS, name)
        assert world.phase() == phase
        assert COMMAND_ANNOTATION not in (world.release()["metadata"].get("annotations") or {})
    actors = {r.decision.value: r.actor for r in world.sink.records}
    assert actors["paused"] == "alice"


def test_a_crash_looping_canary_is_rolled_back(world: World) -> None:
    adopted(world)
    world.new_release()
    world.tick()
    world.cluster.objects[(DEPLOYMENTS, NS, "web")]["status"] = {"readyReplicas": 0}
    world.cluster.put(
        PODS,
        {
            "metadata": {"name": "web-abc", "namespace": NS, "labels": {"app": "web"}},
            "status": {
                "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
            },
        },
    )
    world.clock.tick()
    world.reconciler.reconcile_release(NS, world.release()["metadata"]["name"])
    assert world.phase() == "RollingBack"
    assert "CrashLoopBackOff" in world.release()["status"]["rollbackReason"]


def _unready_canary(world: World) -> str:
    """A release in flight whose canary is not ready (no crash yet); its name."""
    adopted(world)
    name = world.new_release()
    world.tick()
    world.cluster.objects[(DEPLOYMENTS, NS, "web")]["status"] = {"readyReplicas": 0}
    return name


def _crash_looping_pod(world: World) -> None:
    waiting = {"state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    world.cluster.put(
        PODS,
        {
            "metadata": {"name": "web-abc", "namespace": NS, "labels": {"app": "web"}},
            "status": {"containerStatuses": [waiting]},
        },
    )


def _counting_pod_lists(world: World) -> list[str]:
    calls: list[str] = []
    listed = world.cluster.list_pods

    def counted(namespace: str, selector: str) -> list[dict[str, Any]]:
        calls.append(selector)
        return listed(namespace, selector)

    world.cluster.list_pods = counted  # type: ignore[method-assign]
    return calls


def test_an_unready_canarys_pods_are_listed_once_per_recheck_not_per_reconcile(
    world: World,
) -> None:
    name = _unready_canary(world)
    calls = _counting_pod_lists(world)
    for _ in range(4):  # a tick's decision and the echoes of its writes, moments apart
        world.reconciler.reconcile_release(NS, name)
    assert len(calls) == 1
    world.clock.tick(RECHECK_S)
    world.reconciler.reconcile_release(NS, name)
    assert len(calls) == 2


def test_a_crash_loop_after_a_clear_look_rolls_back_within_the_recheck(world: World) -> None:
    name = _unready_canary(world)
    world.reconciler.reconcile_release(NS, name)  # looked: no pod crash-loops
    _crash_looping_pod(world)
    world.clock.tick(RECHECK_S / 2)
    world.reconciler.reconcile_release(NS, name)
    assert world.phase() == "Progressing"  # the clear answer is at most RECHECK_S old
    world.clock.tick(RECHECK_S / 2)
    world.reconciler.reconcile_release(NS, name)
    assert world.phase() == "RollingBack"
    assert "CrashLoopBackOff" in world.release()["status"]["rollbackReason"]


def test_a_new_canary_template_is_looked_at_afresh(world: World) -> None:
    name = _unready_canary(world)
    world.reconciler.reconcile_release(NS, name)
    calls = _counting_pod_lists(world)
    dep = world.cluster.objects[(DEPLOYMENTS, NS, "web")]
    dep["metadata"]["generation"] = int(dep["metadata"].get("generation") or 1) + 1
    world.reconciler.reconcile_release(NS, name)
    assert len(calls) == 1


def test_a_newer_template_supersedes_the_release_in_flight(world: World) -> None:
    adopted(world)
    first = world.new_release("web:2")
    world.tick()
    world.set_image("web:3")
    world.reconciler.reconcile_deployment(NS, "web")
    releases = {r["metadata"]["name"]: r for r in world.cluster.items(RELEASES)}
    assert len(releases) == 2
    assert releases[first]["status"]["phase"] in ("RollingBack", "RolledBack")


# ---------------------------------------------------------------------- converge


def test_converging_twice_writes_nothing_more(world: World) -> None:
    adopted(world)
    world.new_release()
    world.tick()
    world.cluster.writes.clear()
    world.reconciler.reconcile_release(NS, world.release()["metadata"]["name"])
    assert not [w for w in world.cluster.writes if w[0] == "patch deployment"]

    lane = world.reconciler.lanes()[LANE]
    rel = LaneRelease.model_validate(world.release())
    world.cluster.writes.clear()
    world.reconciler.converger.converge(
        lane, rel, rel.status, world.deployment(), world.deployment("web-primary")
    )
    assert world.cluster.writes == []


# ---------------------------------------------------------------------- failures


def test_a_status_conflict_retries_from_fresh_state_without_acting(world: World) -> None:
    adopted(world)
    name = world.new_release()
    world.cluster.conflict_once.add("patch lanerelease/status")
    world.cluster.writes.clear()
    assert world.reconciler.reconcile_release(NS, name) == 0.0
    assert world.cluster.writes == [], "a decision that was not stored is not acted on"
    assert world.phase() is None
    world.reconciler.reconcile_release(NS, name)
    assert world.phase() == "Progressing"
    assert world.deployment()["spec"]["replicas"] == 1


def test_an_audit_sink_that_fails_stops_the_action_and_the_outbox_keeps_the_records(
    world: World,
) -> None:
    adopted(world)
    name = world.new_release()
    world.sink.broken = True
    assert world.reconciler.reconcile_release(NS, name) == 5.0
    assert world.phase() == "Progressing"
    assert world.release()["status"]["outbox"], "the decision waits in the outbox"
    assert world.deployment()["spec"]["replicas"] == 0, "not acted on before it is recorded"
    world.sink.broken = False
    world.reconciler.reconcile_release(NS, name)
    assert world.deployment()["spec"]["replicas"] == 1
    left = world.release()["status"].get("outbox") or []
    # The decision's records left once recorded; what is there is this tick's measurement,
    # which the next status write clears (core.outbox).
    assert [r["decision"] for r in left] in ([], ["measurement"])
    assert "started" in world.decisions()


def test_a_release_that_does_not_parse_is_held_at_zero_and_the_others_go_on(
    world: World,
) -> None:
    adopted(world)
    name = world.new_release()
    world.tick()
    assert world.deployment()["spec"]["replicas"] == 1
    poison = copy.deepcopy(world.release())
    poison["spec"]["to"] = "not an object"
    poison["metadata"]["name"] = "web-poison"
    world.cluster.put(RELEASES, poison)

    assert world.reconciler.reconcile_release(NS, "web-poison") is None
    assert world.deployment()["spec"]["replicas"] == 0, "its canary loses its traffic"
    stored = world.cluster.get(RELEASES, NS, "web-poison")
    (condition,) = stored["status"]["conditions"][-1:]
    assert condition["type"] == "InvalidState"
    assert condition["message"].startswith("spec.to")
    assert any(e["reason"] == "InvalidState" for e in world.cluster.events)

    world.cluster.writes.clear()
    world.reconciler.reconcile_release(NS, "web-poison")
    assert not [w for w in world.cluster.writes if w[0] == "patch lanerelease/status"], (
        "reported once"
    )
    world.reconciler.reconcile_release(NS, name)
    assert world.cluster.get(RELEASES, NS, name)["status"]["phase"] == "Progressing"


def test_a_release_whose_lane_is_gone_gets_no_canary_traffic(world: World) -> None:
    adopted(world)
    name = world.new_release()
    world.tick()
    del world.cluster.objects[(LANES, "", LANE)]
    assert world.reconciler.reconcile_release(NS, name) == 30.0
    assert world.deployment()["spec"]["replicas"] == 0


def test_a_follower_cannot_write(world: World) -> None:
    from controller.runtime.ports import NotLeaderError

    world.cluster.put(DEPLOYMENTS, deployment_doc())
    world.cluster.may_write = lambda: False
    with pytest.raises(NotLeaderError):
        world.reconciler.reconcile_deployment(NS, "web")
    assert world.cluster.writes == []


# ---------------------------------------------------------------------- lanes


def test_a_workload_two_lanes_select_is_not_adopted_and_both_lanes_say_so(world: World) -> None:
    other = lane_doc()
    other["metadata"]["name"] = "other-lane"
    world.cluster.put(LANES, other)
    world.cluster.put(DEPLOYMENTS, deployment_doc())
    assert world.reconciler.reconcile_deployment(NS, "web") is None
    assert (DEPLOYMENTS, NS, "web-primary") not in world.cluster.objects
    assert [e["reason"] for e in world.cluster.events] == ["LaneConflict"]

    def conflict(name: str) -> dict[str, Any]:
        conditions = world.cluster.get(LANES, "", name)["status"]["conditions"]
        (found,) = [c for c in conditions if c["type"] == "WorkloadConflict"]
        return found

    for name in (LANE, "other-lane"):
        world.reconciler.reconcile_lane(name)
        condition = conflict(name)
        assert condition["type"] == "WorkloadConflict" and condition["status"] == "True"
        assert "shop/web is also selected by lane(s)" in condition["message"]
        ready = world.cluster.get(LANES, "", name)["status"]["conditions"][-1]
        assert (ready["type"], ready["status"]) == ("Ready", "True")

    del world.cluster.objects[(LANES, "", "other-lane")]
    world.clock.tick()
    world.reconciler.reconcile_lane(LANE)
    condition = conflict(LANE)
    assert (condition["status"], condition["reason"]) == ("False", "NoOverlap")
    assert condition["lastTransitionTime"].startswith("2026-01-01T12:00:02")
    world.cluster.writes.clear()
    world.reconciler.reconcile_lane(LANE)
    assert world.cluster.writes == [], "an unchanged condition is not written again"


def test_the_adoption_safety_net_doubles_up_to_its_cap() -> None:
    waits = [adoption_wait(n) for n in range(1, 10)]
    assert waits[:3] == [ADOPTED_REQUEUE_S, 2 * ADOPTED_REQUEUE_S, 4 * ADOPTED_REQUEUE_S]
    assert waits == sorted(waits) and waits[-1] == ADOPTED_REQUEUE_MAX_S


def test_a_rollback_is_not_complete_because_the_cache_lost_the_deployment(world: World) -> None:
    # The informer's cache can lag (a relist, a missed event): a Deployment it does not hold
    # must not read as "canary gone" while the API server still runs canary replicas.
    adopted(world)
    world.new_release("web:bad")
    world.judge.verdict = Verdict.FAIL
    world.run_until("RollingBack")
    dep = world.deployment()
    dep["spec"]["replicas"] = 1  # still serving, as far as the API server says
    world.cluster.put(DEPLOYMENTS, dep)
    cached = world.reconciler.caches.deployment
    world.reconciler.caches.deployment = lambda ns, name: (
        None if name == "web" else cached(ns, name)
    )
    world.reconciler.reconcile_release(NS, world.release()["metadata"]["name"])
    assert world.phase() == "RollingBack"
    world.reconciler.caches.deployment = cached
    world.run_until("RolledBack")
    assert world.deployment()["spec"]["replicas"] == 0


# ---------------------------------------------------------------------- quiet ticks


@dataclass
class CountingSink:
    """Every record offered, duplicates included (the deduping ``Sink`` hides them)."""

    ids: list[str | None] = field(default_factory=list)

    def emit(self, record: AuditRecord) -> None:
        self.ids.append(record.id)


def _long_first_step(world: World) -> CountingSink:
    steps = [{"weight": 50, "minDuration": "10s"}, {"weight": 100, "minDuration": "1s"}]
    world.cluster.put(LANES, lane_doc(steps=steps))
    counting = CountingSink()
    world.reconciler.sinks.append(counting)  # the commit shares the reconciler's list
    adopted(world)
    world.new_release()
    world.tick()  # started: an action, its outbox cleared at once
    assert world.phase() == "Progressing" and not world.release()["status"].get("outbox")
    return counting


def _status_writes(world: World) -> int:
    return sum(1 for w in world.cluster.writes if w[0] == "patch lanerelease/status")


def test_a_measurement_tick_writes_the_status_once_and_the_next_write_clears_its_outbox(
    world: World,
) -> None:
    counting = _long_first_step(world)
    for _ in range(3):
        world.cluster.writes.clear()
        world.tick()
        assert _status_writes(world) == 1, "the decision only: no clearing write"
        outbox = world.release()["status"]["outbox"]
        assert [r["decision"] for r in outbox] == ["measurement"]
        world.cluster.writes.clear()
        world.reconciler.reconcile_release(NS, world.release()["metadata"]["name"])
        assert _status_writes(world) == 0, "the write's watch echo does not clear it either"
        assert world.release()["status"]["outbox"] == outbox
    assert len(counting.ids) == len(set(counting.ids)), "nothing flushed twice by one process"
    world.run_until("Promoted")
    assert not world.release()["status"].get("outbox"), "a step and a terminal phase clear"
    assert len(counting.ids) == len(set(counting.ids))
    decided = ["release_seen", "started", "step_advanced", "promoting", "promoted"]
    assert world.decisions() == decided


def test_a_new_process_replays_a_quiet_ticks_outbox_and_the_sinks_drop_what_they_have(
    world: World,
) -> None:
    counting = _long_first_step(world)
    world.tick()
    (left,) = world.release()["status"]["outbox"]
    restarted = Reconciler(
        api=world.cluster,
        caches=world.cluster.caches(),
        gates=LaneGates(world.switch),
        analyzer=world.judge,
        sinks=[world.sink, counting],
        clock=world.clock,
    )
    world.clock.tick()
    restarted.reconcile_release(NS, world.release()["metadata"]["name"])
    assert counting.ids.count(left["id"]) == 2, "it cannot know the old process flushed it"
    assert [r.id for r in world.sink.records].count(left["id"]) == 1
    assert [r["id"] for r in world.release()["status"]["outbox"]] != [left["id"]]
