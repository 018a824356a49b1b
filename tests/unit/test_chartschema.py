"""The lane part of the chart's values.schema.json is generated from the lane models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from controller import chartschema
from controller.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "charts" / "changelane" / "values.schema.json"


def test_checked_in_schema_matches_models() -> None:
    result = CliRunner().invoke(cli, ["chart", "values-schema", "--check", "--file", str(SCHEMA)])
    assert result.exit_code == 0, result.output


def test_stale_lane_definitions_are_reported_and_rewritten(tmp_path: Path) -> None:
    stale = tmp_path / "values.schema.json"
    shutil.copy(SCHEMA, stale)
    data = json.loads(stale.read_text(encoding="utf-8"))
    data["$defs"]["ChangeLane.CanaryStep"]["properties"]["weight"]["maximum"] = 1000
    data["$defs"]["chartOwned"] = {"type": "string"}  # hand-written defs are kept
    stale.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    result = CliRunner().invoke(cli, ["chart", "values-schema", "--check", "--file", str(stale)])
    assert result.exit_code == 1
    assert '-          "maximum": 1000' in result.output
    assert "changelane chart values-schema --write" in result.output

    result = CliRunner().invoke(cli, ["chart", "values-schema", "--write", "--file", str(stale)])
    assert result.exit_code == 0
    rewritten = json.loads(stale.read_text(encoding="utf-8"))
    assert rewritten["$defs"]["ChangeLane.CanaryStep"]["properties"]["weight"]["maximum"] == 100
    assert rewritten["$defs"]["chartOwned"] == {"type": "string"}
    assert chartschema.check(stale) == ""


def test_lane_definitions_refuse_unknown_fields() -> None:
    defs = chartschema.lane_defs()
    spec = defs[chartschema.SPEC_DEF]
    assert spec["additionalProperties"] is False
    assert set(spec["required"]) == {"selector", "agents", "strategy", "analysis"}
    for name, body in defs.items():
        if "properties" in body:
            assert body["additionalProperties"] is False, name
