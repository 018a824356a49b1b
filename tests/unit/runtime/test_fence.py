"""The Fence: granted from the send time, refused after the renew deadline, revoked at
once, logged once per loss, pinned per batch."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from controller.adapters.kube.fence import Fence, NotLeaderError, fence_requests


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


class Pool:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def request(self, method: str, url: str, **kwargs: object) -> str:
        self.sent.append((method, url))
        return "ok"

    def clear(self) -> None:
        self.sent.clear()


class Rest:
    def __init__(self) -> None:
        self.pool_manager: object = Pool()


class Client:
    def __init__(self) -> None:
        self.rest_client = Rest()


def test_every_mutating_request_but_the_elections_passes_the_fence() -> None:
    clock = Clock()
    fence = Fence("ns/lease", renew_deadline=3, clock=clock)
    api = Client()
    pool: Any = api.rest_client.pool_manager
    fence_requests(api, fence, "/namespaces/ns/leases/lease")
    fence_requests(api, fence, "/namespaces/ns/leases/lease")  # idempotent
    fenced: Any = api.rest_client.pool_manager
    base = "http://127.0.0.1/apis"
    assert fenced.request("GET", f"{base}/apps/v1/namespaces/shop/deployments/web") == "ok"
    for method, path in [
        ("PUT", "/coordination.k8s.io/v1/namespaces/ns/leases/lease"),
        ("POST", "/coordination.k8s.io/v1/namespaces/ns/leases"),
    ]:
        assert fenced.request(method, base + path) == "ok"
    for method, path in [
        ("PATCH", "/apps/v1/namespaces/shop/deployments/web"),
        ("PUT", "/v1/namespaces/shop/configmaps/flags"),
        ("POST", "/v1/namespaces/shop/events"),
        ("DELETE", "/changelane.dev/v1alpha1/namespaces/shop/lanereleases/x"),
    ]:
        with pytest.raises(NotLeaderError):
            fenced.request(method, base + path)
    fence.grant(100.0, "a", 0, "acquired")
    assert fenced.request("PATCH", f"{base}/apps/v1/namespaces/shop/deployments/web") == "ok"
    assert len(pool.sent) == 4
    fenced.clear()  # everything else reaches the pool
    assert pool.sent == []


def test_a_renewal_is_held_to_the_fence_at_the_transport() -> None:
    clock = Clock()
    fence = Fence("ns/lease", renew_deadline=3, clock=clock)
    api = Client()
    fence_requests(api, fence, "/namespaces/ns/leases/lease")
    fenced: Any = api.rest_client.pool_manager
    lease = "http://127.0.0.1/apis/coordination.k8s.io/v1/namespaces/ns/leases/lease"
    fence.grant(100.0, "a", 0, "acquired")
    clock.now = 104.0  # frozen past the renew deadline just before renewing
    assert fenced.request("PUT", lease) == "ok"  # a follower's takeover attempt: allowed
    with fence.renewal(), pytest.raises(NotLeaderError):
        fenced.request("PUT", lease)
