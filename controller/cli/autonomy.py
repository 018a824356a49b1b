"""Earned autonomy from the command line: ``changelane autonomy set|reset``,
``changelane scorecard`` and the rows of ``changelane status --agents``.

``autonomy set`` pins an agent's level in a lane and ``autonomy reset`` sends it back to
the lane's entry level with fresh evidence; both only write the lane's
``status.agentPins`` (one entry per agent and model, the latest word wins). The controller
derives the levels, records the change with your identity and emits the Event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from controller.core.audit_query import AuditFilter, ReleaseSummary, iter_summaries, parse_since
from controller.core.autonomy.record import (
    outcome_of_release,
    outcome_of_summary,
    track_records,
)
from controller.core.autonomy.scorecard_view import (
    CANNOT_SEE,
    interval_text,
    percent,
    scorecard_rows,
)
from controller.core.formatting import iso_z, table
from controller.core.models import AutonomyLevel, ChangeLane, LaneRelease

_kubeconfig = click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    envvar="KUBECONFIG",
    help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster).",
)
_as = click.option("--as", "as_", metavar="IDENTITY", help="Who is acting (for the audit trail).")
_model = click.option(
    "--model", required=True, help="The agent's model the level applies to (levels are per model)."
)


@click.group("autonomy")
def autonomy() -> None:
    """Pin or reset an agent's autonomy level in a lane (lanes with agentAutonomy)."""


def _write_pin(
    lane: str,
    agent: str,
    model: str,
    level: AutonomyLevel | None,
    reason: str,
    kubeconfig: str | None,
    as_: str | None,
) -> str:
    from controller.adapters.kube.api import NotFoundError
    from controller.cli.control import Target, identity

    target = Target.connect(kubeconfig)
    who = identity(as_, kubeconfig)
    try:
        raw = target.api.get_lane(lane)
    except NotFoundError:
        raise click.ClickException(f"no ChangeLane named {lane!r}") from None
    parsed = ChangeLane.model_validate(raw)
    if parsed.spec.gates.agent_autonomy is None:
        raise click.ClickException(
            f"lane {lane} declares no spec.gates.agentAutonomy: every allowed agent has the "
            "lane's autonomy, there is no level to set"
        )
    pins = [
        p
        for p in (parsed.status.agent_pins if parsed.status else [])
        if (p.agent, p.model) != (agent, model)
    ]
    entry: dict[str, Any] = {
        "agent": agent,
        "model": model,
        "by": who,
        "at": iso_z(datetime.now(UTC)),
    }
    if level is not None:
        entry["level"] = level.value
    if reason:
        entry["reason"] = reason
    wire = [p.to_wire() for p in pins] + [entry]
    target.api.patch_lane_status(
        lane, {"agentPins": wire}, (raw.get("metadata") or {}).get("resourceVersion")
    )
    return who


@autonomy.command("set")
@click.argument("lane")
@click.argument("agent")
@click.argument("level", type=click.Choice([lvl.value for lvl in AutonomyLevel]))
@_model
@click.option("--reason", default="", help="Why (kept in the audit record).")
@_kubeconfig
@_as
def set_level(
    lane: str,
    agent: str,
    level: str,
    model: str,
    reason: str,
    kubeconfig: str | None,
    as_: str | None,
) -> None:
    """Pin AGENT (with --model) at LEVEL in LANE until `changelane autonomy reset`."""
    who = _write_pin(lane, agent, model, AutonomyLevel(level), reason, kubeconfig, as_)
    click.echo(f"{agent} ({model}) pinned at {level} in lane {lane} by {who}")


@autonomy.command("reset")
@click.argument("lane")
@click.argument("agent")
@_model
@click.option("--reason", default="", help="Why (kept in the audit record).")
@_kubeconfig
@_as
def reset_level(
    lane: str, agent: str, model: str, reason: str, kubeconfig: str | None, as_: str | None
) -> None:
    """Unpin AGENT (with --model) in LANE: back to the lane's entry level, fresh evidence."""
    who = _write_pin(lane, agent, model, None, reason, kubeconfig, as_)
    click.echo(f"{agent} ({model}) reset to the entry level of lane {lane} by {who}")


# --------------------------------------------------------------------------- scorecard


def _render(rows: list[dict[str, Any]]) -> Iterator[str]:
    headers = (
        "LANE",
        "AGENT",
        "MODEL",
        "RELEASES",
        "CHANGE FAILURE [95%]",
        "REWORK",
        "CONTAINED",
        "PROVENANCE",
        "DECISION (median)",
    )
    cells = [
        (
            r["lane"],
            r["agent"],
            r["model"] or "*",
            str(r["releases"]),
            interval_text(r),
            percent(r["rework_rate"]),
            percent(r["containment"]),
            percent(r["provenance_coverage"]),
            "-" if r["median_decision_seconds"] is None else f"{r['median_decision_seconds']:.0f}s",
        )
        for r in rows
    ]
    yield from table(headers, cells)


@click.command("scorecard")
@click.option("--lane", help="Only this lane.")
@click.option("--since", default="30d", show_default=True, help="30m, 1h, 2d, 1w or an ISO time.")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read a hash-chained audit log instead of the cluster.",
)
@click.option("--by-agent", is_flag=True, help="One row per agent (all models together).")
@click.option("--json", "as_json", is_flag=True)
@_kubeconfig
def scorecard(
    lane: str | None,
    since: str,
    file: Path | None,
    by_agent: bool,
    as_json: bool,
    kubeconfig: str | None,
) -> None:
    """Change-failure rate (with its interval), rework, containment, provenance coverage and
    time to decision per lane, agent and model: is autonomy paying off, and for whom?"""
    now = datetime.now(UTC)
    try:
        start = parse_since(since, now)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--since") from None
    if file is not None:
        from controller.adapters.audit.source import FileAuditSource

        flt = AuditFilter(since=start, lane=lane)
        items = iter_summaries(FileAuditSource(file).records(since=start), flt)
        outcomes = [outcome_of_summary(s) for s in items if isinstance(s, ReleaseSummary)]
        source = str(file)
    else:
        from controller.cli.control import Target, _releases

        api = Target.connect(kubeconfig).api
        releases = [r for r in _releases(api, None) if lane is None or r.spec.lane == lane]
        outcomes = [outcome_of_release(r) for r in releases]
        outcomes = [o for o in outcomes if o.seen_at >= start]
        source = "the cluster's LaneReleases"
    rows = scorecard_rows(track_records(outcomes, by_model=not by_agent).values())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "since": iso_z(start),
                    "source": source,
                    "rows": rows,
                    "cannot_see": list(CANNOT_SEE),
                },
                indent=2,
            )
        )
        return
    if not rows:
        click.echo(f"no releases since {iso_z(start)} in {source}")
    else:
        for line in _render(rows):
            click.echo(line)
    click.echo("")
    click.echo(
        f"source: {source}, since {iso_z(start)}. Not visible here: " + "; ".join(CANNOT_SEE)
    )


def agent_rows(lanes: list[ChangeLane], releases: list[LaneRelease]) -> Iterator[str]:
    """``changelane status --agents``: each author's level and track record per lane."""
    records = track_records(outcome_of_release(r) for r in releases)
    headers = (
        "LANE",
        "AGENT",
        "MODEL",
        "LEVEL",
        "PINNED BY",
        "RELEASES",
        "CHANGE FAILURE [95%]",
        "WHY",
    )
    cells = []
    for lane in lanes:
        standings = {(a.agent, a.model): a for a in (lane.status.agents if lane.status else [])}
        keys = sorted({(k[1], k[2] or "") for k in records if k[0] == lane.name} | set(standings))
        for agent, model in keys:
            rec = records.get((lane.name, agent, model))
            row = scorecard_rows([rec])[0] if rec else None
            st = standings.get((agent, model))
            level = (
                st.level.value
                if st
                else (
                    "autonomous"
                    if lane.spec.gates.agent_autonomy is None
                    else lane.spec.gates.agent_autonomy.entry_level.value
                )
            )
            cells.append(
                (
                    lane.name,
                    agent,
                    model,
                    level,
                    (st.pinned_by if st else None) or "-",
                    str(rec.shipped) if rec else "0",
                    interval_text(row) if row else "-",
                    (st.reason if st else "") or "-",
                )
            )
    if not cells:
        yield "no agent has shipped in these lanes yet"
        return
    yield from table(headers, cells)
