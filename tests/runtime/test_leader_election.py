"""Two controllers, one Lease: only the leader writes; a leader that cannot renew stops
writing at its renew deadline and the other takes over and finishes the release."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from controller.adapters.kube.api import JsonDict, KubeApi
from controller.core.canary import template_hash
from controller.runtime.manager import Controller
from tests.runtime.harness import (
    NS,
    Env,
    deployment_doc,
    lane_doc,
    new_controller,
    running,
    wait,
)

pytestmark = pytest.mark.slow

LANE = lane_doc(
    steps=[{"weight": 50, "minDuration": "3s"}, {"weight": 100, "minDuration": "2s"}],
    progressDeadline="60s",
)


class RecordingApi(KubeApi):
    """Notes the time of every write that passed the leadership fence and went out."""

    writes: list[tuple[float, str]]

    def write(self, verb: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> JsonDict:
        def sent(*a: Any, **k: Any) -> Any:
            self.writes.append((time.monotonic(), verb))
            return fn(*a, **k)

        return super().write(verb, sent, *args, **kwargs)


def _controller(env: Env, instance: str, **settings: Any) -> tuple[Controller, RecordingApi]:
    made: list[RecordingApi] = []

    def factory(client: Any, may_write: Any) -> KubeApi:
        api = RecordingApi(client, may_write)
        api.writes = []
        made.append(api)
        return api

    c = new_controller(
        env.kubeconfig, env.sim, env.sink, instance=instance, api_factory=factory, **settings
    )
    env.controllers.append(c)
    c.start()
    return c, made[0]


def _partition_lease(controller: Controller) -> None:
    """This instance's Lease requests fail from now on (its other requests still work)."""
    assert controller.leadership is not None
    lock = controller.leadership._config.lock

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ApiException(status=500, reason="injected: lease unreachable")

    lock.api_instance.read_namespaced_lease = refuse
    lock.api_instance.replace_namespaced_lease = refuse
    lock.api_instance.create_namespaced_lease = refuse


def _leader(a: Controller, b: Controller) -> tuple[Controller, Controller]:
    wait(lambda: a.is_leader() or b.is_leader(), timeout=15)
    return (a, b) if a.is_leader() else (b, a)


def test_only_the_leader_writes_and_a_leader_that_cannot_renew_stops_at_once(
    tmp_path: Path,
) -> None:
    with running(tmp_path, lane=LANE, start=False) as env:
        a, api_a = _controller(env, "c-a")
        b, api_b = _controller(env, "c-b")
        apis = {id(a): api_a, id(b): api_b}
        leader, follower = _leader(a, b)
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"), timeout=20)
        env.set_image("web:2")
        name = f"web-{template_hash(env.deployment('web')['spec']['template'])}"
        env.wait_phase(["Progressing"], name=name)
        assert not follower.is_leader()
        assert apis[id(follower)].writes == [], "a follower wrote"
        assert apis[id(leader)].writes

        _partition_lease(leader)
        assert leader.leadership is not None
        done = env.wait_phase(["Promoted", "RolledBack", "Rejected"], name=name, timeout=60)
        assert done["status"]["phase"] == "Promoted", done["status"]
        assert follower.is_leader() and not leader.is_leader()

        deadline = leader.leadership.last_renewed() + leader.leadership.renew_deadline
        late = [(t - deadline, verb) for t, verb in apis[id(leader)].writes if t >= deadline]
        assert not late, f"the old leader wrote after its renew deadline: {late}"
        assert apis[id(follower)].writes, "the new leader never wrote"
        primary = env.deployment("web-primary")
        assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
        assert len(env.releases()) == 1
        uid, seq = done["metadata"]["uid"], int(done["status"]["recordSeq"])
        wait(lambda: not env.release(name)["status"].get("outbox"))
        ids = sorted(r.id for r in env.sink.records)
        assert ids == sorted(f"{uid}/{n}" for n in range(1, seq + 1))


def test_graceful_stop_hands_the_lease_over_before_it_expires(tmp_path: Path) -> None:
    with running(tmp_path, lane=LANE, start=False) as env:
        long = dict(lease_duration=15, renew_deadline=10, retry_period=1)
        a, _ = _controller(env, "c-a", **long)
        b, _ = _controller(env, "c-b", **long)
        leader, follower = _leader(a, b)
        stopped = threading.Event()
        started = time.monotonic()
        leader.stop()
        stopped.set()
        wait(follower.is_leader, timeout=8)
        handover = time.monotonic() - started
        assert handover < 8 < 15, handover  # well within one lease duration
        assert not leader.alive()
