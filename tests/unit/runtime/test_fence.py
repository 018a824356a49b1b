"""The Fence: granted from the send time, refused after the renew deadline, revoked at
once, logged once per loss, pinned per batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from structlog.testing import capture_logs

from controller.adapters.kube.client import api_client
from controller.adapters.kube.fence import Fence, NotLeaderError, fence_requests
from controller.sim.cluster import SimCluster


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_renewal_counts_from_when_it_was_sent() -> None:
    clock = Clock()
    fence = Fence("ns/lease", renew_deadline=3, clock=clock)
    with pytest.raises(NotLeaderError, match="not elected yet"):
        fence.check()
    fence.grant(sent_at=100.0, holder="a", transitions=2, how="acquired")
    clock.now = 102.9
    assert str(fence.check()) == "a#2.1"
    # A renewal sent at 101 but answered (after a long freeze) at 110 extends nothing.
    clock.now = 110.0
    assert not fence.extend(sent_at=101.0)
    with pytest.raises(NotLeaderError, match="no successful renewal sent in the last 3 s"):
        fence.check()


def test_revoke_stops_at_once_and_each_loss_is_logged_once() -> None:
    clock = Clock()
    fence = Fence("ns/lease", renew_deadline=3, clock=clock)
    with capture_logs() as logs:
        fence.grant(100.0, "a", 0, "acquired: no Lease yet")
        assert fence.extend(101.0)
        fence.revoke("Lease held by b")
        fence.revoke("Lease held by b")
        clock.now = 200.0
        assert not fence.held()
    events = [(e["event"], e.get("reason")) for e in logs]
    assert events == [
        ("leadership gained", "acquired: no Lease yet"),
        ("leadership lost", "Lease held by b"),
    ]
    with pytest.raises(NotLeaderError, match="Lease held by b"):
        fence.check()


def test_a_batch_never_writes_under_a_later_term() -> None:
    clock = Clock()
    fence = Fence("ns/lease", renew_deadline=3, clock=clock)
    fence.grant(100.0, "a", 0, "acquired")
    with fence.batch() as term:
        assert fence.check() == term
        fence.revoke("paused")
        fence.grant(100.5, "a", 1, "acquired again")
        with pytest.raises(NotLeaderError, match="changed during this reconcile"):
            fence.check()
    assert fence.check().transitions == 1  # outside the batch the new term acts


LEASE_PATH = "/namespaces/ns/leases/lease"


def _lease() -> dict[str, Any]:
    return {"metadata": {"name": "lease"}, "spec": {"holderIdentity": "a"}}


def test_every_mutating_request_of_a_reconcile_passes_the_fence(tmp_path: Path) -> None:
    clock = Clock()
    fence = Fence("ns/lease", renew_deadline=3, clock=clock)
    with SimCluster(controllers=False) as sim:
        sim.store.create("namespaces", {"metadata": {"name": "ns"}})
        api = api_client(str(sim.write_kubeconfig(tmp_path / "kubeconfig")))
        fence_requests(api, fence, LEASE_PATH)
        fence_requests(api, fence, LEASE_PATH)  # idempotent
        core, leases = client.CoreV1Api(api), client.CoordinationV1Api(api)

        def renew() -> None:
            leases.replace_namespaced_lease(
                "lease", "ns", leases.read_namespaced_lease("lease", "ns")
            )

        with sim.record_requests() as seen:
            fence.grant(100.0, "a", 0, "acquired")
            with fence.batch():
                fence.revoke("Lease held by b")
                core.list_namespaced_config_map("ns")  # reads are never fenced
                leases.create_namespaced_lease("ns", _lease())  # the election's own
                renew()
                for write in (
                    lambda: core.create_namespaced_config_map("ns", {"metadata": {"name": "f"}}),
                    lambda: core.delete_namespaced_config_map("f", "ns"),
                ):
                    with pytest.raises(NotLeaderError, match="Lease held by b"):
                        write()
                # Inside a renewal the election's own Lease write is held to the fence too.
                with fence.renewal(), pytest.raises(NotLeaderError):
                    renew()
            fence.grant(101.0, "a", 1, "acquired again")
            with fence.batch():
                core.create_namespaced_config_map("ns", {"metadata": {"name": "f"}})
            fence.revoke("stopping")
            # Outside the controller's work (the demo's agent on the same client): not fenced.
            core.create_namespaced_config_map("ns", {"metadata": {"name": "g"}})
        verbs = [(r.verb, r.resource, r.name) for r in seen if r.verb != "get"]
    # A refused request never reached the API server, not even partly.
    assert verbs == [
        ("list", "configmaps", ""),
        ("create", "leases", ""),
        ("update", "leases", "lease"),
        ("create", "configmaps", ""),
        ("create", "configmaps", ""),
    ]
