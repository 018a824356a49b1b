"""With lanes sharded, a replica's queue holds only its own shards' keys: the events of
another replica's shard never reach it, and a shard that comes to it brings its keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.core.sharding import shard_of
from controller.runtime.manager import Controller
from tests.runtime.harness import NS, deployment_doc, lane_doc, new_controller, running, wait

pytestmark = pytest.mark.slow

SHARDS = 2


def _lanes_on_each_shard() -> dict[int, str]:
    by_shard: dict[int, str] = {}
    for i in range(50):
        by_shard.setdefault(shard_of(f"lane-{i}", SHARDS), f"lane-{i}")
    assert len(by_shard) == SHARDS
    return by_shard


def _record_keys(controller: Controller) -> list[tuple[str, str, str]]:
    seen: list[tuple[str, str, str]] = []
    add = controller.queue.add

    def recording(key: Any, urgent: bool = False) -> None:
        seen.append(key)
        add(key, urgent=urgent)

    controller.queue.add = recording  # type: ignore[method-assign]
    return seen


def _lane_of(key: tuple[str, str, str]) -> str:
    """Workloads are named ``<lane>-<i>``, their releases ``<workload>-<hash>``."""
    kind, _, name = key
    return name if kind == "ChangeLane" else "-".join(name.split("-")[:2])


def test_a_replica_queues_only_its_shards_keys_and_takes_a_moved_shard_s_keys(
    tmp_path: Path,
) -> None:
    lanes = _lanes_on_each_shard()
    with running(tmp_path, lane=lane_doc(lanes[0]), start=False) as env:
        env.sim.store.create("changelanes", lane_doc(lanes[1]))
        for lane in lanes.values():
            for i in range(3):
                env.sim.store.create("deployments", deployment_doc(f"{lane}-{i}", lane=lane))
        settings: dict[str, Any] = dict(shards=SHARDS, lease_duration=3, renew_deadline=2)
        replicas = [
            new_controller(env.kubeconfig, env.sim, env.sink, instance=f"c-{i}", **settings)
            for i in range(2)
        ]
        seen = [_record_keys(c) for c in replicas]
        for c in replicas:
            env.controllers.append(c)
            c.start()

        def acting(c: Controller) -> list[int]:
            assert c.sharded is not None
            return c.sharded.shards.acting()

        balanced = [[0], [1]], [[1], [0]]
        wait(lambda: [acting(c) for c in replicas] in balanced, timeout=30)
        wait(lambda: all(env.deployment(f"{lane}-0-primary") for lane in lanes.values()))
        mine = {i: lanes[acting(c)[0]] for i, c in enumerate(replicas)}
        # (while they started, one may have held both shards for a moment)
        balanced_at = [len(keys) for keys in seen]
        for lane in lanes.values():  # events on both shards' workloads
            env.set_image("web:2", name=f"{lane}-1")
        wait(lambda: len(env.releases()) == 2)
        for i, keys in enumerate(seen):
            lanes_queued = {_lane_of(key) for key in keys[balanced_at[i] :]}
            assert lanes_queued == {mine[i]}, (i, mine[i], sorted(set(keys)))

        # The replica that stays takes the other's shard, and with it the shard's keys.
        stays, leaves = replicas
        before = len(seen[0])
        leaves.stop()
        env.controllers.remove(leaves)
        wait(lambda: sorted(acting(stays)) == [0, 1], timeout=30)
        moved = {key for key in seen[0][before:] if _lane_of(key) == mine[1]}
        lane = mine[1]
        expected = {("Deployment", NS, f"{lane}-{i}") for i in range(3)}
        expected |= {("ChangeLane", "", lane)}
        assert expected <= moved, sorted(moved)
        assert any(kind == "LaneRelease" for kind, _, _ in moved), sorted(moved)
