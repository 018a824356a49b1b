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


@bench.command("fuzz")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--lanes", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--annotations", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--quick", is_flag=True, help="A small slice (500 lanes, 500 annotation maps).")
def fuzz(json_path: Path | None, seed: int, lanes: int, annotations: int, quick: bool) -> None:
    """Hostile and broken lanes, annotation maps and PromQL injections: crashes, wrong
    accepts and the worst parse time (exit 1 on any crash or wrong accept)."""
    from controller.bench import fuzz as bench_fuzz

    if quick:
        lanes, annotations = min(lanes, 500), min(annotations, 500)
    result = bench_fuzz.run(lanes=lanes, annotations=annotations, seed=seed)
    click.echo(bench_fuzz.table(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        click.echo(f"wrote {json_path}")
    if result["crashes"] or result["wrong_accepts"]:
        sys.exit(1)
