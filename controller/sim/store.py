"""The in-memory object store: the apiserver's semantics over a dict, safe across threads.

Every write takes one lock, gets the next store-wide resourceVersion, is kept in a bounded
event history (watches resume from it; anything older answers 410 Expired) and is pushed
to the matching watchers. Objects are kept as their JSON bytes, so a read is a copy-free
lookup and a list of a thousand objects is a join.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controller.core.formatting import api_time
from controller.sim import apply as ssa
from controller.sim import eventsv1
from controller.sim.errors import (
    STALE,
    ApiError,
    already_exists,
    bad_request,
    conflict,
    expired,
    forbidden,
    invalid,
    not_found,
    unsupported_media_type,
)
from controller.sim.objects import (
    Stored,
    apply_builtin_defaults,
    builtin_problems,
    dumps,
    generation_relevant,
    metadata_problems,
)
from controller.sim.patching import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from controller.sim.resources import Registry, ResourceType, default_registry
from controller.sim.selectors import (
    EVERYTHING,
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
)
from controller.sim.watches import Watcher

JsonDict = dict[str, Any]
Listener = Callable[["StoreEvent"], None]
ResourceRef = ResourceType | str

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SYSTEM_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",  # written by the server only (controller/sim/apply.py)
)
# The manager of writes made inside the simulated cluster (its kubelet and controllers).
INTERNAL_MANAGER = "kube-controller-manager"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def now_rfc3339() -> str:
    return api_time(datetime.now(UTC))


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(length))


@dataclass(frozen=True, slots=True)
class StoreEvent:
    """A committed change: ADDED, MODIFIED or DELETED, with the object before it."""

    rv: int
    type: str
    type_key: str
    obj: Stored
    prev: Stored | None


@dataclass(frozen=True)
class ListResult:
    items: list[Stored]
    resource_version: int
    continue_token: str | None
    remaining: int | None


class Store:
    """Objects by resource type, namespace and name; see the module docstring."""

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        history_limit: int = 10_000,
        clock: Callable[[], str] = now_rfc3339,
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
    ) -> None:
        self.registry = registry or default_registry()
        self.clock = clock
        self._lock = threading.RLock()
        self._data: dict[str, dict[str, dict[str, Stored]]] = {}
        self._rv = 0
        self._history: deque[StoreEvent] = deque(maxlen=max(1, history_limit))
        self._compacted_rv = 0
        self._watchers: dict[str, set[Watcher]] = {}
        self._listeners: list[Listener] = []
        self._owners: dict[str, set[tuple[str, str, str]]] = {}
        self._uids: dict[str, tuple[str, str, str]] = {}
        #: (storage key, namespace, label key, label value) -> names: a list by label
        #: selector (the controller lists a workload's pods) touches only the matches.
        self._by_label: dict[tuple[str, str, str, str], set[str]] = {}
        for ns in namespaces:
            self.create("namespaces", {"metadata": {"name": ns}})

    # ------------------------------------------------------------------ lookups

    def rtype(self, ref: ResourceRef) -> ResourceType:
        if isinstance(ref, ResourceType):
            return ref
        try:
            return self.registry.resolve(ref)
        except KeyError as exc:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({ref})"
            ) from exc

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    @property
    def compacted_resource_version(self) -> int:
        """Watches and continues from at or below this resourceVersion get 410 Expired."""
        with self._lock:
            return self._compacted_rv

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` (under the store lock: keep it short) after every commit."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def get(self, ref: ResourceRef, namespace: str | None, name: str) -> Stored:
        rtype = self.rtype(ref)
        with self._lock:
            found = self._bucket(rtype, namespace).get(name)
        if found is None:
            raise not_found(rtype.group, rtype.plural, name)
        return found

    def get_obj(self, ref: ResourceRef, namespace: str | None, name: str) -> JsonDict:
        """The object as a fresh dict in the shape of ``ref`` (converted for view types)."""
        rtype = self.rtype(ref)
        return self.to_obj(rtype, self.get(rtype, namespace, name))

    def to_obj(self, rtype: ResourceType, stored: Stored) -> JsonDict:
        obj = stored.obj()
        return eventsv1.from_core(obj) if rtype.storage_alias else obj

    def render(self, rtype: ResourceType, stored: Stored) -> bytes:
        """The object's JSON as the API returns it for ``rtype``."""
        if rtype.storage_alias:
            return dumps(eventsv1.from_core(stored.obj()))
        return stored.raw

    def list(
        self,
        ref: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> ListResult:
        rtype = self.rtype(ref)
        labels = _labels(label_selector)
        fields = self._fields(rtype, field_selector)
        start_after, token_rv = self._decode_continue(continue_token)
        with self._lock:
            rv = token_rv or self._rv
            if namespace:
                pools: list[dict[str, Stored]] = [self._bucket(rtype, namespace)]
            else:
                pools = list(self._data.get(rtype.storage_key, {}).values())
            indexed = self._labelled(rtype, namespace, labels) if namespace else None
            if indexed is not None:
                candidates = [s for name in indexed if (s := pools[0].get(name)) is not None]
            else:
                candidates = [s for pool in pools for s in pool.values()]
        selected = [
            s
            for s in candidates
            if (not start_after or (s.namespace, s.name) > start_after)
            and labels.matches(s.labels)
            and (fields.empty or fields.matches(s.field))
        ]
        selected.sort(key=lambda s: (s.namespace, s.name))
        if limit and len(selected) > limit:
            page = selected[:limit]
            last = page[-1]
            token = _encode_continue(rv, last.namespace, last.name)
            return ListResult(page, rv, token, len(selected) - limit)
        return ListResult(selected, rv, None, None)

    # ------------------------------------------------------------------ writes

    def create(
        self,
        ref: ResourceRef,
        obj: JsonDict,
        *,
        namespace: str | None = None,
        field_validation: str = "Strict",
        dry_run: bool = False,
        warnings: builtins.list[str] | None = None,
        field_manager: str | None = None,
        managed_fields: builtins.list[Any] | None = None,
    ) -> Stored:
        rtype = self.rtype(ref)
        obj = self._incoming(rtype, obj, namespace)
        meta = obj["metadata"]
        meta.pop("managedFields", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + random_suffix()
            else:
                raise invalid(
                    rtype.group,
                    rtype.kind,
                    "",
                    [("metadata.name", "Required value: name or generateName is required")],
                )
        name = meta["name"]
        obj = self._admit(rtype, obj, None, field_validation, warnings)
        with self._lock:
            ns = meta.get("namespace", "")
            if rtype.namespaced:
                self._check_namespace_open(rtype, ns, name)
            if name in self._bucket(rtype, ns):
                raise already_exists(rtype.group, rtype.plural, name)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = self.clock()
            for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(key, None)
            if rtype.tracks_generation:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            if rtype.status_subresource and rtype.storage_key != "namespaces":
                obj.pop("status", None)
            if rtype.storage_key == "namespaces":
                obj["status"] = {"phase": "Active"}
            elif rtype.storage_key == "pods":
                obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            elif rtype.storage_key == "services":
                self._allocate_cluster_ip(obj)
            if managed_fields is None:
                managed_fields = ssa.track_update(
                    rtype, None, obj, field_manager or INTERNAL_MANAGER, None, self.clock()
                )
            if managed_fields:
                meta["managedFields"] = managed_fields
            if dry_run:
                meta["resourceVersion"] = str(self._rv)
                return Stored.of(obj)
            return self._commit(rtype, obj, "ADDED", None)

    def update(
        self,
        ref: ResourceRef,
        obj: JsonDict,
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
        field_validation: str = "Strict",
        dry_run: bool = False,
        warnings: builtins.list[str] | None = None,
        field_manager: str | None = None,
    ) -> Stored:
        """PUT: replace the object (or its status, with ``subresource="status"``)."""
        rtype = self.rtype(ref)
        obj = self._incoming(rtype, obj, namespace)
        meta = obj["metadata"]
        name = name or meta.get("name")
        if not name:
            raise invalid(rtype.group, rtype.kind, "", [("metadata.name", "Required value")])
        if meta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})"
            )
        meta["name"] = name
        with self._lock:
            current = self.get(rtype, meta.get("namespace", ""), name)
            wanted_rv = meta.get("resourceVersion")
            if wanted_rv not in (None, "") and str(wanted_rv) != str(current.rv):
                raise conflict(rtype.group, rtype.plural, name, STALE)
            if wanted_rv in (None, "") and rtype.custom:
                raise invalid(
                    rtype.group,
                    rtype.kind,
                    name,
                    [
                        (
                            "metadata.resourceVersion",
                            "Invalid value: 0x0: must be specified for an update",
                        )
                    ],
                )
            return self._replace(
                rtype, current, obj, subresource, field_validation, dry_run, warnings,
                field_manager=field_manager,
            )  # fmt: skip

    def patch(
        self,
        ref: ResourceRef,
        namespace: str | None,
        name: str,
        patch: Any,
        patch_type: str = MERGE_PATCH,
        *,
        subresource: str | None = None,
        field_validation: str = "Strict",
        dry_run: bool = False,
        warnings: builtins.list[str] | None = None,
        field_manager: str | None = None,
    ) -> Stored:
        """PATCH with a merge, JSON or strategic-merge patch (``patch_type`` is the media type)."""
        rtype = self.rtype(ref)
        if patch_type == STRATEGIC_PATCH and rtype.custom:
            raise unsupported_media_type(
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, "
                "application/apply-patch+yaml"
            )
        with self._lock:
            current = self.get(rtype, namespace, name)
            base = self.to_obj(rtype, current)
            if patch_type == MERGE_PATCH:
                if not isinstance(patch, dict):
                    raise bad_request(
                        "json: cannot unmarshal array into Go value of type map[string]interface {}"
                    )
                patched = merge_patch(base, patch)
            elif patch_type == JSON_PATCH:
                patched = json_patch(base, patch)
            elif patch_type == STRATEGIC_PATCH:
                patched = strategic_merge_patch(base, patch)
            else:
                raise unsupported_media_type(
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: {JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_PATCH}"
                )
            if not isinstance(patched.get("metadata"), dict):
                patched["metadata"] = {}
            pmeta = patched["metadata"]
            if pmeta.get("name", name) != name:
                raise bad_request(
                    f"the name of the object ({pmeta.get('name')}) does not match the name on "
                    f"the URL ({name})"
                )
            if pmeta.get("resourceVersion") not in (None, "") and str(
                pmeta["resourceVersion"]
            ) != str(current.rv):
                raise conflict(rtype.group, rtype.plural, name, STALE)
            patched = self._incoming(rtype, patched, namespace)
            return self._replace(
                rtype, current, patched, subresource, field_validation, dry_run, warnings,
                field_manager=field_manager,
            )  # fmt: skip

    def apply(
        self,
        ref: ResourceRef,
        namespace: str | None,
        name: str,
        config: Any,
        *,
        field_manager: str,
        force: bool = False,
        subresource: str | None = None,
        field_validation: str = "Strict",
        dry_run: bool = False,
        warnings: builtins.list[str] | None = None,
    ) -> tuple[Stored, bool]:
        """Server-side apply (controller/sim/apply.py); ``(stored, created)``."""
        rtype = self.rtype(ref)
        if not isinstance(config, dict) or not config.get("apiVersion") or not config.get("kind"):
            raise bad_request(
                "apply requests must set apiVersion and kind (the body is the applied "
                "configuration, a full object)"
            )
        config = self._incoming(rtype, config, namespace)
        meta = config["metadata"]
        if meta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})"
            )
        meta["name"] = name
        with self._lock:
            bucket = self._bucket(rtype, meta.get("namespace", ""))
            current = bucket.get(name)
            live = self.to_obj(rtype, current) if current is not None else None
            merged = ssa.apply(
                rtype,
                live,
                config,
                field_manager,
                force=force,
                subresource=subresource,
                now=self.clock(),
            )
            managed = merged["metadata"].pop("managedFields")
            if current is None:
                if subresource:
                    raise not_found(rtype.group, rtype.plural, name)
                stored = self.create(
                    rtype, merged, namespace=namespace, field_validation=field_validation,
                    dry_run=dry_run, warnings=warnings, managed_fields=managed,
                )  # fmt: skip
                return stored, True
            merged["metadata"]["managedFields"] = managed
            stored = self._replace(
                rtype, current, merged, subresource, field_validation, dry_run, warnings,
                managed_fields=managed,
            )  # fmt: skip
            return stored, False

    def delete(
        self,
        ref: ResourceRef,
        namespace: str | None,
        name: str,
        *,
        preconditions: JsonDict | None = None,
        propagation: str = "Background",
        dry_run: bool = False,
    ) -> tuple[Stored, bool]:
        """DELETE; returns (object, gone). With finalizers the object stays, marked deleting."""
        rtype = self.rtype(ref)
        with self._lock:
            current = self.get(rtype, namespace, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != current.uid:
                raise conflict(
                    rtype.group,
                    rtype.plural,
                    name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, "
                    f"UID in object meta: {current.uid}",
                )
            if pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(current.rv):
                raise conflict(
                    rtype.group,
                    rtype.plural,
                    name,
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{pre['resourceVersion']}, "
                    f"ResourceVersion in object meta: {current.rv}",
                )
            if dry_run:
                return current, not current.finalizers
            if propagation == "Orphan":
                self._orphan_dependents(current)
            if rtype.storage_key == "namespaces":
                return self._delete_namespace(current)
            if current.finalizers:
                if current.deleting:
                    return current, False
                obj = current.obj()
                obj["metadata"]["deletionTimestamp"] = self.clock()
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                if rtype.tracks_generation:
                    obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
                return self._commit(rtype, obj, "MODIFIED", current), False
            return self._remove(rtype, current), True

    # ------------------------------------------------------------------ watches

    def watch(
        self,
        ref: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
        resource_version: str | None = None,
        send_initial_events: bool | None = None,
        initial_events_bookmark: bool = False,
        render: Callable[[str, Stored], bytes] | None = None,
    ) -> Watcher:
        """A watcher primed with the events a real watch would start with.

        No resourceVersion (or "0"): synthetic ADDED events for the current objects, then
        changes. A resourceVersion: the retained events after it; 410 Expired when events
        after it were already compacted away. ``send_initial_events`` forces the first form.
        """
        rtype = self.rtype(ref)
        labels = _labels(label_selector)
        fields = self._fields(rtype, field_selector)
        watcher = Watcher(
            type_key=rtype.storage_key,
            namespace=namespace or None,
            labels=labels,
            fields=fields,
            render=render or (lambda kind, stored: self._event_line(rtype, kind, stored)),
        )
        with self._lock:
            initial = send_initial_events or resource_version in (None, "", "0")
            if initial:
                pools = (
                    [self._bucket(rtype, namespace)]
                    if namespace
                    else list(self._data.get(rtype.storage_key, {}).values())
                )
                for pool in pools:
                    for stored in sorted(pool.values(), key=lambda s: s.rv):
                        if self._matches(watcher, stored):
                            watcher.push(watcher.render("ADDED", stored))
                if initial_events_bookmark:
                    watcher.push(self.bookmark_line(rtype, initial_events_end=True))
            else:
                try:
                    since = int(str(resource_version))
                except ValueError as exc:
                    raise bad_request(f"invalid resource version: {resource_version}") from exc
                if since < self._compacted_rv:
                    raise expired(f"too old resource version: {since} ({self._compacted_rv + 1})")
                for event in self._history:
                    if event.rv > since and event.type_key == rtype.storage_key:
                        self._deliver(watcher, event)
            self._watchers.setdefault(rtype.storage_key, set()).add(watcher)
        return watcher

    def stop_watch(self, watcher: Watcher) -> None:
        with self._lock:
            self._watchers.get(watcher.type_key, set()).discard(watcher)
        watcher.close()

    def drop_watches(self, ref: ResourceRef | None = None) -> int:
        """End open watches (all, or of one resource), as a restarting apiserver would."""
        with self._lock:
            keys = [self.rtype(ref).storage_key] if ref is not None else list(self._watchers)
            dropped = [w for k in keys for w in self._watchers.pop(k, set())]
        for w in dropped:
            w.close(dropped=True)
        return len(dropped)

    def watcher_count(self) -> int:
        with self._lock:
            return sum(len(ws) for ws in self._watchers.values())

    def compact(self, keep: int = 0) -> int:
        """Forget all but the last ``keep`` events; resuming from before them gets 410."""
        with self._lock:
            while len(self._history) > keep:
                self._compacted_rv = self._history.popleft().rv
            if not self._history:
                self._compacted_rv = self._rv
            return self._compacted_rv

    # ------------------------------------------------------------------ scale subresource

    def scale(self, ref: ResourceRef, namespace: str | None, name: str) -> JsonDict:
        rtype = self.rtype(ref)
        if not rtype.scale_subresource:
            raise not_found(rtype.group, f"{rtype.plural}/scale", name)
        obj = self.get(rtype, namespace, name).obj()
        return _scale_of(obj)

    def set_scale(
        self,
        ref: ResourceRef,
        namespace: str | None,
        name: str,
        replicas: int,
        rv: str | None = None,
        field_manager: str | None = None,
    ) -> JsonDict:
        rtype = self.rtype(ref)
        patch: JsonDict = {"spec": {"replicas": replicas}}
        if rv:
            patch["metadata"] = {"resourceVersion": rv}
        stored = self.patch(
            rtype, namespace, name, patch, MERGE_PATCH, subresource="scale",
            field_manager=field_manager,
        )  # fmt: skip
        return _scale_of(stored.obj())

    # ------------------------------------------------------------------ internals

    def _labelled(
        self, rtype: ResourceType, namespace: str, labels: LabelSelector
    ) -> builtins.set[str] | None:
        """Names in ``namespace`` carrying every ``key=value`` the selector requires (a
        superset of its matches), or None when it requires none."""
        found: builtins.set[str] | None = None
        ns = namespace if rtype.namespaced else ""
        for req in labels.requirements:
            if req.operator in ("=", "==", "in") and len(req.values) == 1:
                names = self._by_label.get((rtype.storage_key, ns, req.key, req.values[0]), set())
                found = names if found is None else found & names
        return None if found is None else builtins.set(found)

    def _index_labels(self, rtype: ResourceType, old: Stored | None, new: Stored | None) -> None:
        if old is not None and new is not None and old.labels == new.labels:
            return
        key = rtype.storage_key
        if old is not None:
            for label in old.labels.items():
                names = self._by_label.get((key, old.namespace, *label))
                if names is not None:
                    names.discard(old.name)
                    if not names:
                        del self._by_label[(key, old.namespace, *label)]
        if new is not None:
            for label in new.labels.items():
                self._by_label.setdefault((key, new.namespace, *label), set()).add(new.name)

    def _bucket(self, rtype: ResourceType, namespace: str | None) -> dict[str, Stored]:
        by_ns = self._data.setdefault(rtype.storage_key, {})
        ns = (namespace or "") if rtype.namespaced else ""
        return by_ns.get(ns) or by_ns.setdefault(ns, {})

    def _fields(self, rtype: ResourceType, selector: str | FieldSelector | None) -> FieldSelector:
        if isinstance(selector, FieldSelector):
            return selector
        parsed = parse_field_selector(selector, rtype.field_selectors)
        if rtype.storage_alias:
            from controller.sim.selectors import FieldRequirement

            parsed = FieldSelector(
                tuple(
                    FieldRequirement(eventsv1.core_field(r.field), r.value, r.negate)
                    for r in parsed.requirements
                )
            )
        return parsed

    def _decode_continue(self, token: str | None) -> tuple[tuple[str, str] | None, int]:
        if not token:
            return None, 0
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            start = (str(data["ns"]), str(data["name"]))
            rv = int(data["rv"])
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise bad_request(f"continue key is not valid: {exc}") from exc
        with self._lock:
            if rv < self._compacted_rv:
                raise expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                )
        return start, rv

    def _incoming(self, rtype: ResourceType, obj: Any, namespace: str | None) -> JsonDict:
        """Check kind/apiVersion/namespace of a request body; normalise to the storage shape."""
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be a JSON object")
        # A JSON round trip copies in C, several times faster than deepcopy on objects
        # with managedFields; a body must be JSON to be stored anyway.
        obj = json.loads(dumps(obj))
        api_version = obj.get("apiVersion") or rtype.api_version
        kind = obj.get("kind") or rtype.kind
        if api_version != rtype.api_version or kind != rtype.kind:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rtype.api_version})"
                if api_version != rtype.api_version
                else f"the kind in the data ({kind}) does not match the expected kind "
                f"({rtype.kind})"
            )
        obj = {"apiVersion": api_version, "kind": kind, **obj}
        obj["apiVersion"], obj["kind"] = api_version, kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request("metadata: expected an object")
        if rtype.namespaced:
            body_ns = meta.get("namespace")
            if namespace and body_ns and body_ns != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace or body_ns or "default"
        else:
            meta.pop("namespace", None)
        if rtype.storage_alias:
            return eventsv1.to_core(obj)
        return dict(obj)

    def _admit(
        self,
        rtype: ResourceType,
        obj: JsonDict,
        old: JsonDict | None,
        field_validation: str,
        warnings: builtins.list[str] | None,
    ) -> JsonDict:
        """Schema (unknown fields, defaults, validation) and built-in rules; raises 400/422."""
        name = obj["metadata"].get("name", "")
        if rtype.schema is not None:
            unknown = rtype.schema.unknown_fields(obj)
            if unknown and field_validation == "Strict":
                listed = ", ".join(f'unknown field "{u}"' for u in unknown)
                raise ApiError(
                    400,
                    "BadRequest",
                    f'{rtype.kind} in version "{rtype.version}" cannot be handled as a '
                    f"{rtype.kind}: strict decoding error: {listed}",
                    name=name,
                    group=rtype.group,
                    kind=rtype.kind,
                    causes=[
                        {
                            "reason": "FieldValueInvalid",
                            "message": f'unknown field "{u}"',
                            "field": u,
                        }
                        for u in unknown
                    ],
                )
            if unknown:
                if warnings is not None and field_validation == "Warn":
                    warnings.extend(f'unknown field "{u}"' for u in unknown)
                obj = rtype.schema.prune(obj)
            rtype.schema.apply_defaults(obj)
        else:
            apply_builtin_defaults(rtype, obj)
        problems = metadata_problems(rtype, obj["metadata"])
        if rtype.schema is not None:
            problems += rtype.schema.errors(obj)
        else:
            problems += builtin_problems(rtype, obj, old)
        if problems:
            raise invalid(rtype.group, rtype.kind, name, problems)
        return obj

    def _replace(
        self,
        rtype: ResourceType,
        current: Stored,
        new: JsonDict,
        subresource: str | None,
        field_validation: str,
        dry_run: bool,
        warnings: builtins.list[str] | None,
        *,
        field_manager: str | None = None,
        managed_fields: builtins.list[Any] | None = None,
    ) -> Stored:
        old = current.obj()
        if subresource == "status":
            merged = current.obj()  # a second fresh copy: cheaper than deepcopy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
        elif subresource not in (None, "", "scale"):  # scale: set_scale's spec.replicas
            raise not_found(rtype.group, f"{rtype.plural}/{subresource}", current.name)
        elif rtype.status_subresource:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        meta = new["metadata"]
        for key in _SYSTEM_META:
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
            else:
                meta.pop(key, None)
        if rtype.storage_key == "services":
            spec = new.get("spec")
            if isinstance(spec, dict) and not spec.get("clusterIP"):
                for key in ("clusterIP", "clusterIPs"):
                    if key in (old.get("spec") or {}):
                        spec[key] = old["spec"][key]
        new = self._admit(rtype, new, old, field_validation, warnings)
        meta = new["metadata"]
        if current.deleting:
            added = set(meta.get("finalizers") or ()) - set(current.finalizers)
            if added:
                raise forbidden(
                    rtype.group,
                    rtype.plural,
                    current.name,
                    "no new finalizers can be added if the object is being deleted, found new "
                    f"finalizers {sorted(added)!r}",
                )
        if rtype.tracks_generation:
            generation = int(old["metadata"].get("generation", 1))
            if generation_relevant(rtype, new) != generation_relevant(rtype, old):
                generation += 1
            meta["generation"] = generation
        else:
            meta.pop("generation", None)
        meta["resourceVersion"] = str(current.rv)
        if managed_fields is not None:
            meta["managedFields"] = managed_fields
        elif new != old:
            meta["managedFields"] = ssa.track_update(
                rtype, old, new, field_manager or INTERNAL_MANAGER, subresource, self.clock()
            )
        if not meta.get("managedFields"):
            meta.pop("managedFields", None)
        if dry_run:
            return Stored.of(new)
        if new == old:
            return current  # a no-op write does not bump resourceVersion, as in the apiserver
        if current.deleting and not meta.get("finalizers"):
            committed = self._commit(rtype, new, None, current)
            return self._remove(rtype, committed)
        return self._commit(rtype, new, "MODIFIED", current)

    def _commit(
        self, rtype: ResourceType, obj: JsonDict, event_type: str | None, prev: Stored | None
    ) -> Stored:
        """Store ``obj`` at the next resourceVersion (``event_type`` None: no event yet)."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        stored = Stored.of(obj)
        bucket = self._bucket(rtype, stored.namespace)
        self._index_labels(rtype, bucket.get(stored.name), stored)
        bucket[stored.name] = stored
        self._index_owners(rtype, prev, stored)
        if event_type is not None:
            self._record(StoreEvent(self._rv, event_type, rtype.storage_key, stored, prev))
        return stored

    def _remove(self, rtype: ResourceType, current: Stored) -> Stored:
        self._rv += 1
        obj = current.obj()
        obj["metadata"]["resourceVersion"] = str(self._rv)
        gone = Stored.of(obj)
        self._index_labels(
            rtype, self._bucket(rtype, current.namespace).pop(current.name, None), None
        )
        self._index_owners(rtype, current, None)
        self._record(StoreEvent(self._rv, "DELETED", rtype.storage_key, gone, current))
        self._collect_dependents(gone)
        if rtype.namespaced:
            self._finish_namespace_if_empty(current.namespace)
        return gone

    def _record(self, event: StoreEvent) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted_rv = self._history[0].rv
        self._history.append(event)
        for watcher in list(self._watchers.get(event.type_key, ())):
            self._deliver(watcher, event)
            if watcher.closed:
                self._watchers[event.type_key].discard(watcher)
        for listener in self._listeners:
            listener(event)

    def _deliver(self, watcher: Watcher, event: StoreEvent) -> None:
        now = self._matches(watcher, event.obj) if event.type != "DELETED" else False
        before = event.prev is not None and self._matches(watcher, event.prev)
        if event.type == "DELETED":
            if before or (event.prev is None and self._matches(watcher, event.obj)):
                watcher.push(watcher.render("DELETED", event.obj))
        elif now and before:
            watcher.push(watcher.render("MODIFIED", event.obj))
        elif now:
            watcher.push(watcher.render("ADDED", event.obj))
        elif before:
            # the object left the selector: watchers see it as deleted
            watcher.push(watcher.render("DELETED", event.obj))

    def _matches(self, watcher: Watcher, stored: Stored) -> bool:
        if watcher.namespace and stored.namespace != watcher.namespace:
            return False
        if not watcher.labels.matches(stored.labels):
            return False
        return watcher.fields.empty or watcher.fields.matches(stored.field)

    def _event_line(self, rtype: ResourceType, kind: str, stored: Stored) -> bytes:
        return b'{"type":"' + kind.encode() + b'","object":' + self.render(rtype, stored) + b"}\n"

    def bookmark_if_idle(self, watcher: Watcher, rtype: ResourceType) -> bytes | None:
        """A BOOKMARK at the current resourceVersion, if ``watcher`` has nothing pending.

        Writes push under the store lock, so an idle watcher checked under it has already
        been handed every event up to this resourceVersion.
        """
        with self._lock:
            return self.bookmark_line(rtype) if watcher.idle() else None

    def bookmark_line(self, rtype: ResourceType, *, initial_events_end: bool = False) -> bytes:
        meta: JsonDict = {"resourceVersion": str(self.resource_version)}
        if initial_events_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": meta}
        return b'{"type":"BOOKMARK","object":' + dumps(obj) + b"}\n"

    # --- ownership, garbage collection, namespaces

    def _index_owners(self, rtype: ResourceType, old: Stored | None, new: Stored | None) -> None:
        if old is not None and new is None:
            self._uids.pop(old.uid, None)
        if new is not None:
            self._uids[new.uid] = (rtype.storage_key, new.namespace, new.name)
        if old is not None:
            for uid in old.owner_uids:
                refs = self._owners.get(uid)
                if refs is not None:
                    refs.discard((rtype.storage_key, old.namespace, old.name))
                    if not refs:
                        del self._owners[uid]
        if new is not None:
            for uid in new.owner_uids:
                self._owners.setdefault(uid, set()).add(
                    (rtype.storage_key, new.namespace, new.name)
                )

    def dependents(self, uid: str) -> builtins.list[tuple[ResourceType, Stored]]:
        """Objects whose ownerReferences name ``uid``."""
        with self._lock:
            out: builtins.list[tuple[ResourceType, Stored]] = []
            for key, ns, name in sorted(self._owners.get(uid, ())):
                rtype = self.registry.by_storage_key(key)
                found = self._bucket(rtype, ns).get(name)
                if found is not None:
                    out.append((rtype, found))
            return out

    def find_uid(self, uid: str) -> tuple[ResourceType, Stored] | None:
        """The live object with this uid, if any."""
        with self._lock:
            where = self._uids.get(uid)
            if where is None:
                return None
            rtype = self.registry.by_storage_key(where[0])
            found = self._bucket(rtype, where[1]).get(where[2])
            return (rtype, found) if found is not None else None

    def _collect_dependents(self, owner: Stored) -> None:
        # background cascading deletion, done at once rather than by a separate collector
        for rtype, dependent in self.dependents(owner.uid):
            remaining = [u for u in dependent.owner_uids if u != owner.uid and self._uid_alive(u)]
            if remaining:
                continue
            try:
                self.delete(rtype, dependent.namespace, dependent.name)
            except ApiError:
                continue

    def _uid_alive(self, uid: str) -> bool:
        return uid in self._uids

    def _orphan_dependents(self, owner: Stored) -> None:
        for rtype, dependent in self.dependents(owner.uid):
            obj = dependent.obj()
            refs = [
                r for r in obj["metadata"].get("ownerReferences", []) if r.get("uid") != owner.uid
            ]
            if refs:
                obj["metadata"]["ownerReferences"] = refs
            else:
                obj["metadata"].pop("ownerReferences", None)
            self._commit(rtype, obj, "MODIFIED", dependent)

    def _check_namespace_open(self, rtype: ResourceType, namespace: str, name: str) -> None:
        ns_type = self.registry.by_storage_key("namespaces")
        found = self._bucket(ns_type, None).get(namespace)
        if found is None:
            raise not_found("", "namespaces", namespace)
        if found.deleting:
            raise forbidden(
                rtype.group,
                rtype.plural,
                name,
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
            )

    def _delete_namespace(self, current: Stored) -> tuple[Stored, bool]:
        ns_type = self.registry.by_storage_key("namespaces")
        if not current.deleting:
            obj = current.obj()
            obj["metadata"]["deletionTimestamp"] = self.clock()
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            obj["status"] = {"phase": "Terminating"}
            current = self._commit(ns_type, obj, "MODIFIED", current)
        for key, by_ns in list(self._data.items()):
            rtype = self.registry.by_storage_key(key)
            if not rtype.namespaced:
                continue
            for stored in list(by_ns.get(current.name, {}).values()):
                try:
                    self.delete(rtype, stored.namespace, stored.name)
                except ApiError:
                    continue
        self._finish_namespace_if_empty(current.name)
        still = self._bucket(ns_type, None).get(current.name)
        # removing the last object may already have removed the namespace
        return (still, False) if still is not None else (current, True)

    def _finish_namespace_if_empty(self, namespace: str) -> Stored | None:
        ns_type = self.registry.by_storage_key("namespaces")
        found = self._bucket(ns_type, None).get(namespace)
        if found is None or not found.deleting:
            return None
        for key, by_ns in self._data.items():
            if self.registry.by_storage_key(key).namespaced and by_ns.get(namespace):
                return None
        return self._remove(ns_type, found)

    def _allocate_cluster_ip(self, obj: JsonDict) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("clusterIP") or spec.get("type") == "ExternalName":
            return
        n = self._rv + 10
        ip = f"10.96.{(n // 250) % 250}.{n % 250 + 2}"
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]

    def iter_objects(self, ref: ResourceRef) -> Iterator[Stored]:
        rtype = self.rtype(ref)
        with self._lock:
            items = [
                s for pool in self._data.get(rtype.storage_key, {}).values() for s in pool.values()
            ]
        yield from items


def _labels(selector: str | LabelSelector | None) -> LabelSelector:
    if isinstance(selector, LabelSelector):
        return selector
    return parse_label_selector(selector) if selector else EVERYTHING


def _encode_continue(rv: int, namespace: str, name: str) -> str:
    raw = json.dumps({"rv": rv, "ns": namespace, "name": name}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _scale_of(obj: JsonDict) -> JsonDict:
    meta = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector") or {}
    labels = ",".join(f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items())
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": labels,
        },
    }
