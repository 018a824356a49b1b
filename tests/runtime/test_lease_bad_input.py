"""A Lease edited by hand (another holder, a far-future renewTime, a missing field) stops
every replica, each says why, nobody writes until the Lease is valid again, and there are
never two leaders."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.runtime.manager import Controller
from controller.sim.request_audit import ApiRequest
from tests.runtime.harness import NS, Env, deployment_doc, new_controller, running, wait

pytestmark = pytest.mark.slow

LEASE = "changelane-leader"
MUTATING = {"create", "update", "patch", "delete"}


def _holder_edit(spec: dict[str, Any]) -> None:
    spec["holderIdentity"] = "mallory"


def _future_edit(spec: dict[str, Any]) -> None:
    spec["renewTime"] = "2099-01-01T00:00:00.000000Z"


def _missing_edit(spec: dict[str, Any]) -> None:
    spec.pop("leaseDurationSeconds", None)


EDITS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("another holder", _holder_edit, "Lease held by mallory"),
    ("far-future renewTime", _future_edit, "spec.renewTime 2099-01-01"),
    ("missing field", _missing_edit, "spec.leaseDurationSeconds is missing"),
]


def _edit_lease(env: Env, edit: Callable[[dict[str, Any]], None]) -> None:
    lease = env.sim.store.get_obj("leases", NS, LEASE)
    edit(lease["spec"])
    env.sim.store.update("leases", lease, namespace=NS, name=LEASE)


class LeaderWatch:
    """Polls both replicas' leadership; notes any moment both claim it."""

    def __init__(self, controllers: list[Controller]) -> None:
        self.controllers = controllers
        self.both: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            if all(c.is_leader() for c in self.controllers):
                self.both.append(time.monotonic())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_a_hand_edited_lease_stops_every_replica_until_valid_again(tmp_path: Path) -> None:
    with running(tmp_path, start=False) as env:
        a = new_controller(env.kubeconfig, env.sim, env.sink, instance="c-a")
        b = new_controller(env.kubeconfig, env.sim, env.sink, instance="c-b")
        env.controllers += [a, b]
        a.start()
        b.start()
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: a.is_leader() or b.is_leader(), timeout=15)
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"), timeout=20)
        watch = LeaderWatch([a, b])
        requests: list[tuple[float, ApiRequest]] = []
        env.sim.add_request_hook(lambda r: requests.append((time.monotonic(), r)))
        try:
            for what, edit, reason in EDITS:
                wait(lambda: a.is_leader() or b.is_leader(), timeout=15)
                _edit_lease(env, edit)
                edited = time.monotonic()
                # Each replica sees it at its next try (one retry period) and stops.
                wait(lambda: not a.is_leader() and not b.is_leader(), timeout=3)
                stopped = time.monotonic()
                for c in (a, b):
                    assert c.leadership is not None
                    says = c.leadership.reason
                    wait(lambda says=says, reason=reason: reason in says(), timeout=3)
                # A release arrives while nobody may act: nobody acts on it.
                env.set_image(f"web:{what.replace(' ', '-')}")
                wait(lambda: a.is_leader() or b.is_leader(), timeout=15)
                # The first Lease write after the edit is the takeover; it came only once
                # the edited Lease had stood unchanged for a lease duration (4 s).
                taken = min(
                    t
                    for t, r in requests
                    if t > stopped and r.resource == "leases" and r.verb in MUTATING
                )
                assert taken - edited >= 4 - 0.1, (what, taken - edited)
                quiet = [
                    (round(t - edited, 2), r.verb, r.rbac_resource)
                    for t, r in requests
                    if stopped <= t < taken and r.verb in MUTATING
                ]
                assert quiet == [], f"{what}: written while the Lease was edited: {quiet}"
                lease = env.sim.store.get_obj("leases", NS, LEASE)
                holder = lease["spec"]["holderIdentity"]
                assert holder in ("c-a", "c-b") and lease["spec"]["leaseDurationSeconds"] == 4
        finally:
            watch.stop()
        assert watch.both == [], "two replicas led at once"
        # Valid again: the leader acts on the release that came in meanwhile.
        env.wait_phase(["Progressing", "Promoted"], timeout=30)
