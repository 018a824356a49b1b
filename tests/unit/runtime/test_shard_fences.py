"""One HTTP client, one fence per shard: a request is held to the fence of the shard whose
work sends it; nothing is written outside a shard's work; a hand-over waits for the work."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from controller.adapters.kube.client import api_client
from controller.adapters.kube.fence import Fence, NotLeaderError, fence_requests
from controller.core.canary import LANE_ANNOTATION
from controller.core.lease import LeaseReading, Standing
from controller.runtime.shards import ShardSet, ShardSettings, lane_of_key
from controller.sim.cluster import SimCluster


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_shard_s_requests_pass_its_own_fence(tmp_path: Path) -> None:
    clock = Clock()
    a = Fence("ns/changelane-shard-0", renew_deadline=3, clock=clock)
    b = Fence("ns/changelane-shard-1", renew_deadline=3, clock=clock)
    a.grant(100.0, "me", 0, "acquired")
    b.grant(100.0, "me", 0, "acquired")
    with SimCluster(controllers=False) as sim:
        sim.store.create("namespaces", {"metadata": {"name": "ns"}})
        api = api_client(str(sim.write_kubeconfig(tmp_path / "kubeconfig")))
        fence_requests(api, None, "/namespaces/ns/leases/changelane-shards")
        core = client.CoreV1Api(api)
        with sim.record_requests() as seen:
            with b.batch():
                a.revoke("shard 0 handed over")  # another shard's loss stops nothing here
                core.create_namespaced_config_map("ns", {"metadata": {"name": "from-b"}})
            with pytest.raises(NotLeaderError), a.batch():
                pass
            a.grant(101.0, "me", 1, "acquired again")
            with a.batch():
                a.revoke("Lease held by other")
                with pytest.raises(NotLeaderError, match="Lease held by other"):
                    core.create_namespaced_config_map("ns", {"metadata": {"name": "from-a"}})
        created = [r.verb for r in seen if r.verb == "create"]
    assert created == ["create"]  # only shard 1's write reached the API server


class _Elector:
    def __init__(self, fence: Fence) -> None:
        self.fence = fence
        self.handed: list[str] = []

    def is_leader(self) -> bool:
        return self.fence.held()

    def start(self) -> None:
        pass

    def stop(self, release: bool = True) -> None:
        pass

    def hand_over(self, why: str) -> None:
        self.handed.append(why)


class _Members:
    def __init__(self, live: set[str]) -> None:
        self.alive = live

    def beat(self) -> None:
        pass

    def live(self) -> set[str]:
        return set(self.alive)

    def leave(self) -> None:
        pass


def _shards(live: set[str]) -> tuple[ShardSet, list[_Elector]]:
    made: list[_Elector] = []

    def elector(name: str, fence: Fence, gained: Any, defer: Any) -> _Elector:
        made.append(_Elector(fence))
        return made[-1]

    settings = ShardSettings(shards=3, identity="me", namespace="ns", retry_period=0.01)
    return ShardSet(settings, elector, _Members(live), on_gained=lambda shard: None), made


def test_the_router_refuses_writes_outside_a_shard_s_work() -> None:
    shards, _ = _shards({"me"})
    with pytest.raises(NotLeaderError, match="outside a shard's work"):
        shards.router.check()
    fence = shards.fences[shards.shard_of("web-lane")]
    fence.grant(time.monotonic(), "me", 0, "acquired")
    assert shards.fence_for("web-lane") is fence
    with shards.lane_batch("web-lane") as term:
        assert shards.router.check() == term
    elsewhere = next(
        f"l{i}" for i in range(99) if shards.fences[shards.shard_of(f"l{i}")] is not fence
    )
    assert shards.fence_for(elsewhere) is None  # a shard this replica does not hold


def test_a_held_shard_assigned_to_a_live_other_is_handed_over_after_two_looks() -> None:
    shards, electors = _shards({"me", "other"})
    for fence in shards.fences:
        fence.grant(time.monotonic(), "me", 0, "acquired")
    shards._balance()
    assert all(not e.handed for e in electors)  # first look: not yet
    time.sleep(0.02)
    shards._balance()
    theirs = sorted(s for s, owner in shards.owners().items() if owner == "other")
    assert theirs
    assert [i for i, e in enumerate(electors) if e.handed] == theirs
    # The assignment also steers takeovers: a free shard that is not ours waits.
    free = LeaseReading(Standing.RELEASED, "Lease released (no holder)", wait_s=1)
    assert shards._defer(theirs[0])(free) == shards.settings.lease_duration


def test_drain_waits_for_the_work_running_under_a_fence() -> None:
    fence = Fence("ns/lease", renew_deadline=30)
    fence.grant(time.monotonic(), "me", 0, "acquired")
    inside, leave = threading.Event(), threading.Event()

    def work() -> None:
        with fence.batch():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=work)
    thread.start()
    inside.wait(5)
    fence.revoke("handing over")
    assert not fence.drain(0.1)  # still running
    leave.set()
    assert fence.drain(5)
    thread.join()


def test_every_key_finds_its_lane() -> None:
    release = {"spec": {"lane": "web-lane"}}
    adopted = {"metadata": {"annotations": {LANE_ANNOTATION: "docs-lane"}}}
    get = {"ns/r": release, "ns/adopted": adopted}.get

    def key(kind: str, name: str) -> str | None:
        return lane_of_key(kind, "ns", name, get, get, lambda: [])

    assert key("ChangeLane", "web-lane") == "web-lane"
    assert key("LaneRelease", "r") == "web-lane"
    assert key("LaneRelease", "gone") is None
    assert key("Deployment", "adopted") == "docs-lane"
    assert key("Deployment", "unselected") is None
