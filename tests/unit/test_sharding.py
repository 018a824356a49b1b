"""The pure sharding rules: lanes to shards, shards to members, who waits, who hands over."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.lease import LeaseRecord, Standing, read_lease
from controller.core.sharding import (
    assignment,
    extra_wait,
    fair_share,
    shard_of,
    to_hand_over,
)

names = st.text(min_size=1, max_size=20)
members = st.sets(names, min_size=1, max_size=12)


@given(lane=names, shards=st.integers(1, 64))
def test_a_lane_has_one_shard_in_range_and_every_replica_agrees(lane: str, shards: int) -> None:
    shard = shard_of(lane, shards)
    assert 0 <= shard < shards
    assert shard_of(lane, shards) == shard


def test_lanes_spread_evenly_over_shards() -> None:
    counts = Counter(shard_of(f"lane-{i}", 4) for i in range(4000))
    assert set(counts) == {0, 1, 2, 3}
    assert all(800 <= n <= 1200 for n in counts.values()), counts


def test_adding_a_shard_moves_only_the_lanes_it_takes() -> None:
    """Rendezvous hashing: a lane changes shard only to the new one."""
    lanes = [f"lane-{i}" for i in range(2000)]
    moved = [ln for ln in lanes if shard_of(ln, 4) != shard_of(ln, 5)]
    assert all(shard_of(ln, 5) == 4 for ln in moved)
    assert 250 <= len(moved) <= 550  # about a fifth


def test_shards_below_one_is_an_error() -> None:
    with pytest.raises(ValueError, match="expected >= 1"):
        shard_of("lane", 0)


@given(shards=st.integers(1, 40), live=members)
def test_every_shard_has_one_owner_and_nobody_more_than_its_fair_share(
    shards: int, live: set[str]
) -> None:
    owners = assignment(shards, live)
    assert sorted(owners) == list(range(shards))
    assert set(owners.values()) <= live
    counts = Counter(owners.values())
    cap = fair_share(shards, len(live))
    assert cap == math.ceil(shards / len(live))
    assert max(counts.values()) <= cap
    if shards >= len(live):  # enough shards: everyone gets at least the floor
        assert all(counts.get(m, 0) >= shards // len(live) for m in live)


@given(shards=st.integers(1, 40), live=members)
def test_the_assignment_does_not_depend_on_the_order_members_are_seen(
    shards: int, live: set[str]
) -> None:
    assert assignment(shards, sorted(live)) == assignment(shards, sorted(live, reverse=True))


def test_a_dead_member_s_shards_go_to_the_others_and_the_rest_mostly_stay() -> None:
    before = assignment(3, ["a", "b", "c"])
    after = assignment(3, ["a", "b"])
    assert set(after.values()) == {"a", "b"}
    kept = [s for s, owner in before.items() if owner != "c" and after[s] == owner]
    assert len(kept) == 2  # only the dead member's shard moved


def test_no_members_no_assignment() -> None:
    assert assignment(3, []) == {}


NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _reading(holder: str | None, identity: str = "me") -> Standing:
    record = LeaseRecord(holder, 4, NOW, NOW, 0)
    return read_lease(record, identity, NOW, 4).standing


@pytest.mark.parametrize("holder", [None, "me"])
def test_a_free_shard_or_our_own_record_waits_a_lease_duration_unless_preferred(
    holder: str | None,
) -> None:
    reading = read_lease(LeaseRecord(holder, 4, NOW, NOW, 0), "me", NOW, 4)
    assert reading.standing in (Standing.RELEASED, Standing.MINE)
    assert extra_wait(reading, preferred=True, lease_duration_s=4) == 0
    assert extra_wait(reading, preferred=False, lease_duration_s=4) == 4
    absent = read_lease(None, "me", NOW, 4)
    assert extra_wait(absent, preferred=False, lease_duration_s=4) == 4


def test_a_shard_held_by_another_waits_only_what_the_lease_rules_say() -> None:
    reading = read_lease(LeaseRecord("other", 4, NOW, NOW, 0), "me", NOW, 4)
    assert extra_wait(reading, preferred=False, lease_duration_s=4) == 0
    assert reading.wait_s == 4  # core.lease already makes it wait a lease duration


def test_hand_over_only_to_a_live_other_member() -> None:
    owners = {0: "me", 1: "b", 2: "gone"}
    assert to_hand_over([0, 1, 2], owners, "me", live={"me", "b"}) == [1]
    assert to_hand_over([0], owners, "me", live={"me", "b"}) == []
