"""Lanes over shards, shards over replicas: pure rules, no I/O.

- A lane belongs to one shard, by rendezvous (highest-random-weight) hashing of its name
  over the shard numbers: every replica computes the same answer from the name alone.
- Shards are spread over the live replicas (members) by a *balanced* rendezvous: each
  shard goes to the member that ranks it highest and still has room, every member
  getting ``floor(shards / members)`` or one more. Every replica that sees the same
  members computes the same assignment, so the replicas agree without talking; when a
  member joins or leaves, mostly only the shards that must move do.

The assignment only says who *should* own a shard. Who *does* is decided by the shard's
Lease, with exactly the rules of a single leader (``core.lease``): the assignment makes
a replica wait longer before taking a shard that is not its own, and makes a holder hand
over (fenced: it stops acting first, then releases the Lease) a shard that is another
live member's. Two views of the members that disagree cost a handover, never two owners.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

from controller.core.lease import LeaseReading, Standing


def _score(shard: int, name: str) -> int:
    digest = hashlib.blake2b(f"{shard}\x00{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_of(lane: str, shards: int) -> int:
    """The shard (``0 <= shard < shards``) whose owner acts for the lane named ``lane``."""
    if shards < 1:
        raise ValueError(f"shards is {shards}; expected >= 1")
    if shards == 1:
        return 0
    return max(range(shards), key=lambda shard: (_score(shard, lane), -shard))


def fair_share(shards: int, members: int) -> int:
    """The most shards one of ``members`` live replicas should hold."""
    return math.ceil(shards / members) if members > 0 else shards


def assignment(shards: int, members: Iterable[str]) -> dict[int, str]:
    """Which member should own each shard (empty without members).

    Every member gets ``shards // members`` shards and ``shards % members`` of them one
    more: pairs (shard, member) are taken best score first while the member has room."""
    names = sorted(set(members))
    if not names:
        return {}
    base, extra = divmod(shards, len(names))
    room = dict.fromkeys(names, base)
    ranked = sorted(
        ((_score(shard, name), shard, name) for shard in range(shards) for name in names),
        reverse=True,
    )
    owner: dict[int, str] = {}
    for _, shard, name in ranked:
        if shard in owner:
            continue
        if room[name] > 0:
            room[name] -= 1
        elif extra > 0 and room[name] == 0:
            extra -= 1
            room[name] = -1  # took its one shard above the base
        else:
            continue
        owner[shard] = name
    return owner


def extra_wait(reading: LeaseReading, preferred: bool, lease_duration_s: float) -> float:
    """Seconds a shard Lease read so must stand unchanged before this replica takes it,
    on top of the Lease rules (:func:`controller.core.lease.may_take`).

    The replica the assignment prefers takes a free (absent or released) shard, or its own
    record back, at once. Any other waits a whole lease duration: time for the preferred
    one to take it, and still a bounded wait when the preferred one is gone. A shard held
    by someone else already waits a lease duration under the Lease rules."""
    if preferred:
        return 0.0
    if reading.standing in (Standing.ABSENT, Standing.RELEASED, Standing.MINE):
        return float(lease_duration_s)
    return 0.0


def to_hand_over(
    held: Iterable[int], owners: Mapping[int, str], identity: str, live: Iterable[str]
) -> list[int]:
    """The shards this replica holds that a live other member should own (hand them over)."""
    alive = set(live)
    return sorted(
        shard
        for shard in held
        if owners.get(shard) not in (None, identity) and owners.get(shard) in alive
    )


#: The shard count a shard Lease's holder runs with, written on every write of it.
SHARDS_ANNOTATION = "changelane.dev/shards"


def other_scheme(
    lease: str,
    holder: str | None,
    annotations: Mapping[str, str],
    shards: int,
    prefix: str,
    leader_lease: str,
    identity: str,
) -> bool:
    """Is this Lease held by a replica that maps lanes to shards differently?

    While the shard count changes (a rolling update after replicaCount changed) the old
    pods map a lane to one shard and the new pods to another: each may own "its" shard of
    the same lane. So a replica acts for no newly won shard while a live Lease of another
    scheme exists: the single leader Lease (one replica for every lane), or a shard Lease
    whose holder runs another shard count. Liveness is judged by the caller."""
    if not holder or holder == identity:
        return False
    if lease == leader_lease:
        return True
    if lease.startswith(f"{prefix}-shard-"):
        scheme = annotations.get(SHARDS_ANNOTATION)
        return scheme is not None and scheme != str(shards)
    return False
