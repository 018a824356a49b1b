"""When a canary's pods were last seen not crashing, so an unready canary's pods are
listed once per ``RECHECK_S``, not at every reconcile.

A canary that is not ready yet is asked why (``Observer._crash_reason``: a pod list by
label selector, one API round trip). Each analysis tick brings a release back several
times within moments (the decision, then the watch echo of each of its status writes),
and at 3,000 releases on three replicas these lists were 55-60% of every replica's
CPU while canaries waited for readiness (py-spy, sixth session in docs/scale.md).

Only the answer "no pod is crash-looping" is remembered, for ``RECHECK_S`` and for the
same Deployment spec (uid and generation): a crash found is never taken from memory, so
it rolls back at once, and a remembered "none" delays noticing a crash loop by at most
``RECHECK_S``, less than the kubelet's first CrashLoopBackOff back-off (10 s) takes to
show one. A new template (a new generation) is looked at afresh.
"""

from __future__ import annotations

import threading
from datetime import datetime

from controller.runtime.ports import JsonDict

#: Seconds a "no crash-looping pod" answer is reused for the same canary spec.
RECHECK_S = 10.0

_Spec = tuple[str, object]  # (uid, generation)


def _spec_of(dep: JsonDict) -> _Spec:
    meta = dep.get("metadata") or {}
    return str(meta.get("uid") or ""), meta.get("generation")


class CrashChecks:
    def __init__(self, recheck_s: float = RECHECK_S) -> None:
        self.recheck_s = recheck_s
        self._clear: dict[tuple[str, str], tuple[_Spec, datetime]] = {}
        self._lock = threading.Lock()

    def recently_clear(self, namespace: str, name: str, dep: JsonDict, now: datetime) -> bool:
        """The canary's pods were seen with no crash loop less than ``recheck_s`` ago,
        for this same spec."""
        with self._lock:
            seen = self._clear.get((namespace, name))
        if seen is None or seen[0] != _spec_of(dep):
            return False
        return 0 <= (now - seen[1]).total_seconds() < self.recheck_s

    def saw_clear(self, namespace: str, name: str, dep: JsonDict, now: datetime) -> None:
        with self._lock:
            self._clear[(namespace, name)] = (_spec_of(dep), now)

    def forget(self, namespace: str, name: str) -> None:
        """The canary is ready (or a crash was found): nothing to reuse."""
        with self._lock:
            self._clear.pop((namespace, name), None)
