"""The schemas behind ``kubectl explain``: OpenAPI component schemas for every served kind.

Built-in kinds take theirs from the official ``kubernetes`` client's models, which carry the
API's own field descriptions (pydantic models: ``model_json_schema``); CRD kinds take their
``openAPIV3Schema``. Each kind's top schema carries ``x-kubernetes-group-version-kind``,
which is how kubectl finds it; references point into the same document, as the API
server's do (``#/components/schemas/...`` in v3, ``#/definitions/...`` in v2).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from controller.sim.resources import ResourceType

JsonDict = dict[str, Any]

_VERSION_PREFIX = re.compile(r"^(CoreV1|EventsV1|StorageV1|DiscoveryV1|V\d+(?:alpha\d+|beta\d+)?)")
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _model_of(rtype: ResourceType) -> Any:
    """The client's model class for a built-in kind, if it has one."""
    # Imported here: the client's models are slow to import and only kubectl explain needs them.
    from controller.adapters.kube.models import client_model

    return client_model(rtype.group, rtype.version, rtype.kind)


def _component(def_name: str) -> str:
    if def_name == "V1ObjectMeta":
        return OBJECT_META
    return "io.k8s.api." + _VERSION_PREFIX.sub("", def_name)


def _convert(node: Any, ref_prefix: str) -> Any:
    """A pydantic JSON schema node as an OpenAPI schema node."""
    if isinstance(node, list):
        return [_convert(n, ref_prefix) for n in node]
    if not isinstance(node, dict):
        return node
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            return _convert({**options[0], **rest}, ref_prefix)
        return _convert({**rest, "x-kubernetes-int-or-string": True}, ref_prefix)
    out: JsonDict = {}
    for key, value in node.items():
        if key in ("title", "$defs") or (key == "default" and value is None):
            continue
        if key == "$ref":
            target = ref_prefix + _component(str(value).rsplit("/", 1)[-1])
            # A reference with siblings (a description) is wrapped, as the API server does.
            siblings = {k: v for k, v in node.items() if k not in ("$ref", "title", "default")}
            if siblings:
                return {**_convert(siblings, ref_prefix), "allOf": [{"$ref": target}]}
            return {"$ref": target}
        if key in ("properties", "patternProperties"):
            out[key] = {k: _convert(v, ref_prefix) for k, v in value.items()}
        else:
            out[key] = _convert(value, ref_prefix)
    return out


def _gvk(rtype: ResourceType) -> list[JsonDict]:
    return [{"group": rtype.group, "version": rtype.version, "kind": rtype.kind}]


@cache
def _meta_schemas(ref_prefix: str) -> dict[str, JsonDict]:
    from controller.adapters.kube.models import object_meta_model

    raw = object_meta_model().model_json_schema(by_alias=True)
    out = {_component(n): _convert(d, ref_prefix) for n, d in (raw.get("$defs") or {}).items()}
    out[OBJECT_META] = _convert({k: v for k, v in raw.items() if k != "$defs"}, ref_prefix)
    return out


def _builtin(rtype: ResourceType, ref_prefix: str) -> dict[str, JsonDict]:
    model = _model_of(rtype)
    if model is None:
        return {}
    raw = model.model_json_schema(by_alias=True)
    out = {_component(n): _convert(d, ref_prefix) for n, d in (raw.get("$defs") or {}).items()}
    top = _convert({k: v for k, v in raw.items() if k != "$defs"}, ref_prefix)
    top["x-kubernetes-group-version-kind"] = _gvk(rtype)
    out[_component(model.__name__)] = top
    return out


def _custom(rtype: ResourceType, ref_prefix: str) -> dict[str, JsonDict]:
    if rtype.schema is not None:
        top: JsonDict = dict(rtype.schema.openapi)
    else:
        top = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    properties = dict(top.get("properties") or {})
    properties["metadata"] = {
        "description": "Standard object's metadata.",
        "allOf": [{"$ref": ref_prefix + OBJECT_META}],
    }
    top = {**top, "properties": properties, "x-kubernetes-group-version-kind": _gvk(rtype)}
    group = ".".join(reversed(rtype.group.split("."))) if rtype.group else "core"
    return {f"{group}.{rtype.version}.{rtype.kind}": top, **_meta_schemas(ref_prefix)}


def schemas(types: list[ResourceType], ref_prefix: str) -> dict[str, JsonDict]:
    """Component schemas of ``types`` (and everything they reference)."""
    out: dict[str, JsonDict] = {}
    for rtype in types:
        found = {} if rtype.custom or rtype.schema is not None else _builtin(rtype, ref_prefix)
        out.update(found or _custom(rtype, ref_prefix))
    return out
