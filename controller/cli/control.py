"""Control verbs for on-call: ``status``, ``promote``, ``abort``, ``pause``, ``resume`` and
``lanes resume``.

A verb never changes a release's status itself: it leaves the annotation
``changelane.dev/command: "<verb> by <identity>"`` on the LaneRelease, and the controller
turns it into a decision recorded with that identity (audit record, Event, status), or
ignores it when it no longer applies. ``lanes resume`` writes the lane's status
(``suspended: false``, ``resumedAt``, ``resumedBy``); the controller records it as
``lane_resumed``. Identity: ``--as``, else the kubeconfig context's user, else ``$USER``.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

import click
import urllib3
from pydantic import ValidationError

from controller.adapters.kube.api import ApiError, ConflictError, JsonDict, KubeApi, NotFoundError
from controller.adapters.kube.client import KubeconfigError, api_client, kubeconfig_user
from controller.core.commands import COMMAND_ANNOTATION, encode_command
from controller.core.formatting import iso_z, table
from controller.core.models import ChangeLane, LaneRelease, Measurement, Phase
from controller.core.release_machine import CommandKind
from controller.core.text import printable

EXIT_NOT_FOUND = 1
EXIT_NOT_APPLIED = 2
MAX_IDENTITY = 253
FINISHED_SHOWN = 10  # finished releases listed by a bare ``status`` (all with --json)

#: Phases in which each verb does something (mirrors the release state machine).
APPLIES: dict[CommandKind, frozenset[Phase]] = {
    CommandKind.PROMOTE: frozenset({Phase.PROGRESSING, Phase.PAUSED}),
    CommandKind.ABORT: frozenset({Phase.PENDING, Phase.GATED, Phase.PROGRESSING, Phase.PAUSED}),
    CommandKind.PAUSE: frozenset({Phase.PENDING, Phase.GATED, Phase.PROGRESSING}),
    CommandKind.RESUME: frozenset({Phase.PAUSED}),
}


# --------------------------------------------------------------------------- plumbing


@dataclass
class Target:
    api: KubeApi
    kubeconfig: str | None

    @classmethod
    def connect(cls, kubeconfig: str | None) -> Target:
        try:
            return cls(KubeApi(api_client(kubeconfig)), kubeconfig)
        except (KubeconfigError, OSError) as err:
            raise click.ClickException(f"cannot load a kubeconfig: {err}") from None


def identity(as_: str | None, kubeconfig: str | None) -> str:
    """Who is acting: ``--as``, the kubeconfig context's user, or the login name."""
    if as_ and as_.strip():
        who = as_.strip()
    else:
        who = kubeconfig_user(kubeconfig) or os.environ.get("USER") or getpass.getuser()
    if not who.isprintable() or len(who) > MAX_IDENTITY:
        raise click.BadParameter(
            "expected a printable name of at most 253 characters", param_hint="--as"
        )
    return who


def _options(fn: Any) -> Any:
    fn = click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False),
        envvar="KUBECONFIG",
        help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster).",
    )(fn)
    return click.option(
        "-n", "--namespace", help="Namespace of the release (default: search all)."
    )(fn)


def find_release(api: KubeApi, name: str, namespace: str | None) -> JsonDict:
    """The LaneRelease named ``name``; exits 1 with a clear message when there is none or
    the name is ambiguous across namespaces."""
    if namespace:
        try:
            return api.get_release(namespace, name)
        except NotFoundError:
            _fail(f"no LaneRelease named {name!r} in namespace {namespace!r}")
    found = [r for r in api.list_releases() if (r.get("metadata") or {}).get("name") == name]
    if not found:
        _fail(f"no LaneRelease named {name!r} in any namespace")
    if len(found) > 1:
        where = ", ".join(sorted(str(r["metadata"].get("namespace")) for r in found))
        _fail(f"LaneRelease {name!r} exists in several namespaces ({where}); pick one with -n")
    return found[0]


class _FriendlyCommand(click.Command):
    """API failures become one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConflictError:
            _fail("the object changed while we wrote it; run the command again", EXIT_NOT_APPLIED)
        except ApiError as err:
            hint = " (does your identity have RBAC for changelane.dev?)"
            hint = hint if err.status == 403 else ""
            _fail(f"the API server said {err.status} {err.reason}{hint}", EXIT_NOT_APPLIED)
        except BrokenPipeError:
            raise  # the reader went away (`| head`): click exits quietly
        except (urllib3.exceptions.HTTPError, OSError) as err:
            _fail(f"cannot reach the API server: {err}", EXIT_NOT_APPLIED)


def _fail(message: str, code: int = EXIT_NOT_FOUND) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _parse_release(raw: JsonDict) -> LaneRelease:
    try:
        return LaneRelease.model_validate(raw)
    except ValidationError as err:
        meta = raw.get("metadata") or {}
        detail = str(err).splitlines()[1:3]
        _fail(f"LaneRelease {meta.get('namespace')}/{meta.get('name')} is invalid: {detail}")


def _iso(when: datetime | None) -> str | None:
    return None if when is None else iso_z(when)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


# --------------------------------------------------------------------------- views


def latest_measurements(rel: LaneRelease) -> list[Measurement]:
    """The most recent measurement of each check, by check name."""
    latest: dict[str, Measurement] = {}
    for m in rel.status.measurements:
        if m.check not in latest or m.time >= latest[m.check].time:
            latest[m.check] = m
    return [latest[k] for k in sorted(latest)]


def release_view(rel: LaneRelease, steps: int | None = None) -> dict[str, Any]:
    s, spec = rel.status, rel.spec
    p = spec.provenance
    return {
        "release": rel.name,
        "namespace": spec.target.namespace,
        "lane": spec.lane,
        "workload": spec.target.name,
        "phase": s.phase.value,
        # One numbering everywhere: step 1 of 3 is "step": 1 (currentStep 0 in the status).
        "step": s.current_step + 1,
        "steps": steps,
        "weight": s.weight,
        "message": s.message,
        "rollbackReason": s.rollback_reason,
        "gateReason": s.gate_reason,
        "humanOverride": s.human_override,
        "pendingCommand": rel.metadata.annotations.get(COMMAND_ANNOTATION),
        "fromImages": spec.from_revision.images,
        "toImages": spec.to_revision.images,
        "provenance": {
            "agent": p.agent,
            "model": p.model,
            "change": p.change,
            "tests": p.tests.result if p.tests else None,
            "reviewer": p.reviewer,
        },
        "createdAt": _iso(rel.metadata.creation_timestamp),
        "startedAt": _iso(s.started_at),
        "finishedAt": _iso(s.finished_at),
        "lastMeasurements": [m.to_wire() for m in latest_measurements(rel)],
        "conditions": [c.to_wire() for c in s.conditions],
    }


def lane_view(lane: ChangeLane, releases: list[LaneRelease]) -> dict[str, Any]:
    st = lane.status
    active = [r.name for r in releases if r.spec.lane == lane.name and not r.status.phase.terminal]
    return {
        "lane": lane.name,
        "mode": lane.spec.gates.mode.value,
        "suspended": bool(st and st.suspended),
        "suspendedReason": st.suspended_reason if st else None,
        "suspendedAt": _iso(st.suspended_at) if st else None,
        "resumedAt": _iso(st.resumed_at) if st else None,
        "resumedBy": st.resumed_by if st else None,
        "activeReleases": sorted(active),
        "conditions": [c.to_wire() for c in st.conditions] if st else [],
    }


def _lanes(api: KubeApi) -> list[ChangeLane]:
    out = []
    for raw in api.list_lanes():
        try:
            out.append(ChangeLane.model_validate(raw))
        except ValidationError:
            name = (raw.get("metadata") or {}).get("name", "?")
            click.echo(f"warning: ChangeLane {name} does not parse; not shown", err=True)
    return out


def _releases(api: KubeApi, namespace: str | None) -> list[LaneRelease]:
    out = []
    for raw in api.list_releases(namespace):
        try:
            out.append(LaneRelease.model_validate(raw))
        except ValidationError:
            meta = raw.get("metadata") or {}
            click.echo(
                f"warning: LaneRelease {meta.get('namespace')}/{meta.get('name')} does not "
                "parse; not shown",
                err=True,
            )
    return sorted(out, key=_release_time)


def _release_time(rel: LaneRelease) -> datetime:
    s = rel.status
    return (
        s.finished_at
        or s.started_at
        or rel.metadata.creation_timestamp
        or datetime.min.replace(tzinfo=UTC)
    )


def _step_text(view: dict[str, Any]) -> str:
    if view["steps"] is None:
        return str(view["step"])
    return f"{view['step']}/{view['steps']}"


def _lane_rows(views: list[dict[str, Any]]) -> Iterator[str]:
    rows = []
    for v in views:
        suspended = f"yes: {v['suspendedReason'] or ''}".rstrip(": ") if v["suspended"] else "no"
        rows.append((v["lane"], v["mode"], ", ".join(v["activeReleases"]) or "-", suspended))
    yield from table(("LANE", "MODE", "ACTIVE RELEASES", "SUSPENDED"), rows)


def _release_rows(views: list[dict[str, Any]]) -> Iterator[str]:
    rows = [
        (
            f"{v['namespace']}/{v['release']}",
            v["lane"],
            v["phase"],
            _step_text(v),
            f"{v['weight']}%",
            v["message"] or "-",
        )
        for v in views
    ]
    yield from table(("RELEASE", "LANE", "PHASE", "STEP", "WEIGHT", "MESSAGE"), rows)


# Complexity D by design: one line per optional field of the release view, in display order.
def _describe_release(v: dict[str, Any]) -> Iterator[str]:
    prov = v["provenance"]
    yield f"release    {v['namespace']}/{v['release']}  lane {v['lane']}  workload {v['workload']}"
    yield f"phase      {v['phase']}  step {_step_text(v)}  weight {v['weight']}%"
    if v["message"]:
        yield f"message    {v['message']}"
    for key, label in (
        ("rollbackReason", "rollback"),
        ("gateReason", "gated"),
        ("humanOverride", "override"),
    ):
        if v[key]:
            yield f"{label:<10} {v[key]}"
    if v["pendingCommand"]:
        yield f"command    {v['pendingCommand']} (not yet applied by the controller)"
    images = f"{', '.join(v['fromImages']) or '-'} -> {', '.join(v['toImages']) or '-'}"
    yield f"images     {images}"
    yield (
        f"provenance agent {prov['agent'] or '-'}, model {prov['model'] or '-'}, change "
        f"{prov['change'] or '-'}, tests {prov['tests'] or '-'}, reviewer {prov['reviewer'] or '-'}"
    )
    yield f"times      created {v['createdAt'] or '-'}  started {v['startedAt'] or '-'}  " + (
        f"finished {v['finishedAt'] or '-'}"
    )
    if v["lastMeasurements"]:
        yield "last measurements:"
        for m in v["lastMeasurements"]:
            parts = [
                f"  {m['check']:<16} {m['verdict']:<12}",
                f"canary={_num(m.get('canary'))}",
                f"baseline={_num(m.get('baseline'))}",
                f"threshold={_num(m.get('threshold'))}",
                f"alpha={_num(m['alpha'])}" if m.get("alpha") is not None else "",
                m.get("statistic") or "",
                f"step {m['step'] + 1} at {m['time']}",
            ]
            yield "  ".join(p for p in parts if p)
    if v["conditions"]:
        yield "conditions:"
        for c in v["conditions"]:
            yield (
                f"  {c['type']:<12} {c['status']:<6} {c['reason']:<24} "
                f"{c.get('lastTransitionTime', '')}  {c.get('message', '')}"
            ).rstrip()


def _describe_lane(v: dict[str, Any]) -> Iterator[str]:
    yield f"lane       {v['lane']}  mode {v['mode']}"
    if v["suspended"]:
        yield f"suspended  since {v['suspendedAt'] or '-'}: {v['suspendedReason'] or '-'}"
        yield f"           resume with: changelane lanes resume {v['lane']}"
    else:
        yield "suspended  no"
    if v["resumedAt"]:
        yield f"resumed    {v['resumedAt']} by {v['resumedBy'] or 'unknown'}"
    yield f"active     {', '.join(v['activeReleases']) or '-'}"


# --------------------------------------------------------------------------- status


@click.command("status", cls=_FriendlyCommand)
@click.argument("target", required=False)
@_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--agents", is_flag=True, help="Each agent's autonomy level and track record per lane."
)
def status(
    target: str | None, namespace: str | None, kubeconfig: str | None, as_json: bool, agents: bool
) -> None:
    """Lanes and releases now: a lane (mode, suspension, active releases and its
    releases), a release (phase, step, weight, last measurements, conditions), or, with
    no argument, every lane and the releases in flight plus the latest finished ones."""
    api = Target.connect(kubeconfig).api
    lanes = _lanes(api)
    by_name = {lane.name: lane for lane in lanes}
    releases = _releases(api, namespace)
    if agents:
        from controller.cli.autonomy import agent_rows

        chosen = [by_name[target]] if target in by_name else lanes
        for text in agent_rows(chosen, releases):
            click.echo(printable(text, allow="\n"))
        return

    def steps(rel: LaneRelease) -> int | None:
        lane = by_name.get(rel.spec.lane)
        return len(lane.spec.strategy.steps) if lane else None

    if target is not None and target in by_name:
        rvs = [release_view(r, steps(r)) for r in releases if r.spec.lane == target]
        lines = _show_lane(lane_view(by_name[target], releases), rvs, as_json)
    elif target is not None:
        rel = _parse_release(find_release(api, target, namespace))
        view = release_view(rel, steps(rel))
        lines = iter([json.dumps(view, indent=2)]) if as_json else _describe_release(view)
    else:
        views = [release_view(r, steps(r)) for r in releases]
        lines = _show_all(lanes, releases, views, namespace, as_json)
    for text in lines:
        click.echo(printable(text, allow="\n"))


def _show_lane(lv: dict[str, Any], rvs: list[dict[str, Any]], as_json: bool) -> Iterator[str]:
    if as_json:
        yield json.dumps({**lv, "releases": rvs}, indent=2)
        return
    yield from _describe_lane(lv)
    if rvs:
        yield ""
        yield from _release_rows(rvs)


def _show_all(
    lanes: list[ChangeLane],
    releases: list[LaneRelease],
    views: list[dict[str, Any]],
    namespace: str | None,
    as_json: bool,
) -> Iterator[str]:
    lane_views = [lane_view(lane, releases) for lane in lanes]
    if as_json:
        yield json.dumps({"lanes": lane_views, "releases": views}, indent=2)
        return
    yield from _lane_rows(lane_views)
    active = [v for v, r in zip(views, releases, strict=True) if not r.status.phase.terminal]
    finished = [v for v, r in zip(views, releases, strict=True) if r.status.phase.terminal]
    shown = finished[-FINISHED_SHOWN:] + active
    yield ""
    if not shown:
        yield "no LaneReleases" + (f" in namespace {namespace}" if namespace else "")
        return
    yield from _release_rows(shown)
    if len(finished) > FINISHED_SHOWN:
        yield (
            f"({len(finished) - FINISHED_SHOWN} older finished release(s) not shown: "
            "--json lists all; changelane audit --cluster tells their story)"
        )


# --------------------------------------------------------------------------- verbs


def _verb(kind: CommandKind) -> click.Command:
    @click.command(kind.value, cls=_FriendlyCommand)
    @click.argument("release")
    @_options
    @click.option("--as", "as_", metavar="IDENTITY", help="Who is acting (for the audit trail).")
    @click.option(
        "--wait",
        "wait_s",
        type=float,
        default=None,
        metavar="SECONDS",
        help="Wait up to SECONDS for the controller to apply it, then show the phase.",
    )
    def command(
        release: str,
        namespace: str | None,
        kubeconfig: str | None,
        as_: str | None,
        wait_s: float | None,
    ) -> None:
        target = Target.connect(kubeconfig)
        who = identity(as_, kubeconfig)
        raw = find_release(target.api, release, namespace)
        rel = _parse_release(raw)
        ns = rel.spec.target.namespace
        phase = rel.status.phase
        if phase not in APPLIES[kind]:
            allowed = ", ".join(sorted(p.value for p in APPLIES[kind]))
            _fail(
                f"{kind.value} does not apply to {ns}/{rel.name}: it is {phase.value} "
                f"({kind.value} applies to {allowed})",
                EXIT_NOT_APPLIED,
            )
        pending = rel.metadata.annotations.get(COMMAND_ANNOTATION)
        if pending:
            click.echo(f"warning: replacing a command not yet applied: {pending!r}", err=True)
        text = encode_command(kind, who)
        target.api.patch_release_metadata(ns, rel.name, {"annotations": {COMMAND_ANNOTATION: text}})
        click.echo(f"{ns}/{rel.name}: {text} requested (was {phase.value})")
        if wait_s is not None:
            _wait_applied(target.api, ns, rel.name, text, wait_s)

    command.help = {
        CommandKind.PROMOTE: "Promote a release in flight now (skips the remaining steps).",
        CommandKind.ABORT: "Abort a release: roll it back (or reject it before it started).",
        CommandKind.PAUSE: "Pause a release where it is; only a human resume continues it.",
        CommandKind.RESUME: "Resume a paused release (its failure counters start afresh).",
    }[kind] + "\n\nRecorded with your identity (--as, kubeconfig user or $USER)."
    return command


def _wait_applied(api: KubeApi, namespace: str, name: str, text: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        raw = api.get_release(namespace, name)
        annotations = (raw.get("metadata") or {}).get("annotations") or {}
        if annotations.get(COMMAND_ANNOTATION) != text:
            s = raw.get("status") or {}
            click.echo(
                printable(f"{namespace}/{name}: now {s.get('phase')}: {s.get('message', '')}")
            )
            return
        if time.monotonic() >= deadline:
            _fail(
                f"the controller has not applied it within {wait_s:g}s (is it running and "
                f"leading?); the request stays on the release until it does",
                EXIT_NOT_APPLIED,
            )
        time.sleep(0.2)


promote = _verb(CommandKind.PROMOTE)
abort = _verb(CommandKind.ABORT)
pause = _verb(CommandKind.PAUSE)
resume = _verb(CommandKind.RESUME)
VERBS = (promote, abort, pause, resume)


# --------------------------------------------------------------------------- lanes resume


@click.command("resume", cls=_FriendlyCommand)
@click.argument("lane")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    envvar="KUBECONFIG",
    help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster).",
)
@click.option("--as", "as_", metavar="IDENTITY", help="Who is acting (for the audit trail).")
def lanes_resume(lane: str, kubeconfig: str | None, as_: str | None) -> None:
    """Lift a lane's suspension. Its autonomy budget then counts only releases that finish
    from now on; the controller records this as lane_resumed with your identity."""
    target = Target.connect(kubeconfig)
    who = identity(as_, kubeconfig)
    try:
        raw = target.api.get_lane(lane)
    except NotFoundError:
        _fail(f"no ChangeLane named {lane!r}")
    current = raw.get("status") or {}
    if current.get("suspended") is not True:
        click.echo(f"lane {lane} is not suspended; nothing to do")
        return
    now = iso_z(datetime.now(UTC))
    target.api.patch_lane_status(
        lane,
        {
            "suspended": False,
            "suspendedReason": None,
            "suspendedAt": None,
            "resumedAt": now,
            "resumedBy": who,
        },
        (raw.get("metadata") or {}).get("resourceVersion"),
    )
    reason = current.get("suspendedReason") or "suspended"
    click.echo(f"lane {lane} resumed by {who} (it was suspended: {reason})")
