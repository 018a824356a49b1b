"""``changelane lanes backtest``: what a lane would have done with past releases.

Exit codes: 0 done (and within ``--max-false-rollback`` when given), 1 the gate failed,
2 bad input or an unusable Prometheus (the message names the file, row, check or server).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from controller.backtest.engine import AAOptions, BacktestError, run_backtest
from controller.backtest.releases import parse_releases_csv, parse_time
from controller.backtest.replay import Outcome
from controller.backtest.report import document, gate, table
from controller.lanefiles import load_lanes

_AGO = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def when(text: str, now: datetime) -> datetime:
    """``30d``/``12h``/``1d6h`` before ``now``, or an ISO-8601 time with a zone."""
    match = _AGO.fullmatch(text.strip())
    if match and any(match.groups()):
        w, d, h, m, s = (int(g) if g else 0 for g in match.groups())
        return now - timedelta(weeks=w, days=d, hours=h, minutes=m, seconds=s)
    try:
        return parse_time(text)
    except ValueError:
        raise click.BadParameter(
            f"expected a duration before now (30d, 12h) or an ISO-8601 time, got {text!r}"
        ) from None


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.command("backtest")
@click.argument("lane_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--prometheus", "url", required=True, help="Prometheus base URL with the history.")
@click.option("--since", default="30d", show_default=True, help="Start: 30d ago, or ISO time.")
@click.option("--until", default=None, help="End: ISO time or a duration ago [default: now].")
@click.option(
    "--releases",
    "releases_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV namespace,workload,start,end,expect; default: discover from kube-state-metrics.",
)
@click.option("--workload", default=None, help="Only releases of this Deployment.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--max-false-rollback",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="CI gate: exit 1 when the false-rollback estimate is above this.",
)
@click.option("--aa/--no-aa", default=True, show_default=True, help="Run the A/A backtest.")
@click.option("--aa-windows", default=30, show_default=True, help="Healthy windows per workload.")
@click.option("--aa-splits", default=10, show_default=True, help="Pod splits per window.")
@click.option("--aa-canary-pods", default=1, show_default=True, help="Pods in a pretend canary.")
@click.option("--seed", default=1, show_default=True, help="Seed of the pod splits.")
@click.option("--max-points", default=10_000, show_default=True, help="Points per range query.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds per request.")
@click.option("--concurrency", default=4, show_default=True, help="Requests in flight at once.")
def backtest(
    lane_file: Path,
    url: str,
    since: str,
    until: str | None,
    releases_file: Path | None,
    workload: str | None,
    json_file: Path | None,
    plot_dir: Path | None,
    max_false_rollback: float | None,
    aa: bool,
    aa_windows: int,
    aa_splits: int,
    aa_canary_pods: int,
    seed: int,
    max_points: int,
    timeout: float,
    concurrency: int,
) -> None:
    """Replay LANE_FILE's lane over past releases in a Prometheus's history."""
    from controller.adapters.metrics.prometheus import PrometheusMetrics
    from controller.adapters.metrics.prometheus_range import PrometheusHistory

    loaded, problems = load_lanes([lane_file])
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems or len(loaded) != 1:
        _fail(
            f"{lane_file}: expected exactly one valid ChangeLane, found {len(loaded)} valid "
            f"and {len(problems)} problem(s)"
        )
    lane = loaded[0].lane
    now = datetime.now(UTC)
    start = when(since, now)
    end = when(until, now) if until else now
    releases = None
    bad_rows = 0
    if releases_file is not None:
        releases, row_problems = parse_releases_csv(
            releases_file.read_text(encoding="utf-8", errors="replace"), str(releases_file)
        )
        for row in row_problems:
            click.echo(f"error: {row}", err=True)
        bad_rows = len(row_problems)
    metrics = PrometheusMetrics(url, timeout_s=timeout)
    history = PrometheusHistory(metrics, max_points=max_points)
    options = (
        AAOptions(windows=aa_windows, splits=aa_splits, canary_pods=aa_canary_pods, seed=seed)
        if aa
        else None
    )
    try:
        run = run_backtest(
            lane,
            history,
            since=start,
            until=end,
            releases=releases,
            workload=workload,
            aa=options,
            concurrency=max(1, concurrency),
        )
    except BacktestError as exc:
        _fail(str(exc))
        return
    finally:
        metrics.close()
    steps = len(lane.spec.strategy.steps)
    click.echo(table(run.results, run.aa, run.summary, steps))
    if json_file is not None:
        json_file.write_text(json.dumps(document(run.results, run.aa, run.summary), indent=2))
        click.echo(f"wrote {json_file}")
    if plot_dir is not None:
        from controller.backtest.plot import plot_releases

        written = plot_releases(run.results, plot_dir)
        click.echo(f"wrote {len(written)} plot(s) to {plot_dir}")
    if all(r.outcome is Outcome.NO_DATA for r in run.results):
        _fail(
            f"no data: none of the {len(run.results)} release(s) had a point for lane "
            f"{lane.name}'s queries at {url}; check that the labels they select "
            f"(namespace, workload, track, revision) exist in this history"
        )
    if bad_rows:
        _fail(f"{releases_file}: {bad_rows} bad row(s) skipped (see above)")
    if max_false_rollback is not None:
        ok, why = gate(run.summary, max_false_rollback)
        click.echo(("PASS: " if ok else "FAIL: ") + why)
        if not ok:
            sys.exit(1)
