"""Deployment reconciles wait while the cache predates the controller's own last write,
instead of re-sending that write and its Event."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controller.adapters.flags.lane_gates import LaneGates
from controller.runtime.deployment_writes import DeploymentWrites, caught_up
from controller.runtime.ports import JsonDict
from controller.runtime.reconciler import Reconciler
from tests.unit.runtime.fake_cluster import DEPLOYMENTS, LANES, FakeCluster
from tests.unit.runtime.test_reconciler import (
    NS,
    Clock,
    Judge,
    Sink,
    Switch,
    deployment_doc,
    lane_doc,
)


@given(st.integers(0, 10**12), st.integers(0, 10**12))
def test_numeric_versions_are_caught_up_at_or_after_the_write(cached: int, wrote: int) -> None:
    assert caught_up(str(cached), str(wrote)) is (cached >= wrote)


@given(st.text(min_size=1), st.text(min_size=1))
def test_an_opaque_version_is_caught_up_only_when_equal(cached: str, wrote: str) -> None:
    if not (cached.isdigit() and wrote.isdigit()):
        assert caught_up(cached, wrote) is (cached == wrote)
    assert caught_up(None, wrote) is False


def _dep(name: str, rv: str) -> JsonDict:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv}}


def test_a_write_holds_the_workload_until_the_cache_shows_it_or_it_expires() -> None:
    cache: dict[str, JsonDict] = {"web": _dep("web", "9")}
    now = [0.0]
    writes = DeploymentWrites(lambda ns, name: cache.get(name), clock=lambda: now[0], ttl_s=60)
    assert writes.wait_s("ns", "web", "web-primary") is None

    writes.wrote(_dep("web", "12"))
    writes.wrote(_dep("web-primary", "13"))  # created: not in the cache at all yet
    assert writes.wait_s("ns", "web", "web-primary") == 60
    cache["web"] = _dep("web", "14")  # a later version than our write: caught up
    now[0] = 10.0
    assert writes.wait_s("ns", "web") is None
    assert writes.wait_s("ns", "web", "web-primary") == 50
    now[0] = 61.0  # never seen (deleted, or skipped by a relist): the expectation expires
    assert writes.wait_s("ns", "web", "web-primary") is None
    assert writes.pending() == 0


class LaggingCluster(FakeCluster):
    """An informer behind the server: Deployment reads return a frozen snapshot."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen: dict[str, JsonDict] | None = None

    def freeze(self) -> None:
        self.frozen = {
            key[2]: copy.deepcopy(obj) for key, obj in self.objects.items() if key[0] == DEPLOYMENTS
        }

    def caches(self) -> Any:
        caches = super().caches()
        current = caches.deployment

        def deployment(ns: str, name: str) -> JsonDict | None:
            if self.frozen is not None:
                return copy.deepcopy(self.frozen.get(name))
            return current(ns, name)

        caches.deployment = deployment
        return caches


def test_a_stale_cache_gets_no_repeated_hand_over_and_no_second_event() -> None:
    cluster = LaggingCluster()
    cluster.put(LANES, lane_doc())
    reconciler = Reconciler(
        api=cluster,
        caches=cluster.caches(),
        gates=LaneGates(Switch()),
        analyzer=Judge(),
        sinks=[Sink()],
        clock=Clock(),
    )
    cluster.put(DEPLOYMENTS, deployment_doc())
    cluster.freeze()  # the informer stops here: it will see neither of our writes
    reconciler.reconcile_deployment(NS, "web")  # creates the primary, pauses the original
    assert [verb for verb, _ in cluster.writes] == ["create deployment", "patch deployment"]
    cluster.roll_out(NS, "web-primary")
    cluster.writes.clear()
    for _ in range(5):  # the echoes of older events keep bringing the key back
        wait = reconciler.reconcile_deployment(NS, "web")
        assert wait is not None and wait > 0
    assert cluster.writes == [], "no second create, no second pause"

    cluster.frozen = None  # the watch catches up: the primary is ready
    cluster.freeze()
    before_hand_over, cluster.frozen = cluster.frozen, None
    assert reconciler.reconcile_deployment(NS, "web") is None  # hands over, once
    assert [e["reason"] for e in cluster.events] == ["Adopted"]
    cluster.frozen = before_hand_over  # the hand-over's echo has not arrived yet
    cluster.writes.clear()
    for _ in range(5):
        assert reconciler.reconcile_deployment(NS, "web") is not None
    assert cluster.writes == [] and [e["reason"] for e in cluster.events] == ["Adopted"]

    cluster.frozen = None
    assert reconciler.reconcile_deployment(NS, "web") is None
    assert cluster.writes == [], "steady state writes nothing"
