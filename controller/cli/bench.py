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


@bench.command("notify")
@click.option("--records", default=200, show_default=True, help="Decisions announced.")
@click.option("--quick", is_flag=True, help="A small slice (CI): 20 records.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path))
def notify(records: int, quick: bool, json_file: Path | None) -> None:
    """What announcing a decision costs the decision path, and how long delivery takes,
    with a healthy, a slow (0.3 s) and a dead webhook receiver on loopback."""
    from controller.bench import notify as notify_bench

    result = notify_bench.run(records=20 if quick else records)
    click.echo(notify_bench.render(result))
    if json_file is not None:
        json_file.write_text(json.dumps(result, indent=2) + "\n")


@bench.command("decisions")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Generated traces per family.",
)
@click.option("--quick", is_flag=True, help="A slice of the families (what CI runs).")
@click.option(
    "--traces",
    "traces_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Replay recorded traces (JSONL, see docs/judging.md) instead of generating them.",
)
@click.option(
    "--lane",
    "lane_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="With --traces: replay with this lane's steps, interval and checks.",
)
@click.option(
    "--noise-prior",
    type=click.Choice(["fixed", "history"]),
    default=None,
    help="Set the sequential checks' noisePrior. history: each generated release comes "
    "with the baseline's hour of history before it, and the judge's noise prior is "
    "estimated from it (with --traces: from each trace's history field). Default: as the "
    "lane declares it (the bench lane: fixed).",
)
@click.option(
    "--family",
    "families",
    multiple=True,
    help="Run only this generated family (repeatable).",
)
@click.option(
    "--canary-errors-x",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Run only the healthy families, with the canary making this many times the "
    "errors from the start (rows named family@xM). At 1.25, the bench lane's tolerance, "
    "their rollback rate is the judge's level at the boundary of its null.",
)
def decisions(
    json_path: Path | None,
    seed: int,
    count: int,
    quick: bool,
    traces_path: Path | None,
    lane_path: Path | None,
    noise_prior: str | None,
    families: tuple[str, ...],
    canary_errors_x: float | None,
) -> None:
    """Decision quality of changelane's analysis vs Flagger's and Argo Rollouts' defaults,
    per release, on generated noise families or on recorded traces."""
    require_extra("demo", "changelane bench")
    from controller.bench import decisions as bench_decisions

    if traces_path is not None and canary_errors_x is not None:
        raise click.UsageError("--canary-errors-x applies to the generated families, not --traces")
    if traces_path is not None:
        from controller.bench.replay import TraceFileError, replay

        try:
            result = replay(traces_path, lane_path, noise_prior)
        except TraceFileError as exc:
            raise click.ClickException(str(exc)) from exc
    elif lane_path is not None:
        raise click.UsageError("--lane needs --traces")
    elif canary_errors_x is not None and any(
        s.regression for s in bench_decisions.SCENARIOS if s.name in families
    ):
        raise click.UsageError("--canary-errors-x applies to the healthy families only")
    else:
        known = {s.name for s in bench_decisions.SCENARIOS}
        unknown = sorted(set(families) - known)
        if unknown:
            raise click.UsageError(
                f"--family: unknown {', '.join(unknown)}; expected one of "
                + ", ".join(sorted(known))
            )
        result = bench_decisions.run(
            traces=count,
            seed=seed,
            quick=quick,
            noise_prior=noise_prior or "fixed",
            only=families,
            canary_errors_x=canary_errors_x,
        )
    click.echo(bench_decisions.table(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        click.echo(f"wrote {json_path}")


@bench.command("limits")
@click.option(
    "--count",
    type=click.IntRange(min=100),
    default=3000,
    show_default=True,
    help="Traces per draw (five draws per case: regression, healthy, held-out healthy, "
    "and the twin at the tolerance with its held-out draw).",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--quick", is_flag=True, help="Each case's first two looks only (CI).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
def limits(count: int, seed: int, quick: bool, json_path: Path | None) -> None:
    """What any judge could do on the decision bench's noise: the oracle's detection power
    at a 1% false-rollback rate, and the one-pod bound (docs/judging.md)."""
    require_extra("demo", "changelane bench")
    from controller.bench import limits as bench_limits

    result = bench_limits.run(count=count, seed=seed, quick=quick)
    click.echo(bench_limits.table(result))
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


@bench.command("fencing")
@click.option(
    "--quick", is_flag=True, help="CI's slice: 3 rounds (one per fault) and 8 s of errors."
)
@click.option("--rounds", default=30, show_default=True, help="Fault rounds (2 in 3 freeze).")
@click.option("--error-seconds", default=30.0, show_default=True, help="50% API errors.")
@click.option("--seed", default=1, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
def fencing(
    quick: bool, rounds: int, error_seconds: float, seed: int, json_path: Path | None
) -> None:
    """Two controller processes, faults on the Lease renewal: does a replica that lost the
    Lease ever act? (exit 1 if it did)"""
    from controller.bench import fencing as bench_fencing

    if quick:
        rounds, error_seconds = 3, 8.0
    result = bench_fencing.run(rounds=rounds, error_seconds=error_seconds, seed=seed)
    click.echo(bench_fencing.table(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result.as_json(), indent=2) + "\n")
        click.echo(f"wrote {json_path}")
    if result.violations:
        sys.exit(1)


@bench.command("shards")
@click.option("--quick", is_flag=True, help="CI's slice: kill, add and 2 pauses.")
@click.option("--pauses", default=20, show_default=True, help="Shard owners frozen (SIGSTOP).")
@click.option("--shards", default=3, show_default=True, type=click.IntRange(2, 16))
@click.option("--seed", default=1, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
def shards(quick: bool, pauses: int, shards: int, seed: int, json_path: Path | None) -> None:
    """Three controller processes share the lanes over shard Leases; kill one, add one,
    freeze owners: does any release ever have two writers? (exit 1 if so)"""
    from controller.bench import sharding as bench_sharding

    if quick:
        pauses = 2
    result = bench_sharding.run(pauses=pauses, seed=seed, shards=shards)
    click.echo(bench_sharding.table(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result.as_json(), indent=2) + "\n")
        click.echo(f"wrote {json_path}")
    if result.violations:
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


@bench.command("controller")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--quick", is_flag=True, help="A small world (40 Deployments, 10 releases) that fits CI."
)
@click.option(
    "--replicas",
    default=1,
    show_default=True,
    type=click.IntRange(1, 8),
    help="More than 1: the same lanes on one replica with M releases, then on this many "
    "sharing them (--shards) with replicas x M releases (10k Deployments, M = 1k).",
)
@click.option(
    "--size",
    type=(click.IntRange(1), click.IntRange(1), click.IntRange(1), click.FloatRange(1)),
    default=None,
    metavar="DEPLOYMENTS RELEASES INTERVAL_S WINDOW_S",
    help="With --replicas: a world of this size instead of 10000 1000 30 150 "
    "(RELEASES per replica).",
)
def controller_scale(
    json_path: Path | None,
    quick: bool,
    replicas: int,
    size: tuple[int, int, int, float] | None,
) -> None:
    """`changelane run` at 1k/10k Deployments and 1k live releases on the simulated cluster."""
    from controller.bench import controller_scale as bench_controller

    if size is not None and replicas == 1:
        raise click.BadParameter("--size goes with --replicas 2 or more", param_hint="--size")
    world = bench_controller.Size(*size) if size is not None else None
    runs, failures = bench_controller.run(
        quick=quick, echo=click.echo, replicas=replicas, size=world
    )
    click.echo(bench_controller.table(runs))
    if json_path is not None:
        bench_controller.write_json(runs, json_path)
        click.echo(f"wrote {json_path}")
    for failure in failures:
        click.echo(f"FAILED: {failure}", err=True)
    if failures:
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
