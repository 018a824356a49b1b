"""Indexes over the informers' caches, kept current by their events.

A release reconcile needs the other releases of its lane (the concurrency gate) and a
Deployment event needs the releases of its own workload. Scanning and re-parsing every
LaneRelease for that made a release reconcile O(releases) with pydantic in the loop
(about 240 us per object): quadratic per tick. Here each LaneRelease is parsed at most
once per ``resourceVersion`` and found by lane or by workload through a dict.

An object that does not parse is indexed (its key is known) but yields nothing; the
reconciler reports it when it reconciles that object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from controller.core.models import ChangeLane, LaneRelease
from controller.core.models.release import TERMINAL_PHASES
from controller.runtime.objects import parse_release

JsonDict = dict[str, Any]
T = TypeVar("T")
Key = tuple[str, str]  # (namespace, name)


def _meta(obj: JsonDict) -> JsonDict:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def key_of(obj: JsonDict) -> Key:
    meta = _meta(obj)
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def resource_version(obj: JsonDict) -> str | None:
    rv = _meta(obj).get("resourceVersion")
    return None if rv is None else str(rv)


@dataclass
class _Entry(Generic[T]):
    rv: str | None
    parsed: T | None


class ParseCache(Generic[T]):
    """``parse(raw)`` memoised per object key and resourceVersion (None: does not parse)."""

    def __init__(self, parse: Callable[[JsonDict], T | None]) -> None:
        self._parse = parse
        self._entries: dict[Key, _Entry[T]] = {}
        self._lock = threading.Lock()

    def parse(self, raw: JsonDict) -> T | None:
        key, rv = key_of(raw), resource_version(raw)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and rv is not None and entry.rv == rv:
                return entry.parsed
        parsed = self._parse(raw)  # outside the lock: pydantic is the slow part
        with self._lock:
            # The newest read wins: the informer and a fresh GET agree within a moment.
            self._entries[key] = _Entry(rv, parsed)
        return parsed

    def forget(self, raw: JsonDict) -> None:
        with self._lock:
            self._entries.pop(key_of(raw), None)


#: Phases (as the wire spells them) whose summary keeps the outbox (retention reads it).
_TERMINAL = frozenset(phase.value for phase in TERMINAL_PHASES)


def parse_release_summary(raw: JsonDict) -> LaneRelease | None:
    """The release without its measurement history (``status.measurements``: up to 20
    measurements, each about 2.6 KB once parsed). What the index serves (lanes' ticks,
    gates, adoption) never reads it; a release reconcile parses its release whole. Held
    for every release, the history grew the parsed cache by about 7 MiB per analysis
    tick at 1,000 releases, to over 250 MiB once 100 deep. Never write a status from one.

    The outbox goes too while the release is in flight: between quiet ticks it holds the
    last measurement's record (about 6 KB parsed, ``core.outbox``), and only the release's
    own reconcile replays it. A finished release keeps it: retention deletes one only once
    its outbox is empty."""
    status = raw.get("status")
    if isinstance(status, dict):
        dropped = {"measurements"}
        if status.get("phase") not in _TERMINAL:
            dropped.add("outbox")
        if dropped & status.keys():
            raw = {**raw, "status": {k: v for k, v in status.items() if k not in dropped}}
    return parse_release(raw)


class ReleaseIndex:
    """LaneReleases by lane and by target workload, parsed once per change, without their
    measurement history (``parse_release_summary``)."""

    def __init__(self) -> None:
        self.cache: ParseCache[LaneRelease] = ParseCache(parse_release_summary)
        self._raw: dict[Key, JsonDict] = {}
        self._by_lane: dict[str, set[Key]] = {}
        self._by_workload: dict[Key, set[Key]] = {}
        self._where: dict[Key, tuple[str, Key]] = {}
        self._lock = threading.Lock()
        #: Per lane, its releases as the gates read them (see ``for_gates``), and a
        #: version bumped whenever what the gates read changes.
        self._gate_views: dict[str, list[LaneRelease]] = {}
        self._gate_versions: dict[str, int] = {}
        self._gate_fields: dict[Key, tuple[Any, ...]] = {}

    @staticmethod
    def _place(raw: JsonDict) -> tuple[str, Key]:
        spec = raw.get("spec") if isinstance(raw.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        target = spec.get("target") if isinstance(spec.get("target"), dict) else {}
        assert isinstance(target, dict)
        ns = str(target.get("namespace") or _meta(raw).get("namespace") or "")
        return str(spec.get("lane") or ""), (ns, str(target.get("name") or ""))

    def upsert(self, raw: JsonDict) -> None:
        key = key_of(raw)
        lane, workload = self._place(raw)
        fields = _gate_fields(raw)
        with self._lock:
            where = self._where.get(key)
            if where is None or where[0] != lane or self._gate_fields.get(key) != fields:
                self._gates_changed(lane)
                if where is not None and where[0] != lane:
                    self._gates_changed(where[0])
            self._drop(key, gates_changed=False)
            self._gate_fields[key] = fields
            self._raw[key] = raw
            self._where[key] = (lane, workload)
            self._by_lane.setdefault(lane, set()).add(key)
            self._by_workload.setdefault(workload, set()).add(key)

    def remove(self, raw: JsonDict) -> None:
        with self._lock:
            self._drop(key_of(raw))
        self.cache.forget(raw)

    def _drop(self, key: Key, gates_changed: bool = True) -> None:
        self._raw.pop(key, None)
        self._gate_fields.pop(key, None)
        where = self._where.pop(key, None)
        if where is None:
            return
        lane, workload = where
        if gates_changed:
            self._gates_changed(lane)
        _discard(self._by_lane, lane, key)
        _discard(self._by_workload, workload, key)

    def _parsed(self, keys: set[Key] | None) -> list[LaneRelease]:
        with self._lock:
            raws = [self._raw[k] for k in sorted(keys or ()) if k in self._raw]
        return [rel for rel in map(self.cache.parse, raws) if rel is not None]

    def of_lane(self, lane: str) -> list[LaneRelease]:
        with self._lock:
            keys = set(self._by_lane.get(lane, ()))
        return self._parsed(keys)

    def for_gates(self, lane: str) -> list[LaneRelease]:
        """The lane's releases for its gates, which read only their names, specs, phases
        and start and finish times: rebuilt when one of those changes, not at every
        status write. At 1,000 releases in flight each write (a measurement applied)
        otherwise cost every other reconcile a list of 1,000 parses. The other status
        fields of what this returns may be older than the cache's: read them elsewhere."""
        with self._lock:
            view = self._gate_views.get(lane)
            version = self._gate_versions.get(lane, 0)
        if view is not None:
            return view
        built = self.of_lane(lane)
        with self._lock:
            if self._gate_versions.get(lane, 0) == version:
                self._gate_views[lane] = built
        return built

    def _gates_changed(self, lane: str) -> None:
        self._gate_views.pop(lane, None)
        self._gate_versions[lane] = self._gate_versions.get(lane, 0) + 1

    def of_workload(self, namespace: str, name: str) -> list[LaneRelease]:
        with self._lock:
            keys = set(self._by_workload.get((namespace, name), ()))
        return self._parsed(keys)

    def keys_of_workload(self, namespace: str, name: str) -> list[Key]:
        with self._lock:
            return sorted(self._by_workload.get((namespace, name), ()))


def _gate_fields(raw: JsonDict) -> tuple[Any, ...]:
    """What of a release the lane's gates read, besides its name: its spec (through the
    generation) and its phase, start and finish."""
    status = raw.get("status") if isinstance(raw.get("status"), dict) else {}
    assert isinstance(status, dict)
    return (
        _meta(raw).get("generation"),
        str(status.get("phase")),
        str(status.get("startedAt")),
        str(status.get("finishedAt")),
    )


def _discard(index: dict[Any, set[Key]], at: Any, key: Key) -> None:
    keys = index.get(at)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[at]


def parse_lane_or_none(parse: Callable[[JsonDict], ChangeLane]) -> Callable[[JsonDict], Any]:
    """Wrap the reconciler's lane parser so the cache remembers a failure as None."""

    def parse_lane(raw: JsonDict) -> ChangeLane | ValidationError:
        try:
            return parse(raw)
        except ValidationError as exc:
            return exc

    return parse_lane
