"""CI's slice of ``changelane bench shards``: three controller processes (each its own
token) share the lanes over three shard Leases; one is killed, one is added, two shard
owners are frozen (one while a renewal of its Lease is held by the API) and woken after
their shards moved. Every mutating request and audit append
is checked against the holder of its lane's shard Lease at that moment. The full run
(20 pauses) is ``changelane bench shards``."""

from __future__ import annotations

import pytest

from controller.bench import sharding

pytestmark = pytest.mark.slow


def test_every_release_has_one_writer_at_every_moment_as_shards_move() -> None:
    result = sharding.run(pauses=2, seed=7)
    report = sharding.table(result)
    assert result.violations == [], report
    assert result.pause_kinds == {"frozen-in-flight": 1, "paused": 1}, report
    # The checks looked at something: releases on every shard, written across moves.
    assert result.mutating_requests > 200 and result.releases >= 6, report
    assert any(n > 1 for n in result.writers_per_release.values()), report
    balance, kill, add = result.phases[:3]
    assert sorted(balance.held.values()) == [1, 1, 1], report
    assert sorted(kill.held.values()) == [0, 1, 2], report  # the dead one's shard moved
    assert sorted(add.held.values()) == [0, 1, 1, 1], report  # the killed one holds 0
    # A dead replica's shards move within lease duration + one retry period (+ latency);
    # no in-flight release waits longer than that for its next write.
    bound = sharding.LEASE_DURATION + sharding.RETRY_PERIOD + 0.5
    assert result.kill_moved_s is not None and result.kill_moved_s <= bound, report
    assert max(result.takeovers_s) <= bound, report
    # (+ one analysis interval; the pauses hold a renewal up to 5 s: the takeover waits)
    gaps = result.longest_gap_by_phase_s
    assert max(gaps.get("kill", 0.0), gaps.get("add", 0.0)) <= bound + 1.0, report
