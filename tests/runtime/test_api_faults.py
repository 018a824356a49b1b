"""An unreliable API server: 5xx answers, dropped watches, compacted history (410 on
resume) and watch requests that hang. The release still ends right and no record is lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from controller.core.canary import template_hash
from tests.runtime.harness import NS, Env, deployment_doc, lane_doc, running, wait

pytestmark = pytest.mark.slow

LANE = lane_doc(
    steps=[{"weight": 50, "minDuration": "1s"}, {"weight": 100, "minDuration": "1s"}],
    progressDeadline="60s",
)


def _ship(env: Env, image: str) -> dict[str, Any]:
    env.set_image(image)
    name = f"web-{template_hash(env.deployment('web')['spec']['template'])}"
    return env.wait_phase(["Promoted", "RolledBack", "Rejected"], name=name, timeout=90)


def _adopt(env: Env) -> None:
    env.sim.store.create("deployments", deployment_doc())
    wait(lambda: env.sim.deployment_ready(NS, "web-primary"), timeout=20)
    wait(lambda: env.deployment("web")["spec"]["replicas"] == 0)


def _records_complete(env: Env, rel: dict[str, Any]) -> None:
    uid, seq = rel["metadata"]["uid"], int(rel["status"]["recordSeq"])
    wait(lambda: not env.release(rel["metadata"]["name"])["status"].get("outbox"), timeout=20)
    ids = [r.id for r in env.sink.records if r.id.startswith(uid)]
    assert sorted(ids) == sorted(f"{uid}/{n}" for n in range(1, seq + 1))


def test_500s_dropped_watches_and_compaction_do_not_lose_work(tmp_path: Path) -> None:
    with running(tmp_path, lane=LANE, resync_seconds=5) as env:
        _adopt(env)
        faults = env.sim.faults
        # A third of every request fails with 500 or 503, writes and reads alike.
        errors = [faults.fail(500, share=0.2), faults.fail(503, share=0.15)]
        stop = threading.Event()
        chaos = {"drops": 0, "compactions": 0}

        def churn() -> None:
            # Watches die and history is compacted under the informers' feet: each
            # resume from a resourceVersion then answers 410 Gone and forces a relist.
            while not stop.wait(0.7):
                chaos["drops"] += faults.drop_watches()
                faults.compact()
                chaos["compactions"] += 1

        churner = threading.Thread(target=churn, daemon=True)
        churner.start()
        try:
            good = _ship(env, "web:2")
            bad = _ship(env, "web:3-bad")
        finally:
            stop.set()
            churner.join()
            faults.clear()
        assert good["status"]["phase"] == "Promoted", good["status"]
        assert bad["status"]["phase"] == "RolledBack", bad["status"]
        assert chaos["drops"] > 0 and chaos["compactions"] > 3
        assert all(rule.hits > 10 for rule in errors), [r.hits for r in errors]
        primary = env.deployment("web-primary")
        assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
        _records_complete(env, good)
        _records_complete(env, bad)


def test_a_hanging_watch_is_abandoned_by_the_client_timeout(tmp_path: Path) -> None:
    with running(tmp_path, lane=LANE, watch_read_timeout=1.5) as env:
        _adopt(env)
        faults = env.sim.faults
        # Every reconnecting watch is held by the server for a minute, three times over:
        # without a client-side timeout the informers would sit on those for a minute.
        hang = faults.delay(60.0, verbs=["watch"], times=3 * 3)
        faults.drop_watches()
        started = time.monotonic()
        rel = _ship(env, "web:2")
        elapsed = time.monotonic() - started
        assert rel["status"]["phase"] == "Promoted"
        assert hang.hits == hang.times  # every hanging watch was tried and given up on
        assert elapsed < 45, f"release took {elapsed:.0f}s: a hanging watch held the informer"
