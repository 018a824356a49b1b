"""A cap on the workloads one lane manages, so that a lane whose selector matches far more
than intended (``matchLabels: {}`` over a big namespace: 50,000 Deployments) cannot make
the controller adopt, record and analyse all of them.

A lane manages at most ``limit`` workloads. Workloads it already manages (adopted: their
``-primary`` exists, or they have releases) always stay managed, so a restart, which sees
workloads in another order, never drops one; new ones are taken in while the lane is under
its limit, and the rest are left alone, running as Kubernetes runs them, without a canary.
The lane says so: a ``WorkloadLimit`` condition (True while workloads are refused, with
how many), a Warning Event and a log line, once.

The per-lane sets hold keys only (namespace, name), so their memory is bounded by the
limit plus the refused workloads the Deployment cache holds anyway.
"""

from __future__ import annotations

import threading

#: Default ``--max-lane-workloads``: twice the largest lane measured (10,000 Deployments,
#: docs/scale.md). Lanes are narrow by design; one that selects more is most likely a
#: selector mistake.
DEFAULT_MAX_LANE_WORKLOADS = 20_000
CONDITION = "WorkloadLimit"

Key = tuple[str, str]


class LaneWorkloads:
    def __init__(self, limit: int = DEFAULT_MAX_LANE_WORKLOADS) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._managed: dict[str, set[Key]] = {}
        self._refused: dict[str, set[Key]] = {}

    def admit(self, lane: str, key: Key, *, managed_already: bool) -> bool:
        """Whether ``lane`` manages the workload ``key``."""
        with self._lock:
            self._forget(key, keep_lane=lane)
            managed = self._managed.setdefault(lane, set())
            refused = self._refused.setdefault(lane, set())
            if key in managed:
                return True
            if managed_already or len(managed) < self.limit:
                managed.add(key)
                refused.discard(key)
                return True
            refused.add(key)
            return False

    def forget(self, key: Key) -> None:
        """The workload is gone (or no lane selects it any more)."""
        with self._lock:
            self._forget(key, keep_lane=None)

    def _forget(self, key: Key, keep_lane: str | None) -> None:
        for lane, keys in (*self._managed.items(), *self._refused.items()):
            if lane != keep_lane:
                keys.discard(key)

    def managed(self, lane: str) -> int:
        with self._lock:
            return len(self._managed.get(lane, ()))

    def refused(self, lane: str) -> int:
        with self._lock:
            return len(self._refused.get(lane, ()))

    def message(self, lane: str) -> str:
        refused = self.refused(lane)
        return (
            f"selects more workloads than the limit of {self.limit}: {self.managed(lane)} "
            f"managed, {refused} left alone (no canary, no release records); narrow "
            "spec.selector or raise changelane run --max-lane-workloads"
        )
