"""``changelane lanes``: validate lane declarations."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from controller import lane_reference
from controller.lanefiles import load_lanes


@click.group("lanes")
def lanes() -> None:
    """Work with ChangeLane declarations."""


@lanes.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Validate ChangeLane YAML files and directories; one line per problem."""
    loaded, problems = load_lanes(paths)
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(f"{len(problems)} problem(s); {len(loaded)} valid lane(s)", err=True)
        sys.exit(1)
    for lane in loaded:
        click.echo(f"ok  {lane.file}: document {lane.document}: lane {lane.lane.name}")


@lanes.command("reference")
def reference() -> None:
    """Print the lane authoring reference (Markdown), generated from the models."""
    click.echo(lane_reference.render(), nl=False)
