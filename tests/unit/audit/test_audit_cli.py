from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.adapters.audit.log import AuditLog, ReadReport, read_records
from controller.bench.audit_history import write_history
from controller.cli.main import cli
from controller.core.audit import AuditRecord, Decision
from controller.core.audit_query import AuditFilter, summarize


@pytest.fixture(scope="module")
def recent_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About three hours of history ending now (when the first test of the module runs, not
    when it was collected: "--since 1h" is relative to the clock at the command's run)."""
    path = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    write_history(path, 2500, end=datetime.now(UTC), seed=11)
    return path


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def _records(path: Path) -> list[AuditRecord]:
    return list(read_records(path, ReadReport(str(path))))


def test_last_hour_table_says_what_changed_and_why_it_rolled_back(recent_log: Path) -> None:
    now = datetime.now(UTC)
    code, out, err = _run("audit", "--file", str(recent_log), "--since", "1h")
    assert code == 0, err
    expected = summarize(_records(recent_log), AuditFilter(since=now - timedelta(hours=1)))
    rolled_back = [s for s in expected.releases if s.outcome.value == "RolledBack"]
    assert rolled_back, "the fixture should contain a rollback in the last hour"
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["TIME", "(UTC)", "RELEASE"]
    for summary in rolled_back:
        row = next(i for i, line in enumerate(lines) if summary.release in line)
        assert "RolledBack" in lines[row] and "error-rate" in lines[row]
        assert "└ error-rate Fail" in lines[row + 1] and "threshold=0.02" in lines[row + 1]
    assert lines[-1].startswith(f"{len(expected.releases)} release(s)")
    old = [s for s in summarize(_records(recent_log), AuditFilter()).releases]
    assert any(s.release not in out for s in old)  # older releases are filtered out


def test_json_has_one_object_per_release_with_its_deciding_evidence(recent_log: Path) -> None:
    code, out, err = _run(
        "audit", "--file", str(recent_log), "--since", "2h", "--outcome", "RolledBack", "--json"
    )
    assert code == 0, err
    releases = json.loads(out)
    assert releases
    for item in releases:
        assert item["outcome"] == "RolledBack" and item["reason"] == "CheckFailed"
        assert set(item["provenance"]) == {"agent", "model", "change", "tests", "reviewer"}
        assert item["provenance"]["agent"] and item["workload"] and item["namespace"]
        (evidence,) = item["evidence"]
        assert set(evidence) == {"check", "canary", "baseline", "threshold", "statistic", "verdict"}
        assert evidence["verdict"] == "Fail" and evidence["canary"] > evidence["threshold"]
    assert len({item["release"] for item in releases}) == len(releases)


@pytest.mark.parametrize(
    ("option", "field"),
    [("--lane", "lane"), ("--namespace", "namespace"), ("--workload", "workload")],
)
def test_filters(recent_log: Path, option: str, field: str) -> None:
    _, out, _ = _run("audit", "--file", str(recent_log), "--json")
    everything = json.loads(out)
    value = everything[-1][field]
    _, out, _ = _run("audit", "--file", str(recent_log), option, value, "--json")
    picked = json.loads(out)
    assert picked and all(item[field] == value for item in picked)
    assert len(picked) == sum(1 for item in everything if item[field] == value)


def test_agent_filter(recent_log: Path) -> None:
    _, out, _ = _run("audit", "--file", str(recent_log), "--agent", "renovate", "--json")
    picked = json.loads(out)
    assert picked and {item["provenance"]["agent"] for item in picked} == {"renovate"}


def test_bad_since_and_missing_source_are_usage_errors(recent_log: Path) -> None:
    code, _, err = _run("audit", "--file", str(recent_log), "--since", "yesterday")
    assert code == 2 and "expected a duration like 30m" in err
    missing = str(recent_log.parent / "no-such-kubeconfig")
    code, _, err = _run("audit", "--since", "1h", "--kubeconfig", missing)
    assert code == 2 and "no --file given and no cluster to read" in err
    code, _, err = _run("audit", "--file", str(recent_log), "--cluster")
    assert code == 2 and "not both" in err


def test_show_prints_every_measurement_of_a_release(recent_log: Path) -> None:
    records = _records(recent_log)
    target = next(r.release for r in records if r.decision is Decision.ROLLED_BACK)
    mine = [r for r in records if r.release == target]
    code, out, err = _run("audit", "show", target, "--file", str(recent_log))
    assert code == 0, err
    measured = sum(len(r.evidence) for r in mine if r.decision is Decision.MEASUREMENT)
    assert sum(1 for line in out.splitlines() if "canary=" in line) >= measured
    assert out.count("\n") >= len(mine)
    assert "rolled_back" in out and "RollingBack -> RolledBack" in out


def test_show_of_an_unknown_release_exits_1(recent_log: Path) -> None:
    code, out, err = _run("audit", "show", "no-such-release", "--file", str(recent_log))
    assert code == 1 and out == ""
    assert "release 'no-such-release' not found in" in err


def test_show_plot_writes_a_png(recent_log: Path, tmp_path: Path) -> None:
    target = next(r.release for r in _records(recent_log) if r.decision is Decision.ROLLED_BACK)
    png = tmp_path / "release.png"
    code, _, err = _run("audit", "show", target, "--file", str(recent_log), "--plot", str(png))
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_verify_exit_codes_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    write_history(path, 50, end=datetime.now(UTC))
    code, out, _ = _run("audit", "verify", str(path))
    assert code == 0 and out.startswith(f"ok: {path}: 50 record(s)")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:-1], lines[-1][:30]]))
    code, _, err = _run("audit", "verify", str(path))
    assert code == 3 and "line 50: truncated" in err
    path.write_bytes(b"".join([*lines[:9], lines[9].replace(b"docs", b"dogs"), *lines[10:]]))
    code, _, err = _run("audit", "verify", str(path))
    assert code == 1 and "line 10: edited" in err and "(9 record(s) before it intact)" in err


def test_a_damaged_log_is_still_read_and_the_skips_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    write_history(path, 300, end=datetime.now(UTC))
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:100], b"{oops\n", *lines[101:-1], lines[-1][:20]]))
    code, out, err = _run("audit", "--file", str(path), "--json")
    assert code == 0
    assert json.loads(out)
    assert "line 101: not_json" in err and "line 300: truncated" in err


def test_lane_events_appear_in_the_table(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditLog(path) as log:
        log.append(
            AuditRecord(
                time=datetime.now(UTC),
                lane="docs-site",
                decision=Decision.LANE_SUSPENDED,
                reason="ManualSuspend",
                message="incident 42",
                actor="alice@example.com",
            )
        )
    code, out, _ = _run("audit", "--file", str(path), "--since", "5m")
    assert code == 0
    assert "lane docs-site: lane_suspended by alice@example.com (ManualSuspend: incident 42)" in out


@pytest.mark.parametrize("spelling", ["rolled_back", "rolledback", "Rolled-Back"])
def test_outcome_accepts_the_older_spellings(recent_log: Path, spelling: str) -> None:
    new = _run("audit", "--file", str(recent_log), "--outcome", "RolledBack", "--json")
    old = _run("audit", "--file", str(recent_log), "--outcome", spelling, "--json")
    assert old == new and json.loads(new[1])


def test_an_unknown_outcome_names_the_accepted_ones(recent_log: Path) -> None:
    code, _, err = _run("audit", "--file", str(recent_log), "--outcome", "exploded")
    assert code == 2
    assert "exploded" in err and "RolledBack" in err and "Promoted" in err
