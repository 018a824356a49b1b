"""Replay of recorded traces: the JSONL format, one precise error per problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import CliRunner

from controller.cli.main import cli

REPO = Path(__file__).resolve().parents[2]


def trace(
    family: str, name: str, *, bad_factor: float = 1.0, latency: bool = True
) -> dict[str, Any]:
    rng = np.random.default_rng(sum(map(ord, name)))
    n = 240  # two hours of 30 s intervals
    c_req = rng.poisson(300, n)
    b_req = rng.poisson(3000, n)
    out: dict[str, Any] = {
        "family": family,
        "name": name,
        "interval_s": 30,
        "expect": "rollback" if bad_factor > 1 else "promote",
        "onset_s": 0 if bad_factor > 1 else None,
        "canary": {
            "requests": c_req.tolist(),
            "errors": rng.binomial(c_req, 0.005 * bad_factor).tolist(),
        },
        "baseline": {"requests": b_req.tolist(), "errors": rng.binomial(b_req, 0.005).tolist()},
    }
    if latency:
        probs = [0.5, 0.4, 0.09, 0.01]
        out["latency"] = {
            "le": [0.1, 0.25, 1.0, "+Inf"],
            "canary": [rng.multinomial(r, probs).tolist() for r in c_req],
            "baseline": [rng.multinomial(r, probs).tolist() for r in b_req],
        }
    return out


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replay_reports_one_row_per_family_and_judge_with_a_lane(tmp_path: Path) -> None:
    lines = [json.dumps(trace("healthy", f"h{i}")) for i in range(3)]
    lines += [json.dumps(trace("x5", f"r{i}", bad_factor=5, latency=False)) for i in range(3)]
    src = write(tmp_path / "t.jsonl", lines)
    out = tmp_path / "out.json"
    lane = REPO / "lanes" / "docs-site.yaml"
    result = CliRunner().invoke(
        cli,
        ["bench", "decisions", "--traces", str(src), "--lane", str(lane), "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    rows = {(r["scenario"], r["judge"]): r for r in data["scenarios"]}
    assert set(rows) == {
        (f, j) for f in ("healthy", "x5") for j in ("changelane", "flagger", "argo")
    }
    assert rows[("x5", "changelane")]["missed_regression_rate"] == 0
    assert rows[("healthy", "changelane")]["false_rollback_rate"] == 0
    assert rows[("healthy", "changelane")]["traces"] == 3
    # docs-site has a latency check: skipped with a note where a trace has no latency
    assert any("no latency: skipped" in n for n in data["notes"])


def test_bad_input_gets_one_precise_error_per_problem_and_nothing_is_replayed(
    tmp_path: Path,
) -> None:
    good = trace("f", "good")
    negative = trace("f", "neg")
    negative["canary"]["requests"][3] = -1
    too_many = trace("f", "many")
    too_many["baseline"]["errors"][5] = too_many["baseline"]["requests"][5] + 1
    lengths = trace("f", "len")
    lengths["canary"]["errors"] = lengths["canary"]["errors"][:-1]
    missing = trace("f", "missing")
    del missing["interval_s"]
    src = write(
        tmp_path / "bad.jsonl",
        [
            json.dumps(good),
            json.dumps(negative),
            json.dumps(too_many),
            json.dumps(lengths),
            json.dumps(missing),
            "{not json",
        ],
    )
    out = tmp_path / "out.json"
    result = CliRunner().invoke(
        cli, ["bench", "decisions", "--traces", str(src), "--json", str(out)]
    )
    assert result.exit_code != 0
    text = result.output
    assert "5 problem(s)" in text
    assert "line 2: field canary.requests[3] is -1: expected a count >= 0" in text
    assert "line 3: field baseline.errors[5]" in text and "more than baseline.requests[5]" in text
    assert "line 4: fields canary.requests and canary.errors have different lengths" in text
    assert "line 5: field 'interval_s': expected a number > 0" in text
    assert "line 6: not JSON" in text
    assert "line 1" not in text
    assert not out.exists()  # nothing half-replayed


def pod_trace(name: str, *, bad_pod: bool) -> dict[str, Any]:
    """Per-pod counts: five canary pods at 2 req/s (one x10 when bad), ten baseline pods."""
    rng = np.random.default_rng(sum(map(ord, name)))
    n = 120

    def arm(pods: int, rps: float, factors: list[float]) -> dict[str, Any]:
        split = {}
        for j in range(pods):
            req = rng.poisson(rps * 30, n)
            split[f"pod-{j}"] = {
                "requests": req.tolist(),
                "errors": rng.binomial(req, 0.005 * factors[j]).tolist(),
            }
        return {
            "requests": np.sum([p["requests"] for p in split.values()], axis=0).tolist(),
            "errors": np.sum([p["errors"] for p in split.values()], axis=0).tolist(),
            "pods": split,
        }

    return {
        "family": "bad_pod" if bad_pod else "healthy_pods",
        "name": name,
        "interval_s": 30,
        "expect": "rollback" if bad_pod else "promote",
        "onset_s": 0 if bad_pod else None,
        "canary": arm(5, 2, [10.0 if bad_pod else 1.0, 1, 1, 1, 1]),
        "baseline": arm(10, 10, [1.0] * 10),
    }


def test_replay_uses_per_pod_counts_when_the_trace_has_them(tmp_path: Path) -> None:
    lines = [json.dumps(pod_trace(f"b{i}", bad_pod=True)) for i in range(3)]
    lines += [json.dumps(pod_trace(f"h{i}", bad_pod=False)) for i in range(2)]
    src = write(tmp_path / "pods.jsonl", lines)
    out = tmp_path / "out.json"
    result = CliRunner().invoke(
        cli, ["bench", "decisions", "--traces", str(src), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = {(r["scenario"], r["judge"]): r for r in json.loads(out.read_text())["scenarios"]}
    bad = rows[("bad_pod", "changelane")]
    assert bad["missed_regression_rate"] == 0
    assert bad["detection_median_s"] <= 300
    assert rows[("healthy_pods", "changelane")]["false_rollback_rate"] == 0


def test_per_pod_counts_get_precise_errors(tmp_path: Path) -> None:
    one_arm = pod_trace("one", bad_pod=False)
    del one_arm["baseline"]["pods"]
    short = pod_trace("short", bad_pod=False)
    short["canary"]["pods"]["pod-2"]["requests"].pop()
    short["canary"]["pods"]["pod-2"]["errors"].pop()
    src = write(tmp_path / "bad.jsonl", [json.dumps(one_arm), json.dumps(short)])
    result = CliRunner().invoke(cli, ["bench", "decisions", "--traces", str(src)])
    assert result.exit_code != 0
    assert "line 1: field 'pods': give both arms' pods or neither" in result.output
    assert "line 2: field canary.pods.pod-2.requests has 119 intervals, the arm 120" in (
        result.output
    )


def with_history(obj: dict[str, Any], seed: int) -> dict[str, Any]:
    """The trace with an hour of its baseline's counts before it (Poisson, as recorded)."""
    rng = np.random.default_rng(seed)
    requests = rng.poisson(3000, 120)
    return {
        **obj,
        "history": {
            "requests": requests.tolist(),
            "errors": rng.binomial(requests, 0.005).tolist(),
        },
    }


def test_a_trace_s_history_gives_the_judge_its_noise_prior(tmp_path: Path) -> None:
    traces = [trace("x5", f"r{i}", bad_factor=5, latency=False) for i in range(6)]
    rows = {}
    for label, lines in (
        ("fixed", [json.dumps(t) for t in traces]),
        ("history", [json.dumps(with_history(t, i)) for i, t in enumerate(traces)]),
    ):
        src = write(tmp_path / f"{label}.jsonl", lines)
        out = tmp_path / f"{label}.json"
        result = CliRunner().invoke(
            cli,
            [
                *("bench", "decisions", "--noise-prior", "history"),
                "--traces",
                str(src),
                "--json",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        found = json.loads(out.read_text())["scenarios"]
        rows[label] = next(r for r in found if r["judge"] == "changelane")
    # A quiet service's history says its noise is small: the x5 is caught sooner.
    assert rows["history"]["missed_regression_rate"] == 0
    assert rows["history"]["detection_median_s"] < rows["fixed"]["detection_median_s"]


def test_history_gets_precise_errors(tmp_path: Path) -> None:
    base = trace("h", "h", latency=False)
    negative = with_history(base, 1)
    negative["history"]["requests"][3] = -1
    over = with_history(base, 2)
    over["history"]["errors"][5] = over["history"]["requests"][5] + 1
    short = with_history(base, 3)
    short["history"]["errors"].pop()
    missing = {**base, "history": {"requests": [1, 2]}}
    pods = with_history(base, 4)
    pods["history"]["pods"] = {"p": {"requests": [1], "errors": [0]}}
    src = write(
        tmp_path / "bad.jsonl",
        [json.dumps(x) for x in (negative, over, short, missing, pods)],
    )
    result = CliRunner().invoke(cli, ["bench", "decisions", "--traces", str(src)])
    assert result.exit_code != 0
    for expected in (
        "line 1: field history.requests[3] is -1: expected a count >= 0",
        "line 2: field history.errors[5] is",
        "line 3: fields history.requests and history.errors have different lengths (120 and 119)",
        "line 4: field 'history.errors' is missing",
        "line 5: field history.pods.p.requests has 1 intervals, the arm 120",
    ):
        assert expected in result.output, result.output
