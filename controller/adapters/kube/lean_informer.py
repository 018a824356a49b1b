"""The official ``SharedInformer``, lean: paginated relists, a cache transform, quiet resyncs.

``kubernetes.informer.SharedInformer`` (client 37) relists in one unpaginated request,
caches whole objects and fires MODIFIED for every object on each resync. At 10,000
Deployments that is a 34 MiB body held beside the old cache, 7 KB per cached object, and
10,000 keys re-enqueued a minute. This subclass changes only the list and the cache:

- the list is read in pages (``limit``/``continue``), each merged into the cache before
  the next is read, so neither the whole list's body nor a second copy of the cache is
  ever in memory;
- a *transform* keeps only what the controller reads (as controller-runtime's
  ``cache.TransformStripManagedFields``), on every list page and every watch event;
- a relist fires MODIFIED only for objects whose ``resourceVersion`` changed (and ADDED /
  DELETED as before), so an unchanged object is not re-enqueued;
- a MODIFIED event whose cached form did not change (only fields the transform drops,
  or only the resourceVersion) is not dispatched, as controller-runtime's predicates;
- the watch resumes from the last event it delivered: the client's ``Watch`` only
  advances its resourceVersion when it deserialises events into models, and ours are
  dicts, so every reconnect replayed every change since the last list (see ``_fire``).

The watch loop, backoff, 410 handling and event dispatch are the client's, unchanged: it is
subclassed, not forked.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes.informer import SharedInformer
from kubernetes.informer.cache import ObjectCache
from kubernetes.informer.informer import ADDED, DELETED, MODIFIED

from controller.core.packed_status import PACKED_FIELDS, packed

# The client's informer is untyped: subclass it as Any so its methods stay callable under
# --strict (they are the client's, not ours to annotate).
_SharedInformer: Any = SharedInformer
_ObjectCache: Any = ObjectCache

JsonDict = dict[str, Any]
Transform = Callable[[JsonDict], JsonDict]

#: Objects per list request: the API server's own default chunk for kubectl is 500.
PAGE_SIZE = 500

#: Deployment status fields the controller reads (rolled out, ready, observed).
_STATUS_KEPT = ("replicas", "readyReplicas", "updatedReplicas", "availableReplicas")
#: Metadata no decision reads; a real API server sends them with every object.
_METADATA_DROPPED = ("managedFields",)
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: Strings up to this length are interned (names, images, label values repeat).
_INTERN_MAX = 64
#: Values of these keys are interned whatever their length: a release's PromQL repeats in
#: every measurement of its history (one text per check and window), up to 20 times.
_INTERN_ALWAYS = frozenset({"query"})


def strip_metadata(obj: JsonDict) -> JsonDict:
    """Drop managedFields and kubectl's copy of the whole object (never read)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return obj
    if any(key in meta for key in _METADATA_DROPPED) or _LAST_APPLIED in (
        meta.get("annotations") or {}
    ):
        meta = {k: v for k, v in meta.items() if k not in _METADATA_DROPPED}
        annotations = meta.get("annotations")
        if isinstance(annotations, dict) and _LAST_APPLIED in annotations:
            meta["annotations"] = {k: v for k, v in annotations.items() if k != _LAST_APPLIED}
        obj = {**obj, "metadata": meta}
    return obj


def compact(value: Any) -> Any:
    """The same JSON with keys and short strings interned: ``json.loads`` makes a new
    string for every key of every object, so 20,000 Deployments hold 20,000 copies of
    "metadata", "containers", the image name, ... Sharing them halves the cache."""
    if isinstance(value, dict):
        return {
            sys.intern(k): sys.intern(v)
            if k in _INTERN_ALWAYS and isinstance(v, str)
            else compact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [compact(v) for v in value]
    if isinstance(value, str) and len(value) <= _INTERN_MAX:
        return sys.intern(value)
    return value


def lean_object(obj: JsonDict) -> JsonDict:
    """Any object as cached: without managedFields, compacted."""
    compacted: JsonDict = compact(strip_metadata(obj))
    return compacted


def lean_release(obj: JsonDict) -> JsonDict:
    """A LaneRelease as cached: ``lean_object`` with its measurement history and outbox
    packed (``core.packed_status``; not interned first: they are not kept as objects)."""
    status = obj.get("status")
    kept: JsonDict = {}
    if isinstance(status, dict):
        kept = {f: status[f] for f in PACKED_FIELDS if isinstance(status.get(f), list)}
        if kept:
            obj = {**obj, "status": {k: v for k, v in status.items() if k not in kept}}
    lean = lean_object(obj)
    if not kept:
        return lean
    return packed({**lean, "status": {**lean["status"], **kept}})


def lean_deployment(obj: JsonDict) -> JsonDict:
    """A Deployment as the controller reads it: metadata without managedFields, the whole
    spec (the pod template is hashed and promoted), and the status counts without
    conditions; compacted."""
    obj = strip_metadata(obj)
    status = obj.get("status")
    if isinstance(status, dict):
        kept = {k: status[k] for k in _STATUS_KEPT if k in status}
        if "observedGeneration" in status:
            kept["observedGeneration"] = status["observedGeneration"]
        obj = {**obj, "status": kept}
    compacted: JsonDict = compact(obj)
    return compacted


def _resource_version(obj: Any) -> str | None:
    if isinstance(obj, dict):
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        return str(rv) if rv is not None else None
    return None


def same_but_version(old: JsonDict, new: JsonDict) -> bool:
    """The two cached forms differ at most in ``metadata.resourceVersion``."""
    if old.keys() != new.keys():
        return False
    for key, value in new.items():
        if key != "metadata":
            if old[key] != value:
                return False
            continue
        old_meta = old[key]
        if not isinstance(value, dict) or not isinstance(old_meta, dict):
            if old_meta != value:
                return False
            continue
        if old_meta.keys() != value.keys():
            return False
        if any(old_meta[k] != v for k, v in value.items() if k != "resourceVersion"):
            return False
    return True


class TransformingCache(_ObjectCache):  # type: ignore[misc]  # untyped base
    """The client's cache, storing every object through ``transform``; ``changed`` says
    whether the last put changed the cached form beyond its resourceVersion."""

    def __init__(self, transform: Transform, key_func: Any = None) -> None:
        super().__init__(key_func=key_func)
        self.transform = transform
        self.changed = True

    def _put(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            self.changed = True
            super()._put(obj)
            return
        new = self.transform(obj)
        old = self.get_by_key(self._key_func(new))
        self.changed = not isinstance(old, dict) or not same_but_version(old, new)
        super()._put(new)


class LeanInformer(_SharedInformer):  # type: ignore[misc]  # untyped base
    """A ``SharedInformer`` with paginated relists, a transform and quiet resyncs."""

    def __init__(
        self,
        list_func: Callable[..., Any],
        *,
        transform: Transform = lean_object,
        page_size: int = PAGE_SIZE,
        resync_period: int = 0,
    ) -> None:
        super().__init__(list_func, resync_period=resync_period)
        self._cache = TransformingCache(transform)
        self.transform = transform
        self.page_size = page_size
        #: Lists done (the first and every relist), for tests.
        self.relists = 0

    def _fire(self, event_type: str, obj: Any) -> None:
        """Dispatch as the client does, first noting a watch event's resourceVersion on
        the Watch. The client's ``Watch.unmarshal_event`` returns dict events before
        recording their resourceVersion, so both the Watch's own retry and the informer's
        reconnect resumed from the list's: after a dropped connection the cache went back
        through every older version of every object changed since (at 10k Deployments,
        hundreds of thousands of stale events, each one a reconcile acting on an old copy)."""
        watch = self._watch
        if watch is not None and event_type != "ERROR":
            rv = _resource_version(obj)
            if rv is not None:
                watch.resource_version = rv
        if event_type == MODIFIED and not self._cache.changed:
            # controller-runtime's predicates: an event that changed nothing the cache
            # keeps (a status condition's timestamp, managedFields) wakes nobody. The
            # cache still took its resourceVersion. Safe because no cached copy is ever
            # edited in place: the echo of the controller's own write always differs.
            return
        super()._fire(event_type, obj)

    def _pages(self) -> Iterator[tuple[list[JsonDict], str | None]]:
        """Each page's raw items, and the list's resourceVersion (the first page's: the
        pages continue one snapshot)."""
        kw = self._build_kwargs()
        token: str | None = None
        while True:
            page_kw = dict(kw, limit=self.page_size)
            if token:
                page_kw["_continue"] = token
            resp = self._list_func(**page_kw)
            meta = getattr(resp, "metadata", None)
            yield list(getattr(resp, "items", None) or []), getattr(meta, "resource_version", None)
            token = getattr(meta, "continue_", None)
            if not token:
                return

    def _initial_list(self) -> None:
        """List page by page, merging each page into the cache as it arrives: an object
        whose resourceVersion did not change keeps its cached copy (not even transformed
        again) and fires nothing; a new one fires ADDED, a changed one MODIFIED; what the
        list no longer has fires DELETED at the end. Memory: the cache plus one page."""
        cache = self._cache
        key_of = cache._key_func
        before = set(cache.list_keys())
        seen: set[str] = set()
        list_rv: str | None = None
        for items, rv in self._pages():
            list_rv = list_rv or rv
            for item in items:
                key = key_of(item)
                seen.add(key)
                old = cache.get_by_key(key)
                if old is not None and _resource_version(old) == _resource_version(item):
                    continue
                cache._put(item)  # transformed by the cache
                self._fire(ADDED if old is None else MODIFIED, cache.get_by_key(key))
        for key in before - seen:
            old = cache.get_by_key(key)
            if old is not None:
                cache._remove(old)
                self._fire(DELETED, old)
        self.relists += 1
        self._resource_version = list_rv or "0"
