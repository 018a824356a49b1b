"""The pure Lease rules: who may act, when a Lease may be taken, what is invalid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from controller.core.lease import (
    LeaseRecord,
    Standing,
    may_take,
    next_transitions,
    read_lease,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ME, OTHER = "replica-a", "replica-b"


def record(**fields: object) -> LeaseRecord:
    base: dict[str, object] = {
        "holder": OTHER,
        "lease_duration_s": 15,
        "acquire_time": NOW - timedelta(minutes=5),
        "renew_time": NOW - timedelta(seconds=1),
        "transitions": 3,
        "resource_version": "42",
    }
    base.update(fields)
    return LeaseRecord(**base)  # type: ignore[arg-type]


def test_a_valid_lease_held_by_another_waits_the_longer_duration() -> None:
    reading = read_lease(record(lease_duration_s=2), ME, NOW, 15)
    assert reading.standing is Standing.OTHER and not reading.acting
    assert reading.wait_s == 15  # a short duration written by hand does not hurry us
    assert "held by replica-b" in reading.reason
    assert not may_take(reading, 14.9) and may_take(reading, 15.0)


def test_mine_acts_and_a_released_lease_waits_its_own_duration() -> None:
    assert read_lease(record(holder=ME), ME, NOW, 15).acting
    released = read_lease(record(holder=None, lease_duration_s=1), ME, NOW, 15)
    assert released.standing is Standing.RELEASED and released.wait_s == 1
    assert read_lease(None, ME, NOW, 15).standing is Standing.ABSENT


def test_hand_edits_are_invalid_and_name_the_field() -> None:
    cases = {
        "spec.leaseDurationSeconds is missing": record(lease_duration_s=None),
        "spec.leaseDurationSeconds is 0": record(lease_duration_s=0),
        "spec.renewTime is missing": record(renew_time=None),
        "spec.acquireTime is missing": record(acquire_time=None),
        "spec.renewTime 2099": record(renew_time=datetime(2099, 1, 1, tzinfo=UTC)),
        "spec.leaseTransitions is -1": record(transitions=-1),
    }
    for expected, rec in cases.items():
        for who in (ME, OTHER):  # a hand edit stops the holder too
            reading = read_lease(LeaseRecord(**{**vars(rec), "holder": who}), ME, NOW, 15)
            assert reading.standing is Standing.INVALID, expected
            assert expected in reading.reason
            assert not reading.acting
            assert reading.wait_s == 15


def test_a_renew_time_a_little_ahead_is_clock_skew_not_an_edit() -> None:
    assert read_lease(record(renew_time=NOW + timedelta(seconds=5)), ME, NOW, 15).standing is (
        Standing.OTHER
    )


def test_transitions_count_holder_changes() -> None:
    assert next_transitions(None, ME) == 0
    assert next_transitions(record(holder=ME), ME) == 3
    assert next_transitions(record(), ME) == 4
    assert next_transitions(record(transitions=None), ME) == 1


holders = st.sampled_from([ME, OTHER, None, ""])
durations = st.one_of(st.none(), st.integers(-5, 60))
times = st.one_of(st.none(), st.integers(-(10**6), 10**9).map(lambda s: NOW + timedelta(seconds=s)))


@given(holders, durations, times, times, st.one_of(st.none(), st.integers(-3, 100)))
def test_only_a_valid_lease_naming_us_lets_us_act(
    holder: str | None,
    duration: int | None,
    acquired: datetime | None,
    renewed: datetime | None,
    transitions: int | None,
) -> None:
    rec = LeaseRecord(holder, duration, acquired, renewed, transitions, "1")
    reading = read_lease(rec, ME, NOW, 15)
    if reading.acting:
        assert holder == ME and duration is not None and duration >= 1
        assert renewed is not None and (renewed - NOW).total_seconds() <= max(15, duration)
    # Anything not ours is never taken before it stood still for a second, and one
    # naming another replica or unreadable never before our own lease duration.
    if reading.standing in (Standing.OTHER, Standing.INVALID):
        assert reading.wait_s >= 15 and not may_take(reading, 14.99)
    if reading.standing is Standing.RELEASED:
        assert reading.wait_s >= 1
