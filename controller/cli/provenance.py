"""``changelane provenance check``: would this Deployment's pod template pass the lane's
provenance gates? For pipeline authors, before they apply it.

It reads the template's annotations and binds them to the template exactly as the
controller does when it records a release (``release_spec_from_template``) and evaluates
the same gates (``provenance_gate_results``). What it cannot know offline: the lane's
rolled-back releases (the ``history`` gate is evaluated against none, unless
``--rolled-back CHANGE`` names some), the kill switch, change windows and budget.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from controller import strict_yaml
from controller.core import canary as mech
from controller.core.gates.lane import provenance_gate_results, release_spec_from_template
from controller.core.models import LaneRelease
from controller.core.text import printable
from controller.lanefiles import load_lanes


@click.group("provenance")
def provenance() -> None:
    """Check release provenance the way the controller's gate does."""


def _fail(message: str) -> None:
    click.echo(f"error: {printable(message)}", err=True)
    sys.exit(2)


def _deployment(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {path}: {exc}")
    documents, problems = strict_yaml.load_documents(text)
    for problem in problems:
        where = f"{path}: document {problem.document}"
        _fail(f"{where}: {problem.path + ': ' if problem.path else ''}{problem.message}")
    for _, doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == "Deployment":
            template = (doc.get("spec") or {}).get("template")
            if not isinstance(template, dict):
                _fail(f"{path}: spec.template: expected a pod template")
            return doc
    _fail(f"{path}: expected a Deployment manifest (kind: Deployment)")
    raise AssertionError("unreachable")


@provenance.command("check")
@click.option("--lane", "lane_path", required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--previous",
    "previous_path",
    type=click.Path(exists=True, path_type=Path),
    help="The Deployment as it runs now: its template is the one this release replaces.",
)
@click.option(
    "--rolled-back",
    "rolled_back",
    multiple=True,
    help="A change reference the lane already rolled back (repeatable).",
)
@click.argument("manifest", type=click.Path(exists=True, path_type=Path))
def check(
    lane_path: Path, previous_path: Path | None, rolled_back: tuple[str, ...], manifest: Path
) -> None:
    """Would MANIFEST's pod template pass the lane's provenance gates? Prints every reason
    it would not; exit 0 (passes) or 1 (refused)."""
    lanes, problems = load_lanes([lane_path])
    if problems or len(lanes) != 1:
        for problem in problems:
            click.echo(str(problem), err=True)
        _fail(f"{lane_path}: expected exactly one valid ChangeLane")
    lane = lanes[0].lane
    deployment = _deployment(manifest)
    template = deployment["spec"]["template"]
    previous = _deployment(previous_path)["spec"]["template"] if previous_path else None
    meta = deployment.get("metadata") or {}
    spec = {
        "lane": lane.name,
        "target": {
            "name": str(meta.get("name") or "workload"),
            "namespace": str(meta.get("namespace") or "default"),
        },
        "from": {"images": mech.images(previous)} if previous else {},
        "to": {"podTemplateHash": mech.template_hash(template), "images": mech.images(template)},
        **release_spec_from_template(template, previous),
    }
    history = [_rolled_back_release(lane.name, spec, change) for change in rolled_back]
    try:
        release = LaneRelease.model_validate({"metadata": {"name": "check"}, "spec": spec})
    except ValidationError as exc:
        _fail(f"{manifest}: the release record would not be valid: {exc.errors()[0]['msg']}")
        raise AssertionError("unreachable") from None
    results = provenance_gate_results(lane, release.spec, history)
    for result in results:
        mark = "ok  " if result.passed else "FAIL"
        click.echo(printable(f"{mark} {result.gate}: {result.reason}"))
    refused = [r for r in results if not r.passed]
    verdict = "would be refused" if refused else "would pass"
    click.echo(f"{manifest}: {verdict} by lane {lane.name}'s provenance gates")
    sys.exit(1 if refused else 0)


def _rolled_back_release(lane: str, spec: dict[str, Any], change: str) -> LaneRelease:
    return LaneRelease.model_validate(
        {
            "metadata": {"name": "rolled-back"},
            "spec": {**spec, "lane": lane, "provenance": {"change": change}},
            "status": {"phase": "RolledBack"},
        }
    )
