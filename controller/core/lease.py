"""What a leader-election Lease says about who may act: a pure reading, no I/O.

The election adapter (``controller.runtime.leader``) reads the Lease, turns it into a
:class:`LeaseRecord` and asks :func:`read_lease` what it stands for. The rules:

- **Mine** (the holder is this replica and the record is valid): the leader renews it.
- **Other** holder: nobody but that holder acts. It may be taken over only once the
  record has stood unchanged, as observed here, for the longer of its own
  ``leaseDurationSeconds`` and ours: a holder that still renews changes it first.
- **Released** (no holder, every other field present): handed back on purpose; it may
  be taken once it has stood unchanged for its ``leaseDurationSeconds`` (1 s for ours).
- **Invalid** (a field missing, a duration below one second, a ``renewTime`` further in
  the future than a lease duration): edited by hand or written by something broken.
  Nobody acts on it, each replica reports why, and it is treated like a Lease held by
  an unknown holder: taken over (and so rewritten valid) only after it stood unchanged
  for our lease duration.

Waiting is measured from when this replica *first saw* a record (never from the
record's own times, which come from another clock), which is what client-go does too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Standing(StrEnum):
    ABSENT = "absent"
    MINE = "mine"
    OTHER = "other"
    RELEASED = "released"
    INVALID = "invalid"


@dataclass(frozen=True)
class LeaseRecord:
    """The election fields of a Lease (``None``: the field is missing)."""

    holder: str | None
    lease_duration_s: int | None
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int | None = None
    resource_version: str | None = None


@dataclass(frozen=True)
class LeaseReading:
    standing: Standing
    #: One line for logs and status: who holds it, or what is wrong with it.
    reason: str
    holder: str | None = None
    #: Seconds the record must stand unchanged (as observed here) before it may be taken.
    wait_s: float = 0.0

    @property
    def acting(self) -> bool:
        """This replica may act on this record (it is valid and names us)."""
        return self.standing is Standing.MINE


def problem(record: LeaseRecord, now: datetime, lease_duration_s: int) -> str | None:
    """What makes ``record`` invalid (``None``: nothing), naming the field."""
    if record.lease_duration_s is None:
        return "spec.leaseDurationSeconds is missing"
    if record.lease_duration_s < 1:
        return f"spec.leaseDurationSeconds is {record.lease_duration_s}; expected >= 1"
    if record.renew_time is None:
        return "spec.renewTime is missing"
    if record.holder and record.acquire_time is None:
        return "spec.acquireTime is missing"
    ahead = (record.renew_time - now).total_seconds()
    if ahead > max(lease_duration_s, record.lease_duration_s):
        return (
            f"spec.renewTime {record.renew_time.isoformat()} is {ahead:.0f} s ahead of this "
            f"replica's clock; expected at most {lease_duration_s} s"
        )
    if record.transitions is not None and record.transitions < 0:
        return f"spec.leaseTransitions is {record.transitions}; expected >= 0"
    return None


def read_lease(
    record: LeaseRecord | None, identity: str, now: datetime, lease_duration_s: int
) -> LeaseReading:
    """What ``record`` means for the replica ``identity`` whose lease duration is
    ``lease_duration_s`` (``now``: this replica's wall clock, only to judge renewTime)."""
    if record is None:
        return LeaseReading(Standing.ABSENT, "no Lease yet")
    wrong = problem(record, now, lease_duration_s)
    if wrong is not None:
        return LeaseReading(
            Standing.INVALID,
            f"Lease is invalid: {wrong}",
            holder=record.holder,
            wait_s=float(lease_duration_s),
        )
    assert record.lease_duration_s is not None  # checked by problem()
    if not record.holder:
        return LeaseReading(
            Standing.RELEASED, "Lease released (no holder)", wait_s=float(record.lease_duration_s)
        )
    if record.holder == identity:
        return LeaseReading(Standing.MINE, "Lease held by this replica", holder=identity)
    return LeaseReading(
        Standing.OTHER,
        f"Lease held by {record.holder}",
        holder=record.holder,
        wait_s=float(max(record.lease_duration_s, lease_duration_s)),
    )


def may_take(reading: LeaseReading, unchanged_for_s: float) -> bool:
    """May a replica that is not acting take (create, acquire) a Lease it read so?"""
    if reading.standing in (Standing.ABSENT, Standing.MINE):
        return True
    return unchanged_for_s >= reading.wait_s


def next_transitions(record: LeaseRecord | None, identity: str) -> int:
    """``spec.leaseTransitions`` after ``identity`` writes: +1 when the holder changes."""
    if record is None:
        return 0
    current = max(0, record.transitions or 0)
    return current if record.holder == identity else current + 1
