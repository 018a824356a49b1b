"""``changelane audit``: what changed, why it was rolled back, and is the log intact.

Records come from a source: ``--file LOG`` (the hash-chained audit log) or, by default or
with ``--cluster``, the cluster (LaneReleases, their status and Events; see
``controller.adapters.audit.cluster``). The queries themselves are pure
(``controller.core.audit_query``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import click

from controller.adapters.audit.log import Problem, verify
from controller.adapters.audit.segments import ANCHOR_NAME, Head, verify_segments
from controller.adapters.audit.source import AuditSource, FileAuditSource
from controller.cli.extras import require_extra
from controller.core.audit import AuditRecord, Evidence, step_text
from controller.core.audit_query import (
    AuditFilter,
    LaneEvent,
    Outcome,
    ReleaseSummary,
    iter_summaries,
    parse_since,
    release_timeline,
)
from controller.core.formatting import Columns, human_time
from controller.core.outcomes import parse_outcome
from controller.core.text import printable

EXIT_DAMAGED = 1
EXIT_TRUNCATED = 3  # only the last line is torn: a crash mid-write, not tampering
_SHOW_EVIDENCE_FOR = frozenset(
    {Outcome.ROLLED_BACK, Outcome.ROLLING_BACK, Outcome.REJECTED, Outcome.GATED, Outcome.PAUSED}
)


def _source(
    file: Path | None, cluster: bool, kubeconfig: str | None, namespace: str | None = None
) -> AuditSource:
    if file is not None and cluster:
        raise click.UsageError("read either --file LOG or --cluster, not both")
    if file is not None:
        return FileAuditSource(file)
    # Imported here: the kubernetes client is slow to import and --file does not need it.
    from controller.adapters.audit.cluster import ClusterAuditSource
    from controller.adapters.kube.api import KubeApi
    from controller.adapters.kube.client import KubeconfigError, api_client

    try:
        client = api_client(kubeconfig)
    except (KubeconfigError, OSError) as err:
        raise click.UsageError(
            f"no --file given and no cluster to read: cannot load a kubeconfig ({err})"
        ) from None
    return ClusterAuditSource(
        KubeApi(client), namespace=namespace, name=f"the cluster at {client.configuration.host}"
    )


def _records(source: AuditSource, since: datetime | None = None) -> Iterator[AuditRecord]:
    """The source's records; a cluster that cannot be read is one clear line, exit 1."""
    try:
        yield from source.records(since=since)
    except Exception as err:  # API errors, connection refused, ...
        if isinstance(source, FileAuditSource):
            raise
        click.echo(f"error: cannot read {source.name}: {err}", err=True)
        sys.exit(EXIT_DAMAGED)


def _warn(source: AuditSource) -> None:
    for warning in source.warnings():
        click.echo(f"warning: {warning}", err=True)


_file_option = click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A hash-chained audit log (JSON lines).",
)
_cluster_option = click.option(
    "--cluster",
    is_flag=True,
    help="Read the cluster's LaneReleases and Events (the default without --file).",
)
_kubeconfig_option = click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    envvar="KUBECONFIG",
    help="With the cluster source: kubeconfig (default $KUBECONFIG, ~/.kube/config).",
)


def _outcome(value: str | None) -> Outcome | None:
    try:
        return parse_outcome(value) if value else None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--outcome") from None


@click.group("audit", invoke_without_command=True)
@_file_option
@_cluster_option
@_kubeconfig_option
@click.option("--since", help="Only activity since: 30m, 1h, 2d, 1w or an ISO time.")
@click.option("--lane")
@click.option("--namespace")
@click.option("--workload")
@click.option("--agent", help="Provenance agent identity.")
@click.option(
    "--outcome",
    callback=lambda _ctx, _param, value: _outcome(value),
    help=f"One of {', '.join(o.value for o in Outcome)} (rolled_back etc. also accepted).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per release.")
@click.pass_context
def audit(
    ctx: click.Context,
    file: Path | None,
    cluster: bool,
    kubeconfig: str | None,
    since: str | None,
    lane: str | None,
    namespace: str | None,
    workload: str | None,
    agent: str | None,
    outcome: Outcome | None,
    as_json: bool,
) -> None:
    """What changed, and why was it rolled back? One line per release, newest last.

    \b
    changelane audit --file LOG --since 1h
    changelane audit --file LOG --since 1h --outcome RolledBack --json
    changelane audit --cluster --since 1h          (no --file: the cluster is read)
    changelane audit show RELEASE --file LOG [--plot release.png]
    changelane audit verify LOG
    """
    if ctx.invoked_subcommand is not None:
        return
    source = _source(file, cluster, kubeconfig, namespace)
    try:
        start = parse_since(since, datetime.now(UTC)) if since else None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--since") from None
    flt = AuditFilter(
        since=start,
        lane=lane,
        namespace=namespace,
        workload=workload,
        agent=agent,
        outcome=outcome,
    )
    items = run_query(source, flt)
    lines = render_json(items) if as_json else render_table(items, source.name)
    for text in lines:  # streamed: a huge answer is never held whole
        click.echo(printable(text, allow="\n"))
    _warn(source)


def run_query(source: AuditSource, flt: AuditFilter) -> Iterator[ReleaseSummary | LaneEvent]:
    """The on-call query as the command runs it (the benchmark times this)."""
    return iter_summaries(_records(source, flt.since), flt)


# --------------------------------------------------------------------------- rendering


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _evidence_line(e: Evidence) -> str:
    parts = [f"{e.check} {e.verdict}", f"canary={_num(e.canary)}", f"baseline={_num(e.baseline)}"]
    parts.append(f"threshold={_num(e.threshold)}")
    if e.statistic:
        parts.append(e.statistic)
    return "  ".join(parts)


def _reason(summary: ReleaseSummary) -> str:
    return f"{summary.reason}: {summary.message}" if summary.message else summary.reason


def render_json(items: Iterable[ReleaseSummary | LaneEvent]) -> Iterator[str]:
    """A JSON array, one object per release, written object by object."""
    first = True
    for item in items:
        if isinstance(item, ReleaseSummary):
            yield ("[\n" if first else ",\n") + json.dumps(item.as_json(), indent=2)
            first = False
    yield "[]" if first else "\n]"


TABLE_HEADERS = ("TIME (UTC)", "RELEASE", "LANE", "WORKLOAD", "AGENT", "OUTCOME", "REASON")
TABLE_SIZING_ROWS = 500  # column widths come from the first rows; later ones just follow


def _row(s: ReleaseSummary) -> tuple[str, ...]:
    workload = f"{s.namespace or '-'}/{s.workload or '-'}"
    return (
        human_time(s.last_time),
        s.release,
        s.lane,
        workload,
        s.provenance.agent or "-",
        s.outcome.value,
        _reason(s),
    )


def render_table(items: Iterable[ReleaseSummary | LaneEvent], source_name: str) -> Iterator[str]:
    """One line per release (newest last, still-open ones at the end), the evidence under
    each one that did not go through, lane events in between, and a tally."""
    iterator = iter(items)
    head: list[ReleaseSummary | LaneEvent] = []
    for item in iterator:
        head.append(item)
        if len(head) >= TABLE_SIZING_ROWS:
            break
    columns = Columns(TABLE_HEADERS[:-1], [_row(i) for i in head if isinstance(i, ReleaseSummary)])
    line = columns.line
    widths = columns.widths
    yield line(TABLE_HEADERS)
    counts: dict[str, int] = {}
    for item in [*head, *iterator]:
        if isinstance(item, LaneEvent):
            message = f": {item.message}" if item.message else ""
            yield (
                f"{human_time(item.time)}  lane {item.lane}: {item.decision.value} by {item.actor}"
                f" ({item.reason}{message})"
            )
            continue
        counts[item.outcome.value] = counts.get(item.outcome.value, 0) + 1
        yield line(_row(item))
        if item.outcome in _SHOW_EVIDENCE_FOR:
            for e in item.evidence:
                yield " " * (widths[0] + 2) + "└ " + _evidence_line(e)
    tally = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "none"
    yield f"{sum(counts.values())} release(s) ({tally}) in {source_name}"


# Complexity D by design: one line per optional field of a release's timeline, in display order.
def _describe_timeline(records: list[AuditRecord]) -> Iterator[str]:
    last = records[-1]
    prov = last.provenance
    where = f"{last.namespace or '-'}/{last.workload or '-'}"
    yield f"release {last.release}  lane {last.lane}  {where}"
    who = prov.agent or "unknown agent"
    if prov.model:
        who += f" ({prov.model})"
    yield (
        f"  by {who}  change {prov.change or '-'}  tests {prov.tests or '-'}"
        f"  reviewer {prov.reviewer or '-'}"
    )
    if last.from_images or last.to_images:
        images = f"{', '.join(last.from_images) or '-'} -> {', '.join(last.to_images) or '-'}"
        yield f"  images {images}"
    for record in records:
        position = []
        if record.phase_to and record.phase_to != record.phase_from:
            position.append(f"{record.phase_from or '-'} -> {record.phase_to}")
        step = step_text(record.step, record.steps)
        if step is not None:
            position.append(step)
        if record.weight is not None:
            position.append(f"weight {record.weight}%")
        text = f"{human_time(record.time)}  {record.decision.value:<14} {', '.join(position):<28} "
        text += record.reason + (f": {record.message}" if record.message else "")
        if record.actor != "controller":
            text += f"  (by {record.actor})"
        yield text.rstrip()
        if record.actions:
            result = f" -> {record.result}" if record.result else ""
            yield f"    actions: {'; '.join(record.actions)}{result}"
        for e in record.evidence:
            yield "    " + _evidence_line(e)


@audit.command("show")
@click.argument("release")
@_file_option
@_cluster_option
@_kubeconfig_option
@click.option(
    "--plot",
    "plot_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Draw canary vs baseline per check, with threshold and decision point (PNG).",
)
@click.option("--json", "as_json", is_flag=True, help="The release's records as JSON.")
def show(
    release: str,
    file: Path | None,
    cluster: bool,
    kubeconfig: str | None,
    plot_file: Path | None,
    as_json: bool,
) -> None:
    """The timeline of one release, with every measurement."""
    if plot_file is not None:
        require_extra("plot", "changelane audit show --plot")
    source = _source(file, cluster, kubeconfig)
    records = list(release_timeline(_records(source), release))
    _warn(source)
    if not records:
        click.echo(f"release {release!r} not found in {source.name}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps([r.model_dump(mode="json", exclude_none=True) for r in records]))
    else:
        for text in _describe_timeline(records):
            click.echo(printable(text, allow="\n"))
    if plot_file is not None:
        from controller.adapters.audit.plot import plot_release  # matplotlib is slow to import

        if plot_release(records, plot_file):
            click.echo(f"plot written to {plot_file}", err=True)
        else:
            click.echo(f"release {release!r} has no measurements to plot", err=True)
            sys.exit(1)


@audit.command("verify")
@click.argument(
    "segments",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--cluster",
    is_flag=True,
    help="Also compare the chain's end with the head the leaders anchored in the cluster "
    "(catches a cut tail and appended records).",
)
@_kubeconfig_option
@click.option(
    "--anchor-namespace",
    default="changelane-system",
    show_default=True,
    help="Namespace of the anchor ConfigMap (the controller's).",
)
@click.option("--anchor", "anchor_name", default=ANCHOR_NAME, show_default=True)
def verify_command(
    segments: tuple[Path, ...],
    cluster: bool,
    kubeconfig: str | None,
    anchor_namespace: str,
    anchor_name: str,
) -> None:
    """Check the hash chain of an audit log, or of several segments as one chain.

    SEGMENTS are audit log files (one per replica, and their finished segments
    audit.jsonl.<seq>) and/or controller JSON logs (`kubectl logs`), whose audit_line
    events carry the same lines. Exit 0 when intact, 1 naming the first problem, 3 when a
    single log's only problem is a torn last line (a crash in the middle of a write).
    """
    if len(segments) == 1 and not cluster:
        log = segments[0]
        result = verify(log)
        if result.first_bad is None:
            click.echo(
                f"ok: {log}: {result.records} record(s), chain intact; head seq "
                f"{result.head_seq} hash {result.head_hash}"
            )
            return
        click.echo(
            f"{log}: {result.first_bad} ({result.records} record(s) before it intact)", err=True
        )
        sys.exit(EXIT_TRUNCATED if result.first_bad.problem is Problem.TRUNCATED else EXIT_DAMAGED)
    anchored = None
    if cluster:
        anchored = _anchored_head(kubeconfig, anchor_namespace, anchor_name)
    checked = verify_segments(segments, anchored)
    for warning in checked.warnings:
        click.echo(f"warning: {warning}", err=True)
    where = f"{len(segments)} segment(s)"
    if not checked.ok:
        for problem in checked.problems:
            click.echo(f"{where}: {problem}", err=True)
        sys.exit(EXIT_DAMAGED)
    vouched = f"; matches the anchored head in {anchor_namespace}/{anchor_name}" if cluster else ""
    click.echo(
        f"ok: {where}: {checked.records} record(s), one chain; head seq {checked.head.seq} "
        f"hash {checked.head.hash}{vouched}"
    )


def _anchored_head(kubeconfig: str | None, namespace: str, name: str) -> Head:
    from controller.adapters.audit.anchor import AuditAnchor
    from controller.adapters.kube.api import KubeApi
    from controller.adapters.kube.client import api_client

    try:
        api = KubeApi(api_client(kubeconfig))
        head = AuditAnchor(api, namespace, name).read()
    except Exception as err:
        raise click.ClickException(f"cannot read the anchored head: {err}") from None
    if head is None:
        raise click.ClickException(
            f"no anchored head: ConfigMap {namespace}/{name} is missing or has no seq/hash"
        )
    return head
