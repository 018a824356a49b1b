"""OpenAPI for kubectl: v3 per group-version, and the v2 document.

Each group-version's PATCH/PUT paths, tagged with their GroupVersionKind and the
``fieldValidation`` query parameter, so kubectl hands validation to the server (which checks
CRD schemas) instead of downloading schemas to check locally; and the component schemas
``kubectl explain`` renders (controller/sim/openapi_schemas.py).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from controller.sim.openapi_schemas import schemas
from controller.sim.resources import Registry, ResourceType

JsonDict = dict[str, Any]

_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _item_path(rtype: ResourceType) -> str:
    prefix = "/" + _gv_path(rtype.group, rtype.version)
    if rtype.namespaced:
        return f"{prefix}/namespaces/{{namespace}}/{rtype.plural}/{{name}}"
    return f"{prefix}/{rtype.plural}/{{name}}"


_CACHE: dict[tuple[Any, ...], JsonDict] = {}


def group_version_document(registry: Registry, group: str, version: str) -> JsonDict | None:
    types = [t for t in registry.types if t.group == group and t.version == version]
    if not types:
        return None
    key = ("v3", group, version, tuple(id(t) for t in types))
    if key not in _CACHE:
        _CACHE[key] = _group_version_document(types)
    return _CACHE[key]


def _group_version_document(types: list[ResourceType]) -> JsonDict:
    paths: JsonDict = {}
    for rtype in types:
        gvk = {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
        params = [
            {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for name in _QUERY_PARAMS
        ]
        paths[_item_path(rtype)] = {
            "patch": {
                "operationId": f"patch{rtype.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            },
            "put": {
                "operationId": f"replace{rtype.kind}",
                "x-kubernetes-action": "put",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            },
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "changelane simulated cluster", "version": "v1.31.0"},
        "paths": paths,
        "components": {"schemas": schemas(types, "#/components/schemas/")},
    }


def swagger_document(registry: Registry) -> JsonDict:
    """``/openapi/v2``: every kind's schema under ``definitions`` (JSON, as a client that
    asks for application/json gets it from the API server)."""
    key = ("v2", tuple(id(t) for t in registry.types))
    if key not in _CACHE:
        _CACHE[key] = {
            "swagger": "2.0",
            "info": {"title": "changelane simulated cluster", "version": "v1.31.0"},
            "paths": {},
            "definitions": schemas(list(registry.types), "#/definitions/"),
        }
    return _CACHE[key]


def root_document(registry: Registry) -> JsonDict:
    paths: JsonDict = {}
    for group, versions in registry.groups().items():
        for version in versions:
            doc = group_version_document(registry, group, version)
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]
            path = _gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.upper()}"}
    return {"paths": paths}
