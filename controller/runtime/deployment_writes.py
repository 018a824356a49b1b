"""Deployment reconciles wait for the cache to show this controller's own last write.

A reconcile decides from the informer's cache. Right after the controller patched a
Deployment (adoption's pause and hand-over, the Converger's scale and promotion) the
cached copy is the one from before the patch until the watch event arrives; a reconcile
taking it as the truth re-sends the same patch (a no-op write, one round trip) and, for
the hand-over, another ``Adopted`` Event, and at 10,000 workloads those round trips took
the time the informer needed to catch up. So, as client-go's ``ControllerExpectations``
(and ``release_reads`` for LaneReleases), the resourceVersion of each own write is
remembered per Deployment, and a reconcile of the workload waits until the cache holds
that version or a later one: the write's own watch event brings the key back.

resourceVersions are compared as numbers when both are (every API server in practice,
and the simulated one); an opaque one counts as caught up only when equal. An
expectation the cache never meets (the object was deleted, or a relist skipped over the
exact version) expires after ``EXPECTATION_TTL_S``, as client-go's do after five minutes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from controller.runtime.ports import JsonDict

#: Seconds an unmet expectation holds a workload's reconciles back (client-go: 5 min).
EXPECTATION_TTL_S = 300.0

Key = tuple[str, str]


def resource_version(obj: JsonDict | None) -> str | None:
    if not isinstance(obj, dict):
        return None
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return None if rv is None else str(rv)


def caught_up(cached_rv: str | None, expected_rv: str) -> bool:
    """Whether a cached copy at ``cached_rv`` already holds the write at ``expected_rv``."""
    if cached_rv is None:
        return False
    if cached_rv.isdigit() and expected_rv.isdigit():
        return int(cached_rv) >= int(expected_rv)
    return cached_rv == expected_rv


class DeploymentWrites:
    def __init__(
        self,
        cached: Callable[[str, str], JsonDict | None],
        clock: Callable[[], float] = time.monotonic,
        ttl_s: float = EXPECTATION_TTL_S,
    ) -> None:
        self._cached = cached
        self._clock = clock
        self._ttl_s = ttl_s
        self._expected: dict[Key, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def wrote(self, written: JsonDict | None) -> None:
        """The controller wrote a Deployment; ``written`` is the server's answer."""
        rv = resource_version(written)
        if rv is None or written is None:
            return
        meta = written.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        with self._lock:
            self._expected[key] = (rv, self._clock() + self._ttl_s)

    def wait_s(self, namespace: str, *names: str) -> float | None:
        """Seconds to wait (a safety-net requeue) while the cache predates the last own
        write to any of ``names``; None when the cache is current for all of them."""
        longest: float | None = None
        for name in names:
            key = (namespace, name)
            with self._lock:
                expected = self._expected.get(key)
            if expected is None:
                continue
            rv, expires = expected
            left = expires - self._clock()
            if left <= 0 or caught_up(resource_version(self._cached(namespace, name)), rv):
                with self._lock:
                    if self._expected.get(key) == expected:
                        del self._expected[key]
                continue
            longest = left if longest is None else max(longest, left)
        return longest

    def pending(self) -> int:
        """Expectations not yet met (for tests and the log)."""
        with self._lock:
            return len(self._expected)
