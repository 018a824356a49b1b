"""CRD loading and validation: openAPIV3Schema -> unknown-field check, defaults, jsonschema.

The apiserver treats a CRD schema in three passes, and so do we: unknown fields are found
(and refused when validation is strict), ``default`` values are filled in, then the object is
validated. OpenAPI's ``nullable`` is not JSON Schema, so it becomes ``type: [T, "null"]``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from controller.core.models.validation_rules import RULES
from controller.sim.resources import PrinterColumn, ResourceType

JsonDict = dict[str, Any]

_OPENAPI_ONLY = ("nullable", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string")


def to_json_schema(node: Any) -> Any:
    """Translate an OpenAPI v3 (structural) schema node to JSON Schema draft 2020-12."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: JsonDict = {}
    for key, value in node.items():
        if key in _OPENAPI_ONLY:
            continue
        if key in {"properties", "patternProperties"}:
            out[key] = {k: to_json_schema(v) for k, v in value.items()}
        elif key in {"items", "additionalProperties", "not"} and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in {"anyOf", "oneOf", "allOf"}:
            out[key] = [to_json_schema(v) for v in value]
        elif key in {"exclusiveMinimum", "exclusiveMaximum"} and isinstance(value, bool):
            continue  # OpenAPI 3.0's flag on minimum/maximum; translated below
        else:
            out[key] = value
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if node.get(flag) is True and bound in out:
            out[flag] = out.pop(bound)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def unknown_fields(obj: Any, schema: JsonDict, path: str = "") -> list[str]:
    """Paths of fields the schema does not declare (what the apiserver would prune)."""
    found: list[str] = []
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return found
    if isinstance(obj, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None and extra is None:
            return found
        for key, value in obj.items():
            child = f"{path}.{key}" if path else key
            if props is not None and key in props:
                found.extend(unknown_fields(value, props[key], child))
            elif isinstance(extra, dict):
                found.extend(unknown_fields(value, extra, child))
            elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                continue
            else:
                found.append(child)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            found.extend(unknown_fields(item, schema["items"], f"{path}[{i}]"))
    return found


def prune(obj: Any, schema: JsonDict) -> Any:
    """The object without undeclared fields (fieldValidation=Ignore/Warn semantics)."""
    if isinstance(obj, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if (props is None and extra is None) or (
            schema.get("x-kubernetes-preserve-unknown-fields") and props is None
        ):
            return obj
        out: JsonDict = {}
        for key, value in obj.items():
            if props is not None and key in props:
                out[key] = prune(value, props[key])
            elif isinstance(extra, dict):
                out[key] = prune(value, extra)
            elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                out[key] = value
        return out
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"]) for item in obj]
    return obj


def apply_defaults(obj: Any, schema: JsonDict) -> None:
    """Fill ``default`` values of absent properties in place, as structural defaulting does."""
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                apply_defaults(obj[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, value in obj.items():
                if key not in props:
                    apply_defaults(value, extra)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            apply_defaults(item, schema["items"])


def _json_path(error: jsonschema.ValidationError) -> str:
    parts: list[str] = []
    for p in error.absolute_path:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


@dataclass(frozen=True)
class CrdSchema:
    """A CRD version's schema, ready to check objects with."""

    openapi: JsonDict
    validator: jsonschema.Draft202012Validator

    @classmethod
    def from_openapi(cls, openapi: JsonDict) -> CrdSchema:
        # metadata is validated by the apiserver's own rules, never by the CRD schema
        body = {k: v for k, v in to_json_schema(openapi).items()}
        props = dict(body.get("properties") or {})
        props.pop("metadata", None)
        body["properties"] = props
        return cls(openapi=openapi, validator=jsonschema.Draft202012Validator(body))

    def unknown_fields(self, obj: JsonDict) -> list[str]:
        top = {k: v for k, v in obj.items() if k not in {"apiVersion", "kind", "metadata"}}
        return unknown_fields(top, self.openapi)

    def prune(self, obj: JsonDict) -> JsonDict:
        kept = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
        rest = {k: v for k, v in obj.items() if k not in kept}
        pruned = prune(rest, self.openapi)
        return {**kept, **pruned}

    def apply_defaults(self, obj: JsonDict) -> None:
        apply_defaults({k: v for k, v in obj.items() if k != "metadata"}, self.openapi)
        for key, sub in (self.openapi.get("properties") or {}).items():
            if key == "metadata":
                continue
            if key in obj:
                apply_defaults(obj[key], sub)
            elif "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])

    def errors(self, obj: JsonDict) -> list[tuple[str, str]]:
        """(field path, message) for every schema violation, in the apiserver's wording."""
        out: list[tuple[str, str]] = []
        for err in sorted(self.validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
            path = _json_path(err)
            if err.validator == "required":
                missing = str(err.message).split("'")[1] if "'" in err.message else ""
                field = f"{path}.{missing}" if path else missing
                out.append((field, "Required value"))
            elif err.validator == "pattern":
                out.append(
                    (
                        path,
                        f'Invalid value: "{err.instance}": {path} in body should match '
                        f"'{err.validator_value}'",
                    )
                )
            elif err.validator == "enum":
                allowed = ", ".join(f'"{v}"' for v in err.validator_value if v is not None)
                out.append(
                    (path, f'Unsupported value: "{err.instance}": supported values: {allowed}')
                )
            elif err.validator == "type":
                out.append(
                    (
                        path,
                        f'Invalid value: "{_short(err.instance)}": {path} in body must be '
                        f'of type {_type_name(err.validator_value)}: "{_kind_of(err.instance)}"',
                    )
                )
            else:
                out.append((path, f"Invalid value: {_short(err.instance)}: {err.message}"))
        if not out:  # as the apiserver: validation rules run on a schema-valid object
            top = {k: v for k, v in obj.items() if k not in {"apiVersion", "kind", "metadata"}}
            out += rule_errors(top, self.openapi)
        return out


def rule_errors(obj: Any, schema: JsonDict, path: str = "") -> list[tuple[str, str]]:
    """``x-kubernetes-validations`` failures, evaluated with each rule's Python twin
    (:mod:`controller.core.models.validation_rules`); a rule without a twin is not
    enforced here (there is no CEL interpreter in the simulated cluster)."""
    out: list[tuple[str, str]] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        known = RULES.get(str(rule.get("rule")))
        if known is not None and isinstance(obj, dict) and not known.twin(obj):
            out.append((path, f'Invalid value: "object": {rule.get("message") or rule["rule"]}'))
    if isinstance(obj, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in obj:
                out += rule_errors(obj[key], sub, f"{path}.{key}" if path else key)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(obj):
            out += rule_errors(item, schema["items"], f"{path}[{index}]")
    return out


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return next((str(v) for v in value if v != "null"), "null")
    return str(value)


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number" if isinstance(value, float) else "integer"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def types_from_crd(crd: JsonDict) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition."""
    spec = crd["spec"]
    names = spec["names"]
    out: list[ResourceType] = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        openapi = (version.get("schema") or {}).get("openAPIV3Schema")
        columns = tuple(
            PrinterColumn(
                name=c["name"],
                type=c.get("type", "string"),
                json_path=c["jsonPath"],
                description=c.get("description", ""),
                priority=int(c.get("priority", 0)),
                format=c.get("format", ""),
            )
            for c in version.get("additionalPrinterColumns") or []
        )
        out.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular", names["kind"].lower()),
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in (version.get("subresources") or {}),
                scale_subresource="scale" in (version.get("subresources") or {}),
                tracks_generation=True,
                custom=True,
                schema=CrdSchema.from_openapi(openapi) if openapi else None,
                printer_columns=columns
                or (PrinterColumn("Age", "date", ".metadata.creationTimestamp"),),
            )
        )
    return out


def load_crd_files(paths: Iterable[Path]) -> list[ResourceType]:
    """Resource types from CRD YAML files (each may hold several documents)."""
    out: list[ResourceType] = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                out.extend(types_from_crd(doc))
    return out


def default_crd_dir() -> Path | None:
    """``charts/changelane/crds`` of this checkout, when present."""
    candidate = Path(__file__).resolve().parents[2] / "charts" / "changelane" / "crds"
    return candidate if candidate.is_dir() else None


def product_crd_types(crd_dir: Path | None = None) -> list[ResourceType]:
    """changelane's own CRDs: from ``crd_dir`` (default: the chart's generated files), or,
    in an installed package without the chart, generated from the models they come from."""
    directory = crd_dir or default_crd_dir()
    if directory is not None:
        return load_crd_files(sorted(directory.glob("*.yaml")))
    from controller.crds import CRDS, crd_manifest

    return [t for info in CRDS for t in types_from_crd(crd_manifest(info))]
