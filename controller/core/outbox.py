"""Whether a committed outbox must be cleared by a write of its own, or may wait for the
release's next status write.

A decision's audit records are committed in the status's outbox, flushed to the sinks,
then cleared. On a tick where nothing acts (the records are measurements, and the phase,
step and exposure stay where they were) the clear may wait: the next status write
replaces the outbox anyway, and until then the process that flushed it remembers so
(``runtime.flushed``) and does not flush it again. A new owner after a failover replays
it, as it would replay any outbox, and the sinks drop ids they already have.

Everything else clears at once: a terminal phase (retention deletes a finished release
only once its outbox is empty, and no next write may come), and every record that goes
with an action, an Event or a notification (a lingering one would be replayed to them).
"""

from __future__ import annotations

from controller.core.audit import Decision
from controller.core.models import LaneReleaseStatus

#: Records that come with no action, no Kubernetes Event and no notification.
QUIET_DECISIONS = frozenset({Decision.MEASUREMENT})


def clears_at_once(before: LaneReleaseStatus, after: LaneReleaseStatus) -> bool:
    """True when the outbox of ``after`` (the decided status) needs its own clearing write;
    False when the release's next status write may clear it."""
    if after.phase.terminal or not after.outbox:
        return bool(after.outbox)
    if any(record.decision not in QUIET_DECISIONS for record in after.outbox):
        return True
    return _exposure(before) != _exposure(after)


def _exposure(
    status: LaneReleaseStatus,
) -> tuple[object, int, int, int | None, tuple[int, ...]]:
    return (
        status.phase,
        status.current_step,
        status.weight,
        status.traffic_share,
        tuple(status.flag_weights),
    )
