"""The three patch flavours the apiserver accepts: JSON merge, JSON (RFC 6902), strategic merge.

Strategic merge patch follows the built-in types' ``patchMergeKey`` tags for the lists the
controller touches: containers/env/volumes by name, container ports by containerPort,
service ports by port, conditions by type; ``$patch: delete|replace`` and
``$setElementOrder``/``$retainKeys`` directives are understood.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from controller.sim.errors import ApiError, bad_request, unprocessable

JsonDict = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: JsonDict = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: JsonDict, operations: Any) -> JsonDict:
    """RFC 6902 including ``test``; a patch that does not apply is a 422 like the apiserver's."""
    if not isinstance(operations, list):
        raise bad_request(
            "json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"
        )
    try:
        patch = jsonpatch.JsonPatch(operations)
        result = patch.apply(copy.deepcopy(target))
    except jsonpatch.JsonPatchTestFailed as exc:
        raise unprocessable(
            f"the server rejected our request due to an error in our request: {exc}"
        ) from exc
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise unprocessable(
            f"the server rejected our request due to an error in our request: {exc}"
        ) from exc
    except (TypeError, KeyError, ValueError) as exc:
        raise bad_request(f"invalid JSON patch: {exc}") from exc
    if not isinstance(result, dict):
        raise unprocessable("the patched document is not a JSON object")
    return result


# field name -> merge key; ports depends on where the list sits
_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
_SET_LISTS = frozenset({"finalizers"})


def _merge_key(path: tuple[str, ...], field: str) -> str | None:
    if field == "ports":
        parent = path[-1] if path else ""
        if parent in {"containers", "initContainers", "ephemeralContainers"}:
            return "containerPort"
        return "port" if parent == "spec" else None
    return _MERGE_KEYS.get(field)


def strategic_merge_patch(target: JsonDict, patch: Any) -> JsonDict:
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    result = _smp_map(target, patch, ())
    if not isinstance(result, dict):
        raise unprocessable("the patched document is not a JSON object")
    return result


# Complexity D by design: each branch is one of the strategic-merge-patch directives
# ($patch, $retainKeys, $deleteFromPrimitiveList, ...) as the apiserver applies them.
def _smp_map(target: Any, patch: JsonDict, path: tuple[str, ...]) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    body = {k: v for k, v in patch.items() if not _is_directive(k)}
    if directive == "replace":
        return copy.deepcopy(body)
    if directive is not None:
        raise bad_request(f"Unknown patch type: {directive}")
    result: JsonDict = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    for key, raw in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            drop = set(map(str, raw or []))
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if str(v) not in drop]
    for key, value in body.items():
        if value is None:
            result.pop(key, None)
            continue
        current = result.get(key)
        if isinstance(value, dict):
            merged = _smp_map(current, value, (*path, key))
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(current, value, path, key)
        else:
            result[key] = copy.deepcopy(value)
    return result


# Complexity D by design: list merge by key with the directives ($patch replace/delete,
# primitive lists, $setElementOrder) in the order the apiserver applies them.
def _smp_list(current: Any, patch: list[Any], path: tuple[str, ...], field: str) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    existing: list[Any] = list(current) if isinstance(current, list) else []
    if field in _SET_LISTS:
        merged = list(existing)
        for item in patch:
            if item not in merged:
                merged.append(item)
        return merged
    key = _merge_key(path, field)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return [copy.deepcopy(i) for i in patch]
    result = list(existing)
    for item in patch:
        if key not in item:
            raise ApiError(
                400,
                "BadRequest",
                f"map: {item} does not contain declared merge key: {key}",
            )
        index = next(
            (i for i, e in enumerate(result) if isinstance(e, dict) and e.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
            continue
        if index is None:
            result.append(_smp_map({}, item, (*path, field)))
        else:
            result[index] = _smp_map(result[index], item, (*path, field))
    return result


def _is_directive(key: str) -> bool:
    return key.startswith("$")
