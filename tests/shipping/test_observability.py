"""The alert rules and the dashboard use the controller's metric names, and Prometheus'
own promtool accepts them (and unit-tests the alerts)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.shipping.chartlib import CHART, require_tool

RULES = CHART / "files" / "alert-rules.yaml"
RULES_TESTS = Path(__file__).parent / "alert-rules.test.yaml"
DASHBOARD = CHART / "files" / "grafana-dashboard.json"

# The runtime contract: every metric the controller exports (histograms by base name).
CONTRACT_METRICS = {
    "changelane_releases_total",
    "changelane_rollbacks_total",
    "changelane_regression_detection_seconds",
    "changelane_analysis_query_duration_seconds",
    "changelane_analysis_query_errors_total",
    "changelane_reconcile_duration_seconds",
    "changelane_workqueue_depth",
    "changelane_lane_autonomy_enabled",
    "changelane_lane_suspended",
    "changelane_leader",
    "changelane_lease_held",
    "changelane_shards",
    "changelane_lane_change_failure_rate",
    "changelane_lane_provenance_coverage",
    "changelane_lane_rework_rate",
    "changelane_releases_gated_total",
}
HISTOGRAMS = {
    "changelane_regression_detection_seconds",
    "changelane_analysis_query_duration_seconds",
    "changelane_reconcile_duration_seconds",
}
_METRIC = re.compile(r"\bchangelane_[a-z_]+")


def metrics_in(expr: str) -> set[str]:
    names = set()
    for name in _METRIC.findall(expr):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        names.add(base if base in HISTOGRAMS else name)
    return names


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    out += [(a["name"], a["expr"]) for a in dashboard["annotations"]["list"] if "expr" in a]
    return out


def _as_promql(expr: str) -> str:
    """Grafana's variables replaced by what they expand to, so promtool can parse it."""
    for variable, value in (("$__rate_interval", "2m"), ("$__range", "6h"), ("$lane", ".*")):
        expr = expr.replace(variable, value)
    return expr


def test_required_alerts_exist() -> None:
    alerts = {rule["alert"] for rule in _rules()}
    assert {
        "ChangelaneRollback",
        "ChangelaneLaneSuspended",
        "ChangelaneNoLeader",
        "ChangelaneAnalysisErroring",
    } <= alerts
    for rule in _rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_rules_and_dashboard_use_only_contract_metrics() -> None:
    used = {m for r in _rules() for m in metrics_in(r["expr"])}
    used |= {m for _, expr in _dashboard_exprs() for m in metrics_in(expr)}
    assert used - CONTRACT_METRICS == set()


def test_dashboard_shows_every_contract_metric() -> None:
    shown = {m for _, expr in _dashboard_exprs() for m in metrics_in(expr)}
    assert shown == CONTRACT_METRICS


def test_dashboard_is_importable_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    lane = next(v for v in dashboard["templating"]["list"] if v["name"] == "lane")
    assert lane["includeAll"] and lane["allValue"] == ".*"


@pytest.mark.prometheus
def test_promtool_accepts_the_alert_rules() -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "test", "rules", RULES_TESTS.name],
        capture_output=True,
        text=True,
        check=False,
        cwd=RULES_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.prometheus
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    exprs = _dashboard_exprs()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": _as_promql(expr)}
                    for i, (_, expr) in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


@pytest.mark.prometheus
def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    # The checks above mean something only if promtool really parses.
    promtool = require_tool("promtool")
    broken = {"groups": [{"name": "x", "rules": [{"alert": "X", "expr": "sum(by lane) oops"}]}]}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
