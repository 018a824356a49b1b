"""``changelane crds``: print, write or check the generated CRDs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from controller import crds as generator


@click.command("crds")
@click.option(
    "--check",
    "check_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Exit non-zero and show the difference when DIR differs from the models.",
)
@click.option(
    "--write",
    "write_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the CRDs into DIR (one file per CRD).",
)
def crds(check_dir: Path | None, write_dir: Path | None) -> None:
    """Print the CustomResourceDefinitions generated from the models."""
    if check_dir is not None:
        diffs = generator.check(check_dir)
        if diffs:
            for diff in diffs:
                click.echo(diff, nl=False)
            click.echo(
                f"CRDs in {check_dir} are out of date; regenerate with "
                f"`changelane crds --write {check_dir}`",
                err=True,
            )
            sys.exit(1)
        click.echo(f"CRDs in {check_dir} match the models")
        return
    if write_dir is not None:
        for path in generator.write(write_dir):
            click.echo(f"wrote {path}")
        return
    click.echo(generator.render_all(), nl=False)
