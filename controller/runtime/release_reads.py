"""Where a release reconcile reads its LaneRelease: the informer's cache, not a GET.

Every release reconcile used to GET its release first: one API round trip per reconcile,
also for the ones that find nothing to do (most of them: each status write comes back as
a watch event and runs the reconcile once more). controller-runtime reads from the cache
and lets optimistic concurrency catch what is stale; this does the same, with one guard
that matters here: the cache may not yet hold this controller's *own* last write to the
release (the watch event is on its way). A decision taken from the version before it
would be refused (409) at best, and at worst, when it writes nothing, converge the
workload to a state the release has already left. So, as client-go's
``ControllerExpectations``, the resourceVersion of each own write is remembered until the
cache shows it, and until then the release is read with a GET.

Only this controller writes a release's status (with shards, only the shard's owner), so
a cached copy that carries our last write is the current status; a spec or annotation
edited by someone else reaches the cache a moment later and is acted on then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from controller.runtime.ports import JsonDict, NotFoundError

Key = tuple[str, str]


def _rv(obj: JsonDict) -> str | None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return None if rv is None else str(rv)


def _key(obj: JsonDict) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class ReleaseReads:
    def __init__(
        self,
        cached: Callable[[str, str], JsonDict | None],
        fetch: Callable[[str, str], JsonDict],
    ) -> None:
        self._cached = cached
        self._fetch = fetch
        self._written: dict[Key, str] = {}
        self._lock = threading.Lock()
        #: Reads served by a GET, for tests and the log.
        self.fetched = 0

    def wrote(self, written: JsonDict) -> None:
        """This controller wrote the release; ``written`` is the server's answer."""
        rv = _rv(written)
        if rv is not None:
            with self._lock:
                self._written[_key(written)] = rv

    def read(self, namespace: str, name: str) -> JsonDict:
        """The release as it is now; raises ``NotFoundError`` when it does not exist."""
        key = (namespace, name)
        cached = self._cached(namespace, name)
        with self._lock:
            expected = self._written.get(key)
            if cached is not None and expected in (None, _rv(cached)):
                self._written.pop(key, None)
                return cached
        self.fetched += 1
        try:
            fresh = self._fetch(namespace, name)
        except NotFoundError:
            with self._lock:
                self._written.pop(key, None)
            raise
        if cached is not None and _rv(cached) == _rv(fresh):
            with self._lock:  # the cache caught up (the write was superseded)
                self._written.pop(key, None)
        return fresh
