"""Hostile and broken lane files: every one is a precise problem line, never an exception,
and every file is checked (issue 17's reproductions)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from controller.cli.main import cli
from controller.lanefiles import check_text

REPO = Path(__file__).resolve().parents[2]
DOCS_SITE = (REPO / "lanes" / "docs-site.yaml").read_text()


def _lane_with(path: str, value_yaml: str) -> str:
    """docs-site with the field at dotted ``path`` replaced by raw YAML text."""
    doc = yaml.safe_load(DOCS_SITE)
    node = doc
    *parents, leaf = path.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[leaf] = "PLACEHOLDER"
    return yaml.safe_dump(doc, sort_keys=False, width=1000).replace("PLACEHOLDER", value_yaml)


def _problems(text: str) -> list[str]:
    lanes, problems = check_text(text, "lane.yaml")
    assert not lanes or problems, "expected the lane to be refused"
    return [str(p) for p in problems]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.description", "!!int abc", "'abc' is not a valid int at line"),
        ("spec.description", "!!timestamp junk", "'junk' is not a valid timestamp"),
        ("spec.description", "!!bool maybe", "'maybe' is not a valid bool"),
        ("spec.description", "!!binary AAAA", "has no JSON equivalent"),
        ("spec.description", "[" * 1000 + "]" * 1000, "nesting deeper than 32 levels"),
        ("metadata.name", "Docs_Site", "metadata: name 'Docs_Site' is not a DNS-1123 subdomain"),
        ("spec.analysis.checks.1.threshold", ".nan", "threshold: nan is not a JSON number"),
        ("spec.analysis.checks.1.maxRatio", ".inf", "maxRatio: inf is not a JSON number"),
        ("spec.strategy.steps.0.weight", "true", "steps[0].weight: expected input should be"),
        ("spec.analysis.checks.0.critical", '"true"', "checks[0].critical: expected input"),
        ("spec.strategy.steps.0.minDuration", "99999999999999999999999h", "minDuration"),
        ("spec.strategy.steps.0.minDuration", "200h", "longer than a week"),
        ("spec.selector.matchLabels", "{'bad key': x}", "label key 'bad key' is invalid"),
        ("spec.selector.matchLabels", "{app: 'a b'}", "label value 'a b' is invalid"),
        (
            "spec.analysis.checks.1.query",
            'rate(x{app="{{ workload }}"}[{{ window }}m])',
            "does not parse as PromQL",
        ),
        (
            "spec.analysis.checks.1.query",
            'rate(x{app="{{ workload }}"[{{ window }}])',
            "does not parse as PromQL",
        ),
        (
            "spec.analysis.checks.1.query",
            "rate(x{app='{{ workload }}'}[{{ window }}])",
            "single-quoted string, which cannot be escaped safely",
        ),
        (
            "spec.analysis.checks.1.query",
            "rate(x{app=`{{ workload }}`}[{{ window }}])",
            "backtick string",
        ),
    ],
)
def test_each_bad_value_is_one_precise_problem(path: str, value: str, expected: str) -> None:
    problems = _problems(_lane_with(path, value))
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("lane.yaml: document 0") for p in problems), problems


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    text = DOCS_SITE.replace("  name: docs-site\n", "  name: docs-site\n  name: other\n")
    (problem,) = _problems(text)
    assert "duplicate key 'name' (first at line" in problem


def test_an_empty_file_is_a_problem_not_a_silent_pass() -> None:
    for text in ("", "# nothing\n", "---\n"):
        assert _problems(text) == [
            "lane.yaml: document 0: file has no YAML documents; expected a ChangeLane"
        ]


def test_a_date_like_description_is_a_string_as_kubernetes_keeps_it() -> None:
    for value in ("2001-02-30", "2001-02-03", "2001-02-03T04:05:06Z"):
        lanes, problems = check_text(_lane_with("spec.description", value), "lane.yaml")
        assert problems == [] and lanes[0].lane.spec.description == value


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"] + [
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)
    ]
    (problem,) = _problems("\n".join(lines))
    assert "more than 64 aliases" in problem


def test_one_bad_file_never_stops_the_others(tmp_path: Path) -> None:
    """The reproduction from the issue: the crash used to abort the whole run."""
    bad = tmp_path / "d.yaml"
    bad.write_text("kind: ChangeLane\nmetadata: {name: x}\nspec:\n  description: 2001-02-30\n")
    weird = tmp_path / "e.yaml"
    weird.write_text("a: !!int abc\n---\nb: !!bool maybe\n")
    escape = tmp_path / "f.yaml"
    escape.write_text('kind: "\\e[2J"\n')
    files = [REPO / "lanes" / "docs-site.yaml", bad, weird, escape]
    result = CliRunner().invoke(cli, ["lanes", "validate", *map(str, files)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{bad}: document 0: spec.selector: required field is missing" in result.output
    assert f"{weird}: document 0: 'abc' is not a valid int" in result.output
    assert f"{weird}: document 1: 'maybe' is not a valid bool" in result.output
    assert "\x1b" not in result.output and "\\x1b[2J" in result.output
