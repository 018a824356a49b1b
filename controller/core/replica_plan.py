"""How many pods each copy runs in replica mode, without dropping availability (pure).

**Weight is the traffic share.** Behind one Service, traffic follows ready pods. The
primary used to keep its full replica count while the canary grew beside it, so "weight
100" served 50% and "weight 25" about 20%. Now, for a workload of ``total`` replicas:

* by default the copies share the replicas: ``canary = round(total * weight / 100)``
  (at least 1 while the weight is above 0), ``primary = total - canary``;
* with ``surge`` the primary keeps its replicas while canary pods are added beside it, up
  to as many again (``canary = total * w / (100 - w)``); above 50% the primary shrinks.

When ``total`` cannot express the weight (25% of 3 pods), the *achievable* share is what is
recorded (33%), never the requested one.

**Availability.** Moving pods from one copy to the other, a copy is only shrunk by as
many pods as the other copy has ready beyond the minimum: ready pods (primary + canary)
never drop below ``total - max_unavailable``. This is the Deployment controller's
``maxUnavailable`` accounting, across the two Deployments.

**Rollout complete** is judged as ``kubectl rollout status`` judges it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReplicaSplit:
    primary: int
    canary: int

    @property
    def share(self) -> int:
        """The canary's share of the pods, in percent (0 when there are none)."""
        pods = self.primary + self.canary
        return 0 if pods == 0 else round(100 * self.canary / pods)


def split_for(
    total: int, weight: int, *, surge: bool = False, keep_baseline: bool = False
) -> ReplicaSplit:
    """The pods of each copy that make ``weight`` percent of traffic, as closely as
    ``total`` replicas allow. ``keep_baseline``: at weight 100 the primary keeps one pod,
    so checks that compare the canary with the baseline still have a baseline to judge."""
    total = max(total, 1)
    weight = min(max(weight, 0), 100)
    if weight == 0:
        return ReplicaSplit(total, 0)
    if weight == 100:
        return ReplicaSplit(1 if keep_baseline else 0, total)
    if surge:
        if weight <= 50:
            canary = max(1, _round_half_down(total * weight / (100 - weight)))
            return ReplicaSplit(total, min(canary, total))
        primary = _round_half_down(total * (100 - weight) / weight)
        return ReplicaSplit(min(max(primary, 1), total), total)
    canary = min(max(1, _round_half_down(total * weight / 100)), total)
    if canary == total:
        # Never everything before weight 100: keep a primary pod (one extra pod when the
        # workload has a single replica, so "10%" is 50%, not 100%).
        return ReplicaSplit(1, total) if total == 1 else ReplicaSplit(1, total - 1)
    return ReplicaSplit(total - canary, canary)


def _round_half_down(x: float) -> int:
    """Nearest integer; a tie goes to the smaller exposure."""
    return math.ceil(x - 0.5)


def achievable_share(
    total: int, weight: int, *, surge: bool = False, keep_baseline: bool = False
) -> int:
    return split_for(total, weight, surge=surge, keep_baseline=keep_baseline).share


def availability_safe(
    target: ReplicaSplit,
    *,
    total: int,
    max_unavailable: int,
    primary_ready: int,
    canary_ready: int,
) -> ReplicaSplit:
    """``target``, except that neither copy shrinks below what keeps the ready pods of
    both at ``total - max_unavailable`` or more, given how many are ready now. Growing is
    never held back; the copy that grows makes room for the other to shrink next time."""
    need = max(0, total - max(0, max_unavailable))
    primary = max(target.primary, min(primary_ready, need - canary_ready))
    canary = max(target.canary, min(canary_ready, need - primary_ready))
    return ReplicaSplit(primary, canary)


def rollout_complete(deployment: dict[str, Any]) -> bool:
    """Every replica runs the current template and is available, as ``kubectl rollout
    status`` decides it: generation observed, all replicas updated, no old replica left,
    all updated replicas available."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    metadata = deployment.get("metadata") or {}
    replicas = spec.get("replicas")
    want = int(replicas) if replicas is not None else 1
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas", status.get("readyReplicas")) or 0)
    return (
        int(status.get("observedGeneration") or 0) >= int(metadata.get("generation") or 0)
        and updated >= want
        and int(status.get("replicas") or 0) <= updated
        and available >= want
    )


def ready_replicas(deployment: dict[str, Any] | None) -> int:
    if deployment is None:
        return 0
    return int((deployment.get("status") or {}).get("readyReplicas") or 0)
