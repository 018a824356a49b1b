"""Render the chart offline with the real Helm SDK and check what comes out.

Shared by the chart tests: rendering, splitting into objects, and validating every object
against the schema that really applies to it (Kubernetes' own for built-in kinds, the
generated CRD for ChangeLanes, the Prometheus Operator's shape for its kinds).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from controller import crds
from controller.core.models import ChangeLane
from controller.lanefiles import field_path
from controller.sim.schemas import to_json_schema

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "changelane"
RELEASE = "cl"
NAMESPACE = "changelane-system"
# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest schemas
# kubernetes-validate ships: a manifest must be valid on both.
KUBE_VERSIONS = ("1.27.0", "1.37.0")


@dataclass(frozen=True)
class Rendered:
    template: str
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


def render(chart: helm_python.Chart, values: dict[str, Any] | None = None) -> list[Rendered]:
    """Every object the chart renders for ``values`` (NOTES.txt and empty files left out)."""
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    out: list[Rendered] = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.append(Rendered(template, doc))
    return out


def only(objs: list[Rendered], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [r.obj for r in objs if r.kind == kind and (name is None or r.name == name)]
    assert len(found) == 1, f"expected exactly one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(objs: list[Rendered]) -> list[str]:
    return sorted(r.kind for r in objs)


def _crd_schema(kind: str) -> dict[str, Any]:
    info = next(i for i in crds.CRDS if i.kind == kind)
    schema: dict[str, Any] = crds.openapi_schema(info.model)
    return schema


def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI v3 (``nullable``, boolean ``exclusiveMinimum``) as JSON Schema 2020-12, the
    way the simulated API server reads a CRD's schema."""
    return to_json_schema(node)


def lane_problems(obj: dict[str, Any]) -> list[str]:
    """Problems of one rendered ChangeLane, each naming the lane and the field.

    Checked twice: against the generated CRD schema (what the API server enforces) and the
    pydantic model (what the controller enforces: unknown fields, cross-field rules).
    """
    lane = obj.get("metadata", {}).get("name", "?")
    problems: list[str] = []
    validator = jsonschema.Draft202012Validator(_openapi_to_jsonschema(_crd_schema("ChangeLane")))
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        where = field_path(error.absolute_path) or "(root)"
        problems.append(f"lane {lane}: CRD schema: {where}: {error.message}")
    try:
        ChangeLane.model_validate(obj)
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(f"lane {lane}: model: {field_path(err['loc'])}: {err['msg']}")
    return problems


def _monitoring_problems(obj: dict[str, Any]) -> list[str]:
    """Structural checks of the Prometheus Operator kinds (no schema ships for them)."""
    kind, spec = obj["kind"], obj.get("spec", {})
    problems: list[str] = []
    if obj.get("apiVersion") != "monitoring.coreos.com/v1":
        problems.append(f"{kind}: apiVersion {obj.get('apiVersion')}")
    if kind == "ServiceMonitor":
        if not spec.get("selector", {}).get("matchLabels"):
            problems.append("ServiceMonitor: spec.selector.matchLabels is empty")
        for i, endpoint in enumerate(spec.get("endpoints", [])):
            extra = set(endpoint) - {"port", "path", "interval", "scrapeTimeout"}
            if extra or not endpoint.get("port"):
                problems.append(f"ServiceMonitor: endpoints[{i}] is {endpoint}")
        if not spec.get("endpoints"):
            problems.append("ServiceMonitor: no endpoints")
    elif kind == "PrometheusRule":
        if set(spec) != {"groups"} or not spec["groups"]:
            problems.append("PrometheusRule: spec must be exactly a non-empty groups list")
        for group in spec.get("groups", []):
            for rule in group.get("rules", []):
                if not rule.get("expr") or not (rule.get("alert") or rule.get("record")):
                    problems.append(f"PrometheusRule: rule without expr/alert: {rule}")
    return problems


def object_problems(obj: dict[str, Any]) -> list[str]:
    """Everything wrong with one rendered object, against the schema that applies to it."""
    kind = obj.get("kind")
    if kind == "ChangeLane":
        return lane_problems(obj)
    if kind in ("ServiceMonitor", "PrometheusRule"):
        return _monitoring_problems(obj)
    problems: list[str] = []
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(
                f"{kind}/{obj['metadata']['name']} on {version}: {where}: {exc.message}"
            )
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{kind}: no Kubernetes schema: {exc.message}")
    return problems


def iter_containers(deployment: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pod = deployment["spec"]["template"]["spec"]
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def require_tool(name: str) -> str:
    """The path of a Prometheus tool; skip when absent locally, fail when CI requires it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package prometheus; .ci/run installs it)"
        if os.environ.get("CHANGELANE_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def example_lanes() -> dict[str, Any]:
    """The example lanes of lanes/, in the chart's values shape (name -> spec)."""
    lanes: dict[str, Any] = {}
    for path in sorted((REPO / "lanes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            lanes[doc["metadata"]["name"]] = doc["spec"]
    return lanes
