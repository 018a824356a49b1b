"""CRD validation rules: in the generated CRD, enforced by the simulated cluster through
their Python twins, and agreeing with the pydantic validators they mirror."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from controller import crds
from controller.core.models import ChangeLane
from controller.core.models.validation_rules import RULES
from controller.sim.schemas import product_crd_types

REPO = Path(__file__).resolve().parents[2]
DOCS_SITE = yaml.safe_load((REPO / "lanes" / "docs-site.yaml").read_text())


def _lane_schema() -> Any:
    lane_type = next(t for t in product_crd_types() if t.kind == "ChangeLane")
    return lane_type.schema


def _rules_in(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        found += [r["rule"] for r in node.get("x-kubernetes-validations", [])]
        for value in node.values():
            found += _rules_in(value)
    elif isinstance(node, list):
        for value in node:
            found += _rules_in(value)
    return found


def test_every_rule_is_in_the_generated_crd_and_has_a_twin() -> None:
    in_crd = _rules_in(crds.openapi_schema(ChangeLane))
    assert sorted(in_crd) == sorted(RULES)


def _mutated(change: str) -> dict[str, Any]:
    doc = copy.deepcopy(DOCS_SITE)
    spec = doc["spec"]
    if change == "decreasing":
        spec["strategy"]["steps"] = [{"weight": 50}, {"weight": 10}, {"weight": 100}]
    elif change == "equal":
        spec["strategy"]["steps"] = [{"weight": 50}, {"weight": 50}, {"weight": 100}]
    elif change == "last-unanalysed":
        spec["strategy"]["steps"][-1]["analysis"] = False
    elif change == "flag-only":
        spec["strategy"]["flagOnly"] = True
    elif change == "gateway":
        spec["strategy"]["traffic"] = {"mode": "gatewayAPI"}
    elif change == "window":
        spec["gates"]["changeWindows"] = [{"days": ["Mon"], "start": "10:00", "end": "09:00"}]
    elif change == "duplicate-check":
        spec["analysis"]["checks"].append(copy.deepcopy(spec["analysis"]["checks"][0]))
    elif change == "empty-selector":
        spec["selector"]["matchLabels"] = {}
    elif change == "exists-with-values":
        spec["selector"]["matchExpressions"] = [
            {"key": "tier", "operator": "Exists", "values": ["x"]}
        ]
    return doc


CHANGES = [
    "decreasing",
    "equal",
    "last-unanalysed",
    "flag-only",
    "gateway",
    "window",
    "duplicate-check",
    "empty-selector",
    "exists-with-values",
]


@pytest.mark.parametrize("change", CHANGES)
def test_the_simulated_api_refuses_what_the_models_refuse(change: str) -> None:
    doc = _mutated(change)
    with pytest.raises(ValidationError):
        ChangeLane.model_validate(doc)
    schema = _lane_schema()
    schema.apply_defaults(doc)
    errors = schema.errors(doc)
    assert errors, f"the simulated API server would accept {change}"
    assert all(message.startswith('Invalid value: "object": ') for _, message in errors)


def test_valid_lanes_pass_every_rule() -> None:
    schema = _lane_schema()
    for path in sorted((REPO / "lanes").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        schema.apply_defaults(doc)
        assert schema.errors(doc) == [], path


def test_the_weights_rule_names_the_field() -> None:
    schema = _lane_schema()
    doc = _mutated("decreasing")
    schema.apply_defaults(doc)
    assert schema.errors(doc) == [
        (
            "spec.strategy",
            'Invalid value: "object": steps[].weight must increase from one step to the next',
        )
    ]
