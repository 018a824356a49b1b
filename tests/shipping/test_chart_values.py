"""Bad values fail loudly, naming the bad value; lanes are checked as the cluster would."""

from __future__ import annotations

import copy
import json
from typing import Any

import helm_python
import pytest

from controller import chartschema
from tests.shipping.chartlib import CHART, example_lanes, lane_problems, only, render

SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))


def _docs_lane() -> dict[str, Any]:
    return copy.deepcopy(example_lanes()["docs-site"])


def _render_error(chart: helm_python.Chart, values: dict[str, Any]) -> str:
    with pytest.raises(helm_python.HelmError) as caught:
        render(chart, values)
    return str(caught.value)


@pytest.mark.parametrize(
    ("values", "path", "what"),
    [
        ({"replicaCount": "2"}, "'/replicaCount'", "want integer"),
        ({"flags": {"flagd": {"port": "8013"}}}, "'/flags/flagd/port'", "want integer"),
        ({"flags": {"provider": "launchdarkly"}}, "'/flags/provider'", "one of 'flagd', 'file'"),
        ({"serviceMonitor": {"enable": True}}, "'/serviceMonitor'", "'enable' not allowed"),
        ({"imagee": {"tag": "x"}}, "''", "'imagee' not allowed"),
        ({"resources": {"limits": {"memmory": "1Gi"}}}, "'/resources/limits'", "'memmory'"),
        ({"prometheus": {"url": "prometheus:9090"}}, "'/prometheus/url'", "does not match"),
        ({"leaderElection": {"leaseName": "Leader_1"}}, "'/leaderElection/leaseName'", "match"),
        ({"image": {"digest": "latest"}}, "'/image/digest'", "does not match"),
    ],
)
def test_a_bad_value_fails_with_its_path(
    chart: helm_python.Chart, values: dict[str, Any], path: str, what: str
) -> None:
    message = _render_error(chart, values)
    assert f"at {path}" in message and what in message, message


def test_a_lane_typo_fails_the_install_with_the_lane_path(chart: helm_python.Chart) -> None:
    lane = _docs_lane()
    lane["strategy"]["stepz"] = lane["strategy"].pop("steps")
    message = _render_error(chart, {"lanes": {"docs-site": lane}})
    assert "at '/lanes/docs-site/strategy'" in message
    assert "'stepz' not allowed" in message and "missing property 'steps'" in message


def test_a_lane_with_a_wrong_type_fails_the_install(chart: helm_python.Chart) -> None:
    lane = _docs_lane()
    lane["strategy"]["steps"][0]["weight"] = "ten"
    message = _render_error(chart, {"lanes": {"docs-site": lane}})
    assert "at '/lanes/docs-site/strategy/steps/0/weight'" in message, message


def test_a_lane_name_must_be_a_dns_label(chart: helm_python.Chart) -> None:
    message = _render_error(chart, {"lanes": {"Docs_Site": _docs_lane()}})
    assert "Docs_Site" in message, message


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"flags": {"provider": "file"}}, "flags.provider file needs flags.file.configMap"),
        ({"audit": {"volume": "persistentVolumeClaim"}}, "needs audit.existingClaim"),
        ({"serviceAccount": {"create": False}}, "serviceAccount.name is required"),
    ],
)
def test_incomplete_settings_fail_rendering(
    chart: helm_python.Chart, values: dict[str, Any], needle: str
) -> None:
    assert needle in _render_error(chart, values)


def test_lane_checks_name_the_lane_and_field(chart: helm_python.Chart) -> None:
    lanes = example_lanes()
    rendered = {o.name: o.obj for o in render(chart, {"lanes": lanes}) if o.kind == "ChangeLane"}
    assert all(lane_problems(obj) == [] for obj in rendered.values())
    broken = copy.deepcopy(rendered["docs-site"])
    broken["spec"]["strategy"]["steps"][0]["weight"] = 0
    assert lane_problems(broken) == [
        "lane docs-site: CRD schema: spec.strategy.steps[0].weight: "
        "0 is less than the minimum of 1",
        "lane docs-site: model: spec.strategy.steps[0].weight: "
        "Input should be greater than or equal to 1",
    ]


def test_a_lane_helm_accepts_but_the_controller_refuses_is_caught(
    chart: helm_python.Chart,
) -> None:
    # Cross-field rules (weights must increase) are beyond JSON Schema: Helm renders the
    # lane, and the chart tests' model check is what names it.
    lane = _docs_lane()
    lane["strategy"]["steps"] = [{"weight": 50}, {"weight": 10}, {"weight": 100}]
    obj = only(render(chart, {"lanes": {"docs-site": lane}}), "ChangeLane")
    problems = lane_problems(obj)
    assert len(problems) == 1
    assert problems[0].startswith("lane docs-site: model: spec.strategy")
    assert "must be greater than" in problems[0]


def test_values_schema_lane_definitions_match_the_models() -> None:
    assert chartschema.check(CHART / "values.schema.json") == ""


def _objects_without_closed_properties(node: Any, path: str) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        if "properties" in node and node.get("additionalProperties") is not False:
            out.append(path or "(root)")
        for key, value in node.items():
            out.extend(_objects_without_closed_properties(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_objects_without_closed_properties(value, f"{path}/{i}"))
    return out


def test_every_object_in_the_values_schema_is_closed() -> None:
    assert _objects_without_closed_properties(SCHEMA, "") == []


def test_defaults_are_described_by_the_schema(chart: helm_python.Chart) -> None:
    chart.validate_schema(chart.values)
    declared = set(SCHEMA["properties"])
    assert set(chart.values) == declared
