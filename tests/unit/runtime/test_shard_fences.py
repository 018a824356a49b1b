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
from controller.adapters.kube.members import MemberView
from controller.core.canary import LANE_ANNOTATION
from controller.core.lease import LeaseReading, Standing
from controller.core.sharding import SHARDS_ANNOTATION, other_scheme
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
    def __init__(self, fence: Fence, won: Any) -> None:
        self.fence = fence
        self.won = won  # what the election calls once it holds the Lease
        self.handed: list[str] = []

    def win(self) -> None:
        self.fence.grant(time.monotonic(), "me", 0, "acquired")
        self.won()

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
        self.foreign: list[str] = []

    def beat(self) -> None:
        pass

    def observe(self) -> MemberView:
        return MemberView(set(self.alive), list(self.foreign), time.monotonic())

    def leave(self) -> None:
        pass


def _shards(
    live: set[str], gained: list[int] | None = None
) -> tuple[ShardSet, list[_Elector], _Members]:
    made: list[_Elector] = []
    members = _Members(live)

    def elector(name: str, fence: Fence, won: Any, defer: Any) -> _Elector:
        made.append(_Elector(fence, won))
        return made[-1]

    settings = ShardSettings(shards=3, identity="me", namespace="ns", retry_period=0.01)
    on_gained = (gained if gained is not None else []).append
    return ShardSet(settings, elector, members, on_gained=on_gained), made, members


def test_the_router_refuses_writes_outside_a_shard_s_work() -> None:
    shards, electors, _ = _shards({"me"})
    with pytest.raises(NotLeaderError, match="outside a shard's work"):
        shards.router.check()
    fence = shards.fences[shards.shard_of("web-lane")]
    electors[shards.shard_of("web-lane")].win()
    time.sleep(0.001)
    shards._balance()  # a Lease list sent after the win: no other scheme, so it acts
    assert shards.fence_for("web-lane") is fence
    with shards.lane_batch("web-lane") as term:
        assert shards.router.check() == term
    elsewhere = next(
        f"l{i}" for i in range(99) if shards.fences[shards.shard_of(f"l{i}")] is not fence
    )
    assert shards.fence_for(elsewhere) is None  # a shard this replica does not hold


def test_a_held_shard_assigned_to_a_live_other_is_handed_over_after_two_looks() -> None:
    shards, electors, _ = _shards({"me", "other"})
    for elector in electors:
        elector.win()
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


def test_no_newly_won_shard_acts_while_a_lease_of_another_scheme_is_live() -> None:
    """A rolling update that changes the shard count: old and new pods map lanes to
    shards differently, so a replica acts for a shard it won only once a Lease list sent
    after the win shows no live Lease of another scheme."""
    gained: list[int] = []
    shards, electors, members = _shards({"me"}, gained)
    members.foreign = ["changelane-shard-0 (held by old-pod, 2 shards)"]
    electors[0].win()
    time.sleep(0.001)
    shards._balance()
    assert shards.acting() == [] and not shards.any_held()
    lane = next(f"l{i}" for i in range(99) if shards.shard_of(f"l{i}") == 0)
    assert shards.fence_for(lane) is None
    assert electors[0].handed  # acting for nothing: it gives its Leases back ...
    free = LeaseReading(Standing.ABSENT, "no Lease yet")
    assert shards._defer(1)(free) == float("inf")  # ... and does not campaign
    members.foreign = []  # the old pods are gone
    shards._balance()
    assert shards.acting() == [0] and gained == [0]  # now it acts, and looks at every key
    assert shards.fence_for(lane) is shards.fences[0]
    # Won again (a new term): not acting until the next clear list.
    shards.fences[0].revoke("lost")
    electors[0].win()
    assert shards.fence_for(lane) is None
    time.sleep(0.001)
    shards._balance()
    assert shards.fence_for(lane) is shards.fences[0]


def test_shards_yield_to_a_single_leader_even_while_acting() -> None:
    """The single-Lease mode never looks for shard Leases: the shards give way to it."""
    shards, electors, members = _shards({"me"})
    electors[0].win()
    time.sleep(0.001)
    shards._balance()
    assert shards.acting() == [0]
    members.foreign = ["changelane-leader (held by new-pod)"]
    shards._balance()
    assert shards.acting() == [] and not shards.fences[0].held()
    assert "single leader" in shards.fences[0].reason()


@pytest.mark.parametrize(
    ("lease", "holder", "annotations", "other"),
    [
        ("changelane-leader", "old-pod", {}, True),  # one leader for every lane
        ("changelane-shard-1", "old-pod", {SHARDS_ANNOTATION: "2"}, True),
        ("changelane-shard-1", "peer", {SHARDS_ANNOTATION: "3"}, False),
        ("changelane-shard-1", "peer", {}, False),  # just created, not annotated yet
        ("changelane-shard-1", "", {SHARDS_ANNOTATION: "2"}, False),  # released
        ("changelane-member-x", "x", {}, False),
        ("changelane-shard-1", "me", {SHARDS_ANNOTATION: "2"}, False),
    ],
)
def test_which_leases_belong_to_another_scheme(
    lease: str, holder: str, annotations: dict[str, str], other: bool
) -> None:
    assert (
        other_scheme(lease, holder, annotations, 3, "changelane", "changelane-leader", "me")
        is other
    )
