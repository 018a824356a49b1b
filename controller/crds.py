"""Generate the CustomResourceDefinitions from the pydantic models.

The models are the single source of truth; this module turns their JSON Schema into the
*structural* OpenAPI v3 schema Kubernetes requires: references inlined, ``anyOf`` with
null folded into ``nullable``, constants as enums, no titles, no ``additionalProperties``
beside ``properties``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from controller.core.models import API_GROUP, API_VERSION, ChangeLane, LaneRelease

# `kubectl get changelane-all` lists every changelane object.
CATEGORY = "changelane-all"

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class CrdInfo:
    model: type[BaseModel]
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    scope: str
    printer_columns: tuple[JsonDict, ...]


CRDS: tuple[CrdInfo, ...] = (
    CrdInfo(
        model=ChangeLane,
        kind="ChangeLane",
        plural="changelanes",
        singular="changelane",
        short_names=("cln", "lane"),
        scope="Cluster",
        printer_columns=(
            {"name": "Mode", "type": "string", "jsonPath": ".spec.gates.mode"},
            {"name": "Suspended", "type": "boolean", "jsonPath": ".status.suspended"},
            {
                "name": "Max-Weight",
                "type": "integer",
                "jsonPath": ".spec.strategy.steps[-1:].weight",
            },
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ),
    ),
    CrdInfo(
        model=LaneRelease,
        kind="LaneRelease",
        plural="lanereleases",
        singular="lanerelease",
        short_names=("lrel",),
        scope="Namespaced",
        printer_columns=(
            {"name": "Lane", "type": "string", "jsonPath": ".spec.lane"},
            {"name": "Target", "type": "string", "jsonPath": ".spec.target.name"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Weight", "type": "integer", "jsonPath": ".status.weight"},
            {"name": "Agent", "type": "string", "jsonPath": ".spec.provenance.agent"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ),
    ),
)

_DROP_KEYS = {"title", "examples", "example", "$defs"}


# Complexity D by design: one branch per JSON-Schema keyword pydantic emits, each a small
# rewrite; split up, the rules for one node would be read in several places.
def _structural(node: Any, defs: JsonDict) -> Any:
    """Rewrite one pydantic JSON-Schema node into a structural OpenAPI v3 node."""
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        nullable = len(options) != len(node["anyOf"])
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) != 1:
            raise ValueError(f"cannot express a union of {options} in a structural schema")
        folded: JsonDict = _structural({**options[0], **rest}, defs)
        if nullable:
            folded["nullable"] = True
            if folded.get("default") is None:
                folded.pop("default", None)
        return folded
    out: JsonDict = {}
    for key, value in node.items():
        if key in _DROP_KEYS:
            continue
        if key == "const":
            out["enum"] = [value]
            out.setdefault("type", "string")
        elif key == "properties":
            out["properties"] = {k: _structural(v, defs) for k, v in value.items()}
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out["additionalProperties"] = _structural(value, defs)
        elif key == "default" and isinstance(value, dict | list) and value:
            continue  # non-empty object defaults are the models' job, not the API server's
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema's numeric form; a CRD (OpenAPI 3.0) says minimum + a boolean, and
            # the API server refuses a number here.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = _structural(value, defs)
    if out.get("type") == "object" and "properties" in out:
        out.pop("additionalProperties", None)
    return out


def openapi_schema(model: type[BaseModel]) -> JsonDict:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    schema: JsonDict = _structural(raw, defs)
    # metadata is validated by the API server itself; a CRD may only say it is an object.
    schema["properties"]["metadata"] = {"type": "object"}
    schema["properties"]["apiVersion"] = {"type": "string"}
    schema["properties"]["kind"] = {"type": "string"}
    schema["required"] = [r for r in schema.get("required", []) if r != "metadata"]
    schema.pop("description", None)
    return schema


def crd_manifest(info: CrdInfo) -> JsonDict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{API_GROUP}",
            "labels": {"app.kubernetes.io/part-of": "changelane"},
        },
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                # Not "changelane": kubectl expands a category before a singular name, so
                # `kubectl get changelane NAME` would list both kinds and fail.
                "categories": [CATEGORY],
            },
            "scope": info.scope,
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(info.printer_columns),
                    "schema": {"openAPIV3Schema": openapi_schema(info.model)},
                }
            ],
        },
    }


def file_name(info: CrdInfo) -> str:
    return f"{API_GROUP}_{info.plural}.yaml"


HEADER = "# Generated by `changelane crds` from controller/core/models; do not edit by hand.\n"


def render(info: CrdInfo) -> str:
    return HEADER + yaml.safe_dump(crd_manifest(info), sort_keys=False, width=100)


def render_all() -> str:
    return "---\n".join(render(info) for info in CRDS)


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for info in CRDS:
        path = directory / file_name(info)
        path.write_text(render(info), encoding="utf-8")
        written.append(path)
    return written


def check(directory: Path) -> list[str]:
    """Unified diffs between the checked-in CRDs and what the models generate."""
    diffs: list[str] = []
    for info in CRDS:
        path = directory / file_name(info)
        expected = render(info)
        actual = path.read_text(encoding="utf-8") if path.exists() else ""
        if actual != expected:
            diffs.append(
                "".join(
                    difflib.unified_diff(
                        actual.splitlines(keepends=True),
                        expected.splitlines(keepends=True),
                        fromfile=f"{path} (checked in)",
                        tofile=f"{path} (generated from the models)",
                    )
                )
                or f"{path}: missing\n"
            )
    return diffs
