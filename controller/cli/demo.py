"""``changelane demo``: the embedded end-to-end demonstration."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from controller.cli.extras import require_extra
from controller.demo.scenario import SCENARIOS


@click.command("demo")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the outcome of every release as JSON to this file.",
)
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the demo's hash-chained audit log here (default: a temp dir).",
)
@click.option(
    "--keep", is_flag=True, help="Leave the simulated cluster up afterwards and print a kubeconfig."
)
@click.option(
    "--metrics",
    type=click.Choice(["auto", "prometheus", "embedded"]),
    default="auto",
    show_default=True,
    help="auto: the real Prometheus when the binary is on PATH, else embedded.",
)
@click.option(
    "--scenario",
    type=click.Choice(sorted(SCENARIOS)),
    default="default",
    show_default=True,
    help="default: a good and a bad release; missing-provenance: Rejected; autonomy-off: "
    "Gated by the kill switch; flag-ramp: a flag ramped with the canary; lane-suspend: "
    "failures spend the autonomy budget.",
)
def demo(
    json_path: Path | None, audit_log: Path | None, keep: bool, metrics: str, scenario: str
) -> None:
    """Run the embedded demo: simulated cluster, controller, workload, Prometheus, and
    agent-authored releases (by default one promoted, one rolled back)."""
    require_extra("demo", "changelane demo")
    from controller.demo.runner import DemoOptions, run_demo  # the simulated cluster

    use = None if metrics == "auto" else metrics == "prometheus"
    try:
        result = run_demo(
            DemoOptions(scenario=scenario, audit_log=audit_log, keep=keep, use_prometheus=use)
        )
    except KeyboardInterrupt:
        click.echo("interrupted; everything the demo started has been stopped", err=True)
        sys.exit(130)
    if json_path is not None:
        json_path.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
        click.echo(f"wrote {json_path}")
    if not result.as_expected:
        click.echo("some releases did not end as expected", err=True)
        sys.exit(1)
