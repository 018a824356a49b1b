"""``changelane demo``: the embedded end-to-end demonstration."""

from __future__ import annotations

import sys

import click


@click.command("demo")
def demo() -> None:
    """Run the embedded demo (simulated cluster, controller, Prometheus, two releases)."""
    click.echo(
        "changelane demo is not implemented yet: it lands with the operator runtime "
        "(issue 5). Try `changelane lanes validate lanes/` meanwhile.",
        err=True,
    )
    sys.exit(2)
