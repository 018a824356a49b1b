"""``changelane chart``: keep the Helm chart's generated parts in sync with the models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from controller import chartschema


@click.group("chart")
def chart() -> None:
    """Generated parts of the Helm chart."""


@chart.command("values-schema")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=chartschema.DEFAULT_PATH,
    show_default=True,
)
@click.option("--write", is_flag=True, help="Regenerate the lane definitions in place.")
@click.option("--check", is_flag=True, help="Exit 1 with a diff when the file is out of date.")
def values_schema(path: Path, write: bool, check: bool) -> None:
    """The lane definitions (ChangeLane.*) of the chart's values.schema.json."""
    if write:
        chartschema.write(path)
        click.echo(f"wrote {path}")
        return
    diff = chartschema.check(path)
    if check:
        if diff:
            click.echo(diff, nl=False)
            click.echo(
                f"{path} is out of date; regenerate with "
                f"`changelane chart values-schema --write --file {path}`",
                err=True,
            )
            sys.exit(1)
        click.echo(f"{path} matches the lane models")
        return
    click.echo(chartschema.render(json.loads(path.read_text(encoding="utf-8"))), nl=False)
