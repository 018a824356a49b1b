"""Server-side apply and ``metadata.managedFields``, the way kube-apiserver does them.

Every write records who set which field. An object's fields are a set of paths (the
structured-merge-diff model): a map contributes its leaves, an associative list (containers
by ``name``, ports by ``containerPort``+``protocol``, ...) contributes one path per item plus
the item's fields, and an atomic value (a plain list, a label selector) is one leaf.

- **Update** (POST, PUT, PATCH): the writer's manager takes the fields it changed, from
  whoever owned them; nobody is asked (this is how the controller's replica patches work).
- **Apply** (PATCH ``application/apply-patch+yaml``): the applier states the fields it wants
  to own. Fields it no longer states, that nobody else owns, are removed from the object.
  Changing a value that another manager owns is a *conflict*: 409 with one cause per field,
  unless ``force=true``, which moves the field to the applier. Applying a value equal to the
  live one shares the field without conflict.
- A write that changes neither the object nor any manager's fields is a no-op: timestamps
  stay, resourceVersion stays.

Fields are tracked per scope: the main resource does not own ``status`` (it has its own
subresource managers), and ``apiVersion``, ``kind`` and the server's metadata are nobody's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from controller.sim.errors import ApiError, bad_request
from controller.sim.resources import ResourceType

JsonDict = dict[str, Any]
Path = tuple[str, ...]  # elements as managedFields spells them: "f:name", 'k:{"name":"a"}'
FieldSet = frozenset[Path]

APPLY = "Apply"
UPDATE = "Update"
_ITEM = object()  # the value recorded for an associative-list item's own path

# Associative lists of the built-in types the lanes use: (parent field, list field) or
# (None, list field) -> the item's key fields. Every other list is atomic.
_LIST_KEYS: dict[tuple[str | None, str], tuple[str, ...]] = {
    (None, "containers"): ("name",),
    (None, "initContainers"): ("name",),
    (None, "ephemeralContainers"): ("name",),
    (None, "env"): ("name",),
    (None, "volumes"): ("name",),
    (None, "volumeMounts"): ("mountPath",),
    (None, "imagePullSecrets"): ("name",),
    (None, "conditions"): ("type",),
    (None, "ownerReferences"): ("uid",),
    ("containers", "ports"): ("containerPort", "protocol"),
    ("initContainers", "ports"): ("containerPort", "protocol"),
    ("spec", "ports"): ("port", "protocol"),
}
_SET_LISTS = frozenset({("metadata", "finalizers")})
_KEY_DEFAULTS = {"protocol": "TCP"}
# Label selectors are structType=atomic: one owner for the whole selector.
_ATOMIC_MAPS = frozenset({("spec", "selector")})
_SERVER_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    }
)


# ---------------------------------------------------------------------- field sets


def _list_keys(names: tuple[str, ...]) -> tuple[str, ...] | None:
    parent = names[-2] if len(names) > 1 else None
    return _LIST_KEYS.get((parent, names[-1])) or _LIST_KEYS.get((None, names[-1]))


def _is_set(names: tuple[str, ...]) -> bool:
    return tuple(names[-2:]) in _SET_LISTS


def _atomic_map(names: tuple[str, ...]) -> bool:
    return tuple(names[-2:]) in _ATOMIC_MAPS and len(names) == 2


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _item_key(item: Any, keys: tuple[str, ...]) -> str:
    if not isinstance(item, dict):
        return "v:" + _compact(item)
    return "k:" + _compact({k: item.get(k, _KEY_DEFAULTS.get(k)) for k in keys})


def _walk(value: Any, path: Path, names: tuple[str, ...], out: dict[Path, Any]) -> None:
    if isinstance(value, dict) and value and not _atomic_map(names):
        for key, child in value.items():
            _walk(child, (*path, f"f:{key}"), (*names, key), out)
        return
    if isinstance(value, list) and names:
        keys = _list_keys(names)
        if keys is not None and all(isinstance(i, dict) for i in value):
            for item in value:
                item_path = (*path, _item_key(item, keys))
                out[item_path] = _ITEM
                for key, child in item.items():
                    _walk(child, (*item_path, f"f:{key}"), (*names, key), out)
            return
        if _is_set(names):
            for item in value:
                out[(*path, "v:" + _compact(item))] = item
            return
    out[path] = value


def flatten(rtype: ResourceType, obj: JsonDict, subresource: str | None = None) -> dict[Path, Any]:
    """Every field path of ``obj`` in the scope of ``subresource``, with its leaf value."""
    out: dict[Path, Any] = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata" and isinstance(value, dict):
            if subresource == "status":
                continue
            meta = {k: v for k, v in value.items() if k not in _SERVER_METADATA}
            if meta:
                _walk(meta, ("f:metadata",), ("metadata",), out)
            continue
        if rtype.status_subresource and (key == "status") != (subresource == "status"):
            continue
        _walk(value, (f"f:{key}",), (key,), out)
    return out


def encode(fields: Iterable[Path]) -> JsonDict:
    """The ``fieldsV1`` tree of a set of paths (``"."`` marks a member path with children)."""
    root: JsonDict = {}
    paths = list(fields)
    for path in paths:
        node = root
        for element in path:
            node = node.setdefault(element, {})
    for path in paths:
        node = root
        for element in path:
            node = node[element]
        if any(k != "." for k in node):
            node["."] = {}
    return root


def decode(tree: Any, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(tree, dict):
        return out
    if prefix and (not tree or "." in tree):
        out.add(prefix)
    for key, child in tree.items():
        if key != ".":
            out |= decode(child, (*prefix, key))
    return out


def path_string(path: Path) -> str:
    """The path as the API server prints it: ``.spec.template.spec.containers[name="app"]``."""
    parts = []
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            parts.append(f".{rest}")
        elif kind == "k":
            key = json.loads(rest)
            parts.append("[" + ",".join(f"{k}={_compact(v)}" for k, v in key.items()) + "]")
        else:
            parts.append(f"[={rest}]")
    return "".join(parts)


# ---------------------------------------------------------------------- managers


class Managers:
    """The managedFields entries of one object, keyed (manager, operation, subresource)."""

    def __init__(self, entries: Any) -> None:
        self.sets: dict[tuple[str, str, str], set[Path]] = {}
        self.meta: dict[tuple[str, str, str], JsonDict] = {}
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or not entry.get("manager"):
                continue
            key = (
                str(entry["manager"]),
                str(entry.get("operation") or UPDATE),
                str(entry.get("subresource") or ""),
            )
            self.sets[key] = decode(entry.get("fieldsV1"))
            self.meta[key] = {k: entry[k] for k in ("apiVersion", "time") if k in entry}
        self.before = {k: set(v) for k, v in self.sets.items()}

    def others(self, key: tuple[str, str, str]) -> Iterable[tuple[tuple[str, str, str], set[Path]]]:
        return ((k, s) for k, s in self.sets.items() if k != key)

    def api_version(self, key: tuple[str, str, str], default: str) -> str:
        return str(self.meta.get(key, {}).get("apiVersion") or default)

    def entries(self, api_version: str, now: str, touched: set[tuple[str, str, str]]) -> list[Any]:
        out = []
        for key, fields in self.sets.items():
            if not fields:
                continue
            manager, operation, subresource = key
            meta = self.meta.get(key, {})
            if key in touched and fields != self.before.get(key):
                meta = {"apiVersion": api_version, "time": now}
            entry: JsonDict = {
                "manager": manager,
                "operation": operation,
                "apiVersion": meta.get("apiVersion", api_version),
                "time": meta.get("time", now),
                "fieldsType": "FieldsV1",
                "fieldsV1": encode(fields),
            }
            if subresource:
                entry["subresource"] = subresource
            out.append(entry)
        return out


def _compare(old: dict[Path, Any], new: dict[Path, Any]) -> tuple[set[Path], set[Path]]:
    """(added or modified, removed) between two flattened objects."""
    changed = {p for p, v in new.items() if p not in old or (v is not _ITEM and old[p] != v)}
    return changed, set(old) - set(new)


def track_update(
    rtype: ResourceType,
    old: JsonDict | None,
    new: JsonDict,
    manager: str,
    subresource: str | None,
    now: str,
) -> list[Any]:
    """The managedFields of ``new`` after an Update by ``manager`` (create when ``old`` is None)."""
    managers = Managers((old or {}).get("metadata", {}).get("managedFields"))
    changed, removed = _compare(
        flatten(rtype, old, subresource) if old else {}, flatten(rtype, new, subresource)
    )
    key = (manager, UPDATE, subresource or "")
    for _, fields in managers.others(key):
        fields -= changed
    for fields in managers.sets.values():
        fields -= removed
    if changed:
        managers.sets.setdefault(key, set()).update(changed)
    return managers.entries(rtype.api_version, now, {key})


# ---------------------------------------------------------------------- apply


def _merge(live: Any, applied: Any, names: tuple[str, ...]) -> Any:
    if isinstance(live, dict) and isinstance(applied, dict) and not _atomic_map(names):
        out = dict(live)
        for key, value in applied.items():
            out[key] = _merge(live.get(key), value, (*names, key)) if key in live else value
        return out
    if isinstance(live, list) and isinstance(applied, list) and names:
        keys = _list_keys(names)
        if keys is not None and all(isinstance(i, dict) for i in (*live, *applied)):
            merged = list(live)
            index = {_item_key(item, keys): i for i, item in enumerate(merged)}
            for item in applied:
                at = index.get(_item_key(item, keys))
                if at is None:
                    merged.append(item)
                else:
                    merged[at] = _merge(merged[at], item, names)
            return merged
        if _is_set(names):
            return [*live, *(v for v in applied if v not in live)]
    return applied


def _remove(obj: Any, path: Path) -> None:
    """Delete the field or list item at ``path`` (silently when it is already gone)."""
    parent, last = obj, path[-1]
    for element in path[:-1]:
        parent = _step(parent, element)
        if parent is None:
            return
    kind, _, rest = last.partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif isinstance(parent, list):
        parent[:] = [i for i in parent if not _is_element(i, last)]


def _is_element(item: Any, element: str) -> bool:
    kind, _, rest = element.partition(":")
    if kind == "v":
        return bool(_compact(item) == rest)
    if not isinstance(item, dict):
        return False
    key = json.loads(rest)
    return all(item.get(k, _KEY_DEFAULTS.get(k)) == v for k, v in key.items())


def _step(node: Any, element: str) -> Any:
    kind, _, rest = element.partition(":")
    if kind == "f":
        return node.get(rest) if isinstance(node, dict) else None
    if isinstance(node, list):
        return next((i for i in node if _is_element(i, element)), None)
    return None


def _printed(key: tuple[str, str, str], api_version: str) -> str:
    """A manager as the API server names it in conflicts (fieldmanager's printManager)."""
    manager, operation, subresource = key
    text = f'"{manager}"'
    if subresource:
        text += f' with subresource "{subresource}"'
    if operation == UPDATE:
        text += f" using {api_version}"
    return text


def conflict_error(conflicts: dict[str, list[Path]], kind: str, name: str, group: str) -> ApiError:
    """409 as the API server words it (k8s.io/apiserver fieldmanager NewConflictError);
    ``conflicts`` maps each printed manager to the paths it owns."""
    flat = [(m, p) for m in sorted(conflicts) for p in sorted(conflicts[m], key=path_string)]
    causes = [
        {"reason": "FieldManagerConflict", "message": f"conflict with {m}", "field": path_string(p)}
        for m, p in flat
    ]
    if len(flat) == 1:
        manager, path = flat[0]
        message = f"Apply failed with 1 conflict: conflict with {manager}: {path_string(path)}"
    else:
        lines = []
        for manager in sorted(conflicts):
            lines.append(f"conflicts with {manager}")
            lines.extend(f"- {path_string(p)}" for m, p in flat if m == manager)
        message = f"Apply failed with {len(flat)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, name=name, group=group, kind=kind, causes=causes)


def apply(
    rtype: ResourceType,
    live: JsonDict | None,
    config: JsonDict,
    manager: str,
    *,
    force: bool,
    subresource: str | None,
    now: str,
) -> JsonDict:
    """The object after ``manager`` applies ``config`` to ``live`` (None: create it), with
    its managedFields; raises the API's 409 on conflicts unless ``force``."""
    if not manager:
        raise bad_request(
            "PATCH, application/apply-patch+yaml: fieldManager must be set for apply requests"
        )
    key = (manager, APPLY, subresource or "")
    base = copy.deepcopy(live) if live is not None else {}
    base.get("metadata", {}).pop("managedFields", None)
    managers = Managers((live or {}).get("metadata", {}).get("managedFields"))
    applied = set(flatten(rtype, config, subresource))
    # Keep the request's identity fields; merge the rest field by field.
    body = {k: v for k, v in config.items() if k != "status" or subresource == "status"}
    merged: JsonDict = _merge(base, copy.deepcopy(body), ())
    previously = managers.sets.get(key, set())
    owned_by_others = set().union(*(s for _, s in managers.others(key)))
    for path in sorted(previously - applied, key=len, reverse=True):
        still_owned = any(p[: len(path)] == path for p in owned_by_others)
        if not still_owned:
            _remove(merged, path)
    changed, removed = _compare(
        flatten(rtype, base, subresource), flatten(rtype, merged, subresource)
    )
    conflicts: dict[str, list[Path]] = {}
    for other, fields in managers.others(key):
        clash = fields & changed & applied
        if clash:
            printed = _printed(other, managers.api_version(other, rtype.api_version))
            conflicts.setdefault(printed, []).extend(clash)
    if conflicts and not force:
        name = str(config.get("metadata", {}).get("name", ""))
        raise conflict_error(conflicts, rtype.plural, name, rtype.group)
    for _, fields in managers.others(key):
        fields -= changed & applied
    for fields in managers.sets.values():
        fields -= removed
    managers.sets[key] = applied
    touched = {key}
    merged.setdefault("metadata", {})["managedFields"] = managers.entries(
        rtype.api_version, now, touched
    )
    return merged
