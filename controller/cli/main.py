"""Entry point of the ``changelane`` command.

Each command group lives in its own module and is registered here, so adding a command
touches one line of this file.
"""

from __future__ import annotations

import click

from controller import __version__
from controller.cli import (
    audit,
    autonomy,
    backtest,
    bench,
    chart,
    control,
    crds,
    dashboard,
    demo,
    lanes,
    provenance,
    run,
    sim_cluster,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="changelane")
def cli() -> None:
    """Ship agent-authored releases inside declared low-risk lanes, safely."""


cli.add_command(crds.crds)
cli.add_command(lanes.lanes)
cli.add_command(provenance.provenance)
cli.add_command(demo.demo)
cli.add_command(chart.chart)
cli.add_command(sim_cluster.sim_cluster)
cli.add_command(audit.audit)
cli.add_command(bench.bench)
cli.add_command(run.run)
cli.add_command(dashboard.dashboard)
cli.add_command(autonomy.autonomy)
cli.add_command(autonomy.scorecard)
for verb in (control.status, *control.VERBS):
    cli.add_command(verb)
lanes.lanes.add_command(control.lanes_resume)
lanes.lanes.add_command(backtest.backtest)


def main() -> None:
    cli()
