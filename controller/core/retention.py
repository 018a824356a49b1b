"""Which finished LaneReleases may go, so etcd does not grow without bound.

A release is kept while it is in flight, while its outbox still holds records not yet
written to the audit sinks, and while it is among the newest ``keep_last`` finished ones
of its workload and younger than ``ttl``. The newest finished release of a workload is
always kept: it is what tells the controller that the workload's current pod template was
already released (without it the template would look new and be released again). The
audit log keeps the record of every release; the LaneRelease is the live view. A count or
age shorter than a lane's autonomy budget window makes the budget forget outcomes early.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.core.models import LaneRelease


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int | None = 20  # per workload (at least 1 is always kept); None: no limit
    ttl: timedelta | None = None  # None: no age limit


def expired(
    releases: Iterable[LaneRelease], policy: RetentionPolicy, now: datetime
) -> list[LaneRelease]:
    """The finished releases the policy lets go, oldest first."""
    by_workload: dict[tuple[str, str], list[LaneRelease]] = defaultdict(list)
    for rel in releases:
        s = rel.status
        if not s.phase.terminal or s.finished_at is None or s.outbox:
            continue
        by_workload[(rel.spec.target.namespace, rel.spec.target.name)].append(rel)
    out: list[LaneRelease] = []
    for finished in by_workload.values():
        finished.sort(key=lambda r: r.status.finished_at or now, reverse=True)
        for index, rel in enumerate(finished):
            if index == 0:
                continue  # the newest: it vouches for the workload's current template
            too_many = policy.keep_last is not None and index >= policy.keep_last
            finished_at = rel.status.finished_at or now
            too_old = policy.ttl is not None and now - finished_at > policy.ttl
            if too_many or too_old:
                out.append(rel)
    return sorted(out, key=lambda r: r.status.finished_at or now)
