"""Lane declarations: the shipped lanes are valid, bad ones are reported precisely."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from controller import crds
from controller.cli.main import cli
from controller.lanefiles import load_lanes
from controller.sim.schemas import to_json_schema

REPO = Path(__file__).resolve().parents[2]
LANE_FILES = sorted((REPO / "lanes").glob("*.yaml"))


def _crd_schema(kind: str) -> dict[str, object]:
    info = next(i for i in crds.CRDS if i.kind == kind)
    schema = crds.crd_manifest(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    # OpenAPI 3.0's boolean exclusiveMinimum/Maximum -> JSON Schema's numbers first
    return _to_jsonschema(to_json_schema(schema))


def _to_jsonschema(node: object) -> dict[str, object]:
    """OpenAPI ``nullable`` -> JSON Schema, and forbid unknown fields as the API would."""
    if isinstance(node, list):
        return [_to_jsonschema(n) for n in node]  # type: ignore[return-value]
    if not isinstance(node, dict):
        return node  # type: ignore[return-value]
    out = {k: _to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in out and out.get("type") == "object":
        out["additionalProperties"] = False
    return out


def test_there_are_at_least_three_lanes() -> None:
    assert len(LANE_FILES) >= 3


@pytest.mark.parametrize("path", LANE_FILES, ids=lambda p: p.name)
def test_shipped_lane_is_valid_for_the_model_and_the_crd(path: Path) -> None:
    lanes, problems = load_lanes([path])
    assert problems == []
    assert len(lanes) == 1
    for doc in yaml.safe_load_all(path.read_text()):
        jsonschema.validate(doc, _crd_schema("ChangeLane"))


def test_cli_validate_shipped_lanes_exits_zero() -> None:
    result = CliRunner().invoke(cli, ["lanes", "validate", str(REPO / "lanes")])
    assert result.exit_code == 0, result.output
    assert "docs-site" in result.output


def _bad_copy(tmp_path: Path) -> Path:
    text = (REPO / "lanes" / "docs-site.yaml").read_text()
    text = text.replace("weight: 50, minDuration: 2m", "weight: -50, minDuration: 2m")
    text = text.replace("  description:", "  bogusField: true\n  description:", 1)
    bad = tmp_path / "bad-lane.yaml"
    bad.write_text(text)
    return bad


def test_negative_weight_and_unknown_field_are_named(tmp_path: Path) -> None:
    bad = _bad_copy(tmp_path)
    result = CliRunner().invoke(cli, ["lanes", "validate", str(bad)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(str(bad) in ln and "spec.bogusField" in ln and "unknown field" in ln for ln in lines)
    assert any(
        str(bad) in ln and "spec.strategy.steps[1].weight" in ln and "greater than" in ln
        for ln in lines
    )
    assert all("document 0" in ln for ln in lines if str(bad) in ln)


def test_one_bad_file_does_not_stop_the_others(tmp_path: Path) -> None:
    bad = _bad_copy(tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    lanes, problems = load_lanes([bad, broken, REPO / "lanes"])
    assert {p.file for p in problems} == {str(bad), str(broken)}
    assert "YAML does not parse" in next(p for p in problems if p.file == str(broken)).expected
    assert len(lanes) == len(LANE_FILES)


def _lane_doc() -> dict[str, object]:
    doc = yaml.safe_load((REPO / "lanes" / "docs-site.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def _problems_for(tmp_path: Path, doc: object) -> list[str]:
    path = tmp_path / "lane.yaml"
    path.write_text(yaml.safe_dump_all([_lane_doc(), doc]))
    _, problems = load_lanes([path])
    assert all(p.document == 1 for p in problems), problems
    return [f"{p.field}: {p.expected}" for p in problems]


def test_missing_selector(tmp_path: Path) -> None:
    doc = _lane_doc()
    doc["metadata"] = {"name": "other"}
    del doc["spec"]["selector"]  # type: ignore[index, attr-defined]
    assert _problems_for(tmp_path, doc) == ["spec.selector: required field is missing"]


def test_empty_label_selector_is_refused(tmp_path: Path) -> None:
    doc = _lane_doc()
    doc["metadata"] = {"name": "other"}
    doc["spec"]["selector"] = {"namespaces": ["docs"]}  # type: ignore[index]
    (problem,) = _problems_for(tmp_path, doc)
    assert problem.startswith("spec.selector:") and "empty selector" in problem


def test_weights_must_increase(tmp_path: Path) -> None:
    doc = _lane_doc()
    doc["metadata"] = {"name": "other"}
    doc["spec"]["strategy"]["steps"] = [{"weight": 50}, {"weight": 20}, {"weight": 100}]  # type: ignore[index]
    (problem,) = _problems_for(tmp_path, doc)
    assert problem.startswith("spec.strategy:") and "steps[1].weight 20 must be greater" in problem


def test_unknown_template_parameter(tmp_path: Path) -> None:
    doc = _lane_doc()
    doc["metadata"] = {"name": "other"}
    doc["spec"]["analysis"]["checks"][1]["query"] = 'up{job="{{ jobname }}"}'  # type: ignore[index]
    (problem,) = _problems_for(tmp_path, doc)
    assert problem.startswith("spec.analysis.checks[1]:")
    assert "unknown template parameter {{ jobname }}" in problem


def test_unquoted_label_parameter_is_refused(tmp_path: Path) -> None:
    doc = _lane_doc()
    doc["metadata"] = {"name": "other"}
    doc["spec"]["analysis"]["checks"][1]["query"] = "up{namespace={{ namespace }}}"  # type: ignore[index]
    (problem,) = _problems_for(tmp_path, doc)
    assert "must be inside a double-quoted label value" in problem


def test_duplicate_lane_name_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump_all([_lane_doc(), _lane_doc()]))
    lanes, problems = load_lanes([path])
    assert len(lanes) == 1
    assert [p.field for p in problems] == ["metadata.name"]
