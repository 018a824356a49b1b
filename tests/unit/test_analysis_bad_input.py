"""Bad analysis input: clear errors naming the lane and the check; nothing passes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from controller.core.analysis import CheckSample, Outcome, ReleaseParams, apply_measurement, judge
from controller.core.analysis.sample import plan_queries
from controller.core.models import AnalysisCheck, CheckStatus, Verdict
from controller.core.promql import TemplateError
from controller.lanefiles import load_lanes

QUERY = 'app="{{ workload }}", track="{{ track }}"}[{{ window }}])))'


def _variant(repo: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = (repo / "lanes" / "docs-site.yaml").read_text()
    assert old in text
    path = tmp_path / "lane.yaml"
    path.write_text(text.replace(old, new))
    return path


def test_unknown_template_parameter_names_file_lane_check_and_field(
    repo: Path, tmp_path: Path
) -> None:
    path = _variant(repo, tmp_path, QUERY, QUERY.replace("workload", "bogus"))
    loaded, problems = load_lanes([path])
    assert not loaded
    (problem,) = problems
    text = str(problem)
    assert str(path) in text and "spec.analysis.checks[1]" in text
    assert "unknown template parameter {{ bogus }}" in text
    assert text.endswith("(lane docs-site, check latency-p95)")


def test_threshold_of_the_wrong_type_names_lane_and_check(repo: Path, tmp_path: Path) -> None:
    path = _variant(repo, tmp_path, "threshold: 0.1", "threshold: fast")
    _, problems = load_lanes([path, repo / "lanes" / "seo-metadata.yaml"])
    (problem,) = problems
    assert "spec.analysis.checks[1].threshold: expected input should be a valid number" in str(
        problem
    )
    assert "(lane docs-site, check latency-p95)" in str(problem)


def test_a_parameter_the_release_cannot_supply_is_an_error_and_holds() -> None:
    check = AnalysisCheck.model_validate(
        {"name": "per-pod", "kind": "threshold", "query": 'up{pod="{{ pod }}"}', "threshold": 1}
    )
    params = ReleaseParams(lane="docs-site", namespace="docs", workload="web")
    try:
        plan_queries(check, params)
        raise AssertionError("rendering without a pod must fail")
    except TemplateError as exc:
        assert "{{ pod }}" in str(exc)
    sample = CheckSample("docs-site", "per-pod", 60, error="lane docs-site, check per-pod: ...")
    m = judge(check, sample, step=0, now=datetime.now(UTC))
    assert m.verdict is Verdict.ERROR
    _, outcome, _ = apply_measurement(check, CheckStatus(name="per-pod"), m)
    assert outcome is Outcome.HOLD
