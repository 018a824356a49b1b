"""``changelane bench backtest``: a lane backtested over N days of history on a real Prometheus.

Setup (not timed as the backtest): write the history (``backtest_history``), turn it into
TSDB blocks with promtool, start Prometheus on them. Then, timed, the docs-site lane is
backtested over the whole history the way a user would run it: releases discovered from
kube-state-metrics, and again from the CSV of known outcomes with the A/A runs. The
target: thirty days of one lane in under a minute.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from controller.adapters.metrics.prometheus import PrometheusMetrics
from controller.adapters.metrics.prometheus_process import PrometheusProcess
from controller.adapters.metrics.prometheus_range import DEFAULT_MAX_POINTS, PrometheusHistory
from controller.backtest.engine import AAOptions, BacktestRun, run_backtest
from controller.backtest.releases import Expect, parse_releases_csv
from controller.backtest.replay import Outcome
from controller.bench.backtest_history import (
    HistoryConfig,
    KnownRelease,
    create_blocks,
    generate,
    releases_csv,
)
from controller.lanefiles import load_lanes

LANE = Path(__file__).resolve().parents[2] / "lanes" / "docs-site.yaml"
TARGET_S = 60.0


def _lane_file() -> Path:
    if LANE.exists():
        return LANE
    raise FileNotFoundError(f"{LANE} not found: run the benchmark from a checkout")


def _agreement(run: BacktestRun, known: list[KnownRelease]) -> tuple[int, int]:
    """Releases whose would-have decision is the outcome the history was written with."""
    expected = {k.start: k.expect for k in known}
    matched = sum(
        1
        for r in run.results
        if r.release.start in expected and r.outcome.value == expected[r.release.start]
    )
    return matched, len(run.results)


def run(*, days: float, runs: int, aa_windows: int, aa_splits: int) -> dict[str, Any]:
    lane = load_lanes([_lane_file()])[0][0].lane
    config = HistoryConfig(days=days)
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    with tempfile.TemporaryDirectory(prefix="changelane-bench-backtest-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        files, known = generate(config, root / "openmetrics")
        t1 = time.perf_counter()
        create_blocks(files, root / "blocks", promtool)
        t2 = time.perf_counter()
        samples = sum(1 for f in files for line in f.open() if line and not line.startswith("#"))
        for f in files:
            f.unlink()
        releases, problems = parse_releases_csv(releases_csv(known), "known.csv")
        assert not problems, problems
        since = config.start
        until = config.start + timedelta(days=days)
        scenarios: dict[str, dict[str, Any]] = {}
        # Blocks stay the two hours promtool wrote: compacting 360 of them would compete
        # with the timed queries (and a long-running Prometheus has compacted long ago).
        no_compaction = ["--storage.tsdb.max-block-duration=2h"]
        with PrometheusProcess(
            blocks=root / "blocks", retention="3650d", extra_args=no_compaction
        ) as prom:
            for name, given, aa in (
                ("discovered, no A/A", None, None),
                ("csv + A/A", releases, AAOptions(windows=aa_windows, splits=aa_splits)),
            ):
                seconds: list[float] = []
                last: BacktestRun | None = None
                queries = 0
                for _ in range(runs):
                    metrics = PrometheusMetrics(prom.url, timeout_s=60.0)
                    history = PrometheusHistory(metrics)
                    started = time.perf_counter()
                    last = run_backtest(
                        lane, history, since=since, until=until, releases=given, aa=aa
                    )
                    seconds.append(time.perf_counter() - started)
                    queries = history.queries
                    metrics.close()
                assert last is not None
                matched, total = _agreement(last, known)
                s = last.summary
                scenarios[name] = {
                    "releases": s.releases,
                    "aa_runs": s.aa_runs,
                    "queries": queries,
                    "median_s": round(statistics.median(seconds), 3),
                    "runs_s": [round(x, 3) for x in seconds],
                    "decisions_as_known": f"{matched}/{total}",
                    "false_rollback_rate": s.false_rollback_rate,
                    "missed_regression_rate": s.missed_regression_rate,
                    "promote_median_s": s.promote_median_s,
                    "undecided": sum(r.outcome is Outcome.UNDECIDED for r in last.results),
                    "known_bad": sum(1 for r in releases if r.expect is Expect.ROLLBACK),
                }
    slowest = max(v["median_s"] for v in scenarios.values())
    return {
        "days": days,
        "lane": lane.name,
        "interval": lane.spec.analysis.interval,
        "samples": samples,
        "max_points_per_query": DEFAULT_MAX_POINTS,
        "setup_s": {"generate": round(t1 - t0, 1), "promtool": round(t2 - t1, 1)},
        "scenarios": scenarios,
        "target_s": TARGET_S,
        "ok": slowest < TARGET_S if days >= 30 else None,
    }


def table(result: dict[str, Any]) -> str:
    head = (
        f"backtest of lane {result['lane']} (interval {result['interval']}) over "
        f"{result['days']:g} days: {result['samples']:,} samples; setup "
        f"{result['setup_s']['generate']}s history + {result['setup_s']['promtool']}s promtool"
    )
    lines = [
        head,
        f"{'scenario':<20} {'releases':>8} {'A/A':>5} {'queries':>8} {'median s':>9} "
        f"{'as known':>9} {'false rb':>9} {'missed':>7} {'promote':>8}",
    ]
    for name, s in result["scenarios"].items():
        frr = "-" if s["false_rollback_rate"] is None else f"{s['false_rollback_rate']:.1%}"
        missed = (
            "-" if s["missed_regression_rate"] is None else f"{s['missed_regression_rate']:.0%}"
        )
        promote = "-" if s["promote_median_s"] is None else f"{s['promote_median_s']:.0f}s"
        lines.append(
            f"{name:<20} {s['releases']:>8} {s['aa_runs']:>5} {s['queries']:>8} "
            f"{s['median_s']:>9.2f} {s['decisions_as_known']:>9} {frr:>9} {missed:>7} {promote:>8}"
        )
    if result["ok"] is not None:
        verdict = "within" if result["ok"] else "OVER"
        lines.append(f"target: {result['days']:g} days under {result['target_s']:.0f}s: {verdict}")
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=2) + "\n")
