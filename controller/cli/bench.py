"""``changelane bench``: benchmarks that print a table and write JSON with ``--json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from controller.cli.extras import require_extra


@click.group("bench")
def bench() -> None:
    """Measure speed, memory and decision quality (print a table; --json FILE writes them)."""


@bench.command("audit")
@click.option("--records", default=100_000, show_default=True, help="Audit log length.")
@click.option("--runs", default=5, show_default=True, help="Timed runs per measurement.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path))
def audit(records: int, runs: int, json_file: Path | None) -> None:
    """'What changed in the last hour and why was it rolled back?' on a long audit log."""
    require_extra("demo", "changelane bench")
    from controller.bench import audit as audit_bench

    result = audit_bench.run(records=records, runs=runs)
    click.echo(audit_bench.render(result))
    if json_file is not None:
        json_file.write_text(json.dumps(result, indent=2) + "\n")


@bench.command("decisions")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--traces", type=click.IntRange(min=1), default=200, show_default=True)
def decisions(json_path: Path | None, seed: int, traces: int) -> None:
    """Decision quality of changelane's analysis vs Flagger's and Argo Rollouts' defaults."""
    require_extra("demo", "changelane bench")
    from controller.bench import decisions as bench_decisions

    result = bench_decisions.run(traces=traces, seed=seed)
    click.echo(bench_decisions.table(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        click.echo(f"wrote {json_path}")


@bench.command("sim-cluster")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seconds", default=2.0, show_default=True, help="Duration of each rate test.")
@click.option("--deployments", default=10_000, show_default=True, help="Deployments for memory.")
@click.option("--watchers", default=50, show_default=True)
@click.option("--events", default=200, show_default=True)
def sim_cluster(
    json_path: Path | None, seconds: float, deployments: int, watchers: int, events: int
) -> None:
    """Requests/s, 1,000-object list latency, watch fan-out and memory of the simulated cluster."""
    require_extra("demo", "changelane bench")
    from controller.bench import sim_cluster as bench_sim

    results = bench_sim.run(
        seconds=seconds, memory_deployments=deployments, watchers=watchers, events=events
    )
    click.echo(bench_sim.table(results))
    if json_path is not None:
        bench_sim.write_json(results, json_path)
        click.echo(f"wrote {json_path}")
    if any(r.ok is False for r in results):
        sys.exit(1)


@bench.command("backtest")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--days", default=30.0, show_default=True, help="Days of history.")
@click.option("--runs", default=3, show_default=True, help="Timed runs per scenario.")
@click.option("--aa-windows", default=30, show_default=True)
@click.option("--aa-splits", default=10, show_default=True)
@click.option("--quick", is_flag=True, help="CI slice: 2 days, one run, a small A/A.")
def backtest(
    json_path: Path | None, days: float, runs: int, aa_windows: int, aa_splits: int, quick: bool
) -> None:
    """A lane backtested over days of history on a real Prometheus (target: 30 days < 1 min)."""
    from controller.bench import backtest as bench_backtest

    if quick:
        days, runs, aa_windows, aa_splits = 2.0, 1, 3, 3
    result = bench_backtest.run(days=days, runs=runs, aa_windows=aa_windows, aa_splits=aa_splits)
    click.echo(bench_backtest.table(result))
    if json_path is not None:
        bench_backtest.write_json(result, json_path)
        click.echo(f"wrote {json_path}")
    if result["ok"] is False:
        sys.exit(1)
