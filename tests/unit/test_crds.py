"""The CRDs are generated from the models, structural, and checked in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from controller import crds
from controller.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "charts" / "changelane" / "crds"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, value in node.items():
            out.extend(_walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_walk(value, f"{path}[{i}]"))
    return out


def test_checked_in_crds_match_models() -> None:
    assert crds.check(CRD_DIR) == []


def test_check_reports_a_difference(tmp_path: Path) -> None:
    crds.write(tmp_path)
    target = tmp_path / crds.file_name(crds.CRDS[0])
    target.write_text(target.read_text().replace("minimum: 1", "minimum: 0", 1))
    result = CliRunner().invoke(cli, ["crds", "--check", str(tmp_path)])
    assert result.exit_code == 1
    assert "-      minimum: 0" in result.output or "minimum: 0" in result.output
    assert "(generated from the models)" in result.output


def test_schemas_are_structural() -> None:
    for info in crds.CRDS:
        manifest = crds.crd_manifest(info)
        version = manifest["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert version["additionalPrinterColumns"]
        assert manifest["spec"]["names"]["shortNames"]
        schema = version["schema"]["openAPIV3Schema"]
        for path, node in _walk(schema):
            assert "$ref" not in node, path
            assert "anyOf" not in node, path
            assert "title" not in node, path
            if "properties" in node:
                assert node.get("type") == "object", path
                assert "additionalProperties" not in node, path


def test_schema_carries_validation() -> None:
    lane = crds.openapi_schema(crds.CRDS[0].model)
    steps = lane["properties"]["spec"]["properties"]["strategy"]["properties"]["steps"]
    weight = steps["items"]["properties"]["weight"]
    assert weight["minimum"] == 1 and weight["maximum"] == 100
    assert "weight" in steps["items"]["required"]
    mode = lane["properties"]["spec"]["properties"]["gates"]["properties"]["mode"]
    assert set(mode["enum"]) == {"enforce", "shadow"}
    release = crds.openapi_schema(crds.CRDS[1].model)
    phase = release["properties"]["status"]["properties"]["phase"]
    assert "RolledBack" in phase["enum"]


def test_lane_reference_is_generated_from_the_models() -> None:
    from controller import lane_reference

    checked_in = (REPO / "docs" / "lane-reference.md").read_text()
    assert checked_in == lane_reference.render(), (
        "docs/lane-reference.md is stale: run `changelane lanes reference > docs/lane-reference.md`"
    )


def test_no_category_is_also_a_resource_name() -> None:
    """kubectl expands a category before it looks a name up: a category equal to a singular,
    plural or short name turns `kubectl get changelane NAME` into 'you must specify only one
    resource' (on the simulated cluster and on a real one alike)."""
    names = {n for info in crds.CRDS for n in (info.plural, info.singular, *info.short_names)}
    for info in crds.CRDS:
        categories = set(crds.crd_manifest(info)["spec"]["names"]["categories"])
        assert categories and not categories & names, categories & names
