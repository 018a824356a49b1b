"""The dashboard's pages as HTML, from parsed objects: no I/O, every value escaped.

Nothing secret is shown: lanes carry no URLs (notification URLs live in a Secret and
their errors are redacted), and PromQL appears only in a release's detail view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote, urlencode

from controller.core.audit import AuditRecord, step_text
from controller.core.audit_query import release_series
from controller.core.autonomy.record import outcome_of_release, track_records
from controller.core.autonomy.scorecard_view import interval_text, scorecard_rows
from controller.core.gates.lane import finished_outcomes
from controller.core.gates.policy import autonomy_budget_decision
from controller.core.models import ChangeLane, LaneRelease, Phase
from controller.dashboard.charts import check_chart

OUTCOMES = ("Promoted", "RolledBack", "Rejected")
#: The kill switch's state for a lane, when the page's server can evaluate it.
KillSwitchState = Callable[[ChangeLane], str]

_STYLE = """
body{font:14px system-ui,sans-serif;margin:0;color:#222}
nav{background:#233;padding:8px 16px}nav a{color:#fff;margin-right:18px;text-decoration:none}
main{padding:12px 16px}table{border-collapse:collapse;margin:8px 0 16px}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.Promoted{color:#070}.RolledBack,.Rejected,.Fail,.Error{color:#b00}
.Paused,.Gated,.Inconclusive{color:#a60}.muted{color:#777}svg .tick{font-size:10px;fill:#555}
svg .note{font-size:10px;fill:#333}svg .title{font-size:12px;font-weight:600}
pre{white-space:pre-wrap;margin:0}details{margin:2px 0}form label{margin-right:12px}
"""


@dataclass(frozen=True)
class Page:
    status: str
    html: str


def _t(when: datetime | None) -> str:
    if when is None:
        return "-"
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _link(href: str, text: str) -> str:
    return f'<a href="{escape(href, quote=True)}">{escape(text)}</a>'


def release_href(rel: LaneRelease) -> str:
    return f"/releases/{quote(rel.metadata.namespace or '')}/{quote(rel.name)}"


def _maybe_link(value: str | None) -> str:
    if not value:
        return "-"
    if value.startswith(("https://", "http://")):
        return _link(value, value)
    return escape(value)


def layout(title: str, body: str, status: str = "200 OK") -> Page:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} · changelane</title><style>{_STYLE}</style></head><body>"
        '<nav><a href="/lanes">Lanes</a><a href="/releases">In flight</a>'
        '<a href="/history">History</a></nav>'
        f"<main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return Page(status, html)


def not_found(what: str) -> Page:
    return layout("Not found", f'<p id="not-found">{escape(what)} not found.</p>', "404 Not Found")


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], table_id: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _step(rel: LaneRelease, lane: ChangeLane | None) -> str:
    if rel.status.step:
        return escape(rel.status.step)
    total = len(lane.spec.strategy.steps) if lane else None
    return escape(step_text(rel.status.current_step, total) or "-").removeprefix("step ")


# --------------------------------------------------------------------------- lanes


def lanes_page(
    lanes: Sequence[ChangeLane],
    releases: Sequence[LaneRelease],
    kill_switch: KillSwitchState | None = None,
) -> Page:
    rows = []
    for lane in sorted(lanes, key=lambda x: x.name):
        mine = [r for r in releases if r.spec.lane == lane.name]
        status = lane.status
        budget = autonomy_budget_decision(
            lane.spec.gates.autonomy_budget,
            finished_outcomes(mine, status.resumed_at if status else None),
        )
        promoted = sum(1 for r in mine if r.status.phase is Phase.PROMOTED)
        rolled = sum(1 for r in mine if r.status.phase is Phase.ROLLED_BACK)
        rejected = sum(1 for r in mine if r.status.phase is Phase.REJECTED)
        finished = promoted + rolled
        cfr = f"{rolled / finished:.0%}" if finished else "-"
        complete = sum(1 for r in mine if r.spec.provenance.agent and r.spec.provenance.change)
        coverage = f"{complete / len(mine):.0%}" if mine else "-"
        suspended = "no"
        if status and status.suspended:
            suspended = (
                f'<span class="RolledBack">yes</span>: {escape(status.suspended_reason or "")}'
            )
        switch = kill_switch(lane) if kill_switch else "not evaluated here"
        notes = []
        for n in status.notifications if status else []:
            state = (
                "ok" if n.ok else f'<span class="Fail">{escape(n.last_error or "failed")}</span>'
            )
            notes.append(f"{escape(n.destination)}: {state}")
        rows.append(
            [
                f'<span class="lane">{escape(lane.name)}</span>',
                escape(lane.spec.gates.mode.value),
                f"{escape(switch)} <span class=muted>({escape(lane.kill_switch_flag)})</span>",
                suspended,
                escape(budget.reason),
                f"promoted {promoted}, rolled back {rolled}, rejected {rejected}; "
                f"change-failure rate {cfr}; provenance {coverage}",
                "<br>".join(notes) or '<span class="muted">-</span>',
            ]
        )
    headers = (
        "lane",
        "mode",
        "kill switch",
        "suspended",
        "autonomy budget",
        "scorecard",
        "notifications",
    )
    return layout("Lanes", _table(headers, rows, "lanes") + _agents_table(lanes, releases))


def _agents_table(lanes: Sequence[ChangeLane], releases: Sequence[LaneRelease]) -> str:
    """Each author's autonomy level and track record, for lanes with per-agent levels."""
    records = track_records(outcome_of_release(r) for r in releases)
    rows = []
    for lane in sorted(lanes, key=lambda x: x.name):
        for a in lane.status.agents if lane.status else []:
            rec = records.get((lane.name, a.agent, a.model))
            row = scorecard_rows([rec])[0] if rec else None
            rows.append(
                [
                    escape(lane.name),
                    escape(a.agent),
                    escape(a.model),
                    f'<span class="level-{a.level.value}">{a.level.value}</span>',
                    escape(a.pinned_by or "-"),
                    str(rec.shipped) if rec else "0",
                    escape(interval_text(row)) if row else "-",
                    escape(a.reason or "-"),
                ]
            )
    if not rows:
        return ""
    headers = ("lane", "agent", "model", "level", "pinned by", "releases",
               "change failure [95%]", "why")  # fmt: skip
    return "<h2>Agents</h2>" + _table(headers, rows, "agents")


# --------------------------------------------------------------------------- in flight


def in_flight_page(releases: Sequence[LaneRelease], lanes: Sequence[ChangeLane]) -> Page:
    by_name = {lane.name: lane for lane in lanes}
    rows = []
    live = [r for r in releases if not r.status.phase.terminal]
    for rel in sorted(live, key=lambda r: r.metadata.creation_timestamp or datetime.min):
        checks = []
        for c in rel.status.checks:
            latest = next((m for m in reversed(rel.status.measurements) if m.check == c.name), None)
            verdict = c.last_verdict.value if c.last_verdict else "-"
            stat = escape(latest.statistic) if latest and latest.statistic else ""
            checks.append(f'{escape(c.name)}: <span class="{verdict}">{verdict}</span> {stat}')
        rows.append(
            [
                _link(release_href(rel), rel.name),
                escape(rel.spec.lane),
                escape(f"{rel.spec.target.namespace}/{rel.spec.target.name}"),
                f'<span class="{rel.status.phase.value}">{rel.status.phase.value}</span>',
                _step(rel, by_name.get(rel.spec.lane)),
                f"{rel.status.weight}%",
                "<br>".join(checks) or "-",
            ]
        )
    headers = ("release", "lane", "workload", "phase", "step", "weight", "checks")
    body = _table(headers, rows, "in-flight") if rows else '<p id="in-flight">none</p>'
    return layout("Releases in flight", body)


# --------------------------------------------------------------------------- one release


def release_page(rel: LaneRelease, lane: ChangeLane | None, records: Sequence[AuditRecord]) -> Page:
    s, spec, p = rel.status, rel.spec, rel.spec.provenance
    decision = s.rollback_reason or s.human_override or s.gate_reason or s.message or "-"
    summary = _table(
        ("", ""),
        [
            ["phase", f'<span id="phase" class="{s.phase.value}">{s.phase.value}</span>'],
            ["decision", f'<span id="decision">{escape(decision)}</span>'],
            ["lane", escape(spec.lane)],
            ["workload", escape(f"{spec.target.namespace}/{spec.target.name}")],
            ["step", _step(rel, lane)],
            ["weight", f"{s.weight}% (max {s.max_weight_reached}%)"],
            [
                "images",
                escape(", ".join(spec.from_revision.images) or "-")
                + " &rarr; "
                + escape(", ".join(spec.to_revision.images) or "-"),
            ],
            ["started", _t(s.started_at)],
            ["finished", _t(s.finished_at)],
        ],
        "summary",
    )
    tests = None
    if p.tests is not None:
        tests = str(p.tests.result) + (f" ({p.tests.command})" if p.tests.command else "")
    provenance = _table(
        ("", ""),
        [
            ["agent", escape(p.agent or "-")],
            ["model", escape(p.model or "-")],
            ["change", _maybe_link(p.change)],
            ["tests", escape(tests or "-")],
            ["reviewer", escape(p.reviewer or "-")],
        ],
        "provenance",
    )
    series = release_series(records)
    limits = {c.name: c.threshold for c in lane.spec.analysis.checks} if lane else {}
    charts = []
    for name, check in series.checks.items():
        known = [t for t in check.threshold if t is not None]
        limit = known[-1] if known else limits.get(name)
        decided = series.decision.value if series.decision else None
        charts.append(check_chart(check, series.steps, series.decision_time, decided, limit))
    measurements = []
    for m in s.measurements:
        query = (
            f"<details><summary>PromQL</summary><pre>{escape(m.query)}</pre></details>"
            if m.query
            else ""
        )
        measurements.append(
            [
                _t(m.time),
                escape(step_text(m.step, len(lane.spec.strategy.steps) if lane else None) or "-"),
                escape(m.check),
                f'<span class="{m.verdict.value}">{m.verdict.value}</span>',
                _num(m.canary),
                _num(m.baseline),
                _num(m.threshold),
                _num(m.alpha),
                _num(m.p_value),
                escape(m.statistic or "-"),
                f"{escape(m.message)}{query}",
            ]
        )
    timeline = [
        [
            _t(r.time),
            escape(r.decision.value),
            escape(step_text(r.step, r.steps) or "-"),
            escape(r.reason),
            escape(r.actor),
        ]
        for r in records
        if r.decision.value != "measurement"
    ]
    body = (
        f"<h2>Decision</h2>{summary}<h2>Provenance</h2>{provenance}"
        f'<h2>Canary vs baseline</h2><div id="charts">{"".join(charts) or "<p>none</p>"}</div>'
        "<h2>Measurements</h2>"
        + _table(
            (
                "time",
                "step",
                "check",
                "verdict",
                "canary",
                "baseline",
                "threshold",
                "alpha",
                "p",
                "statistic",
                "detail",
            ),
            measurements,
            "measurements",
        )
        + "<h2>Timeline</h2>"
        + _table(("time", "decision", "step", "reason", "by"), timeline, "timeline")
    )
    return layout(f"Release {rel.name}", body)


# --------------------------------------------------------------------------- history


@dataclass(frozen=True)
class HistoryFilter:
    lane: str = ""
    agent: str = ""
    outcome: str = ""
    since_hours: float | None = None

    def matches(self, rel: LaneRelease, now: datetime) -> bool:
        s = rel.status
        if not s.phase.terminal:
            return False
        if self.lane and rel.spec.lane != self.lane:
            return False
        if self.agent and rel.spec.provenance.agent != self.agent:
            return False
        if self.outcome and s.phase.value != self.outcome:
            return False
        if self.since_hours is not None:
            finished = s.finished_at
            if finished is None or (now - finished).total_seconds() > self.since_hours * 3600:
                return False
        return True


def _select(name: str, values: Iterable[str], chosen: str) -> str:
    options = ['<option value="">any</option>'] + [
        f'<option value="{escape(v, quote=True)}"{" selected" if v == chosen else ""}>'
        f"{escape(v)}</option>"
        for v in sorted(set(values))
    ]
    return f'<label>{name} <select name="{name}">{"".join(options)}</select></label>'


def history_page(releases: Sequence[LaneRelease], flt: HistoryFilter, now: datetime) -> Page:
    finished = [r for r in releases if r.status.phase.terminal]
    shown = sorted(
        (r for r in finished if flt.matches(r, now)),
        key=lambda r: r.status.finished_at or now,
        reverse=True,
    )
    since = "" if flt.since_hours is None else f"{flt.since_hours:g}"
    form = (
        '<form id="filters" method="get" action="/history">'
        + _select("lane", (r.spec.lane for r in finished), flt.lane)
        + _select(
            "agent",
            (r.spec.provenance.agent or "" for r in finished if r.spec.provenance.agent),
            flt.agent,
        )
        + _select("outcome", OUTCOMES, flt.outcome)
        + f'<label>within the last <input name="since" size="4" value="{escape(since)}"> hours'
        '</label><button type="submit">filter</button></form>'
    )
    rows = [
        [
            _link(release_href(r), r.name),
            escape(r.spec.lane),
            escape(r.spec.provenance.agent or "-"),
            f'<span class="{r.status.phase.value}">{r.status.phase.value}</span>',
            _t(r.status.finished_at),
            escape(r.status.rollback_reason or r.status.message or ""),
        ]
        for r in shown
    ]
    table = _table(("release", "lane", "agent", "outcome", "finished", "why"), rows, "history")
    query = urlencode({k: v for k, v in vars(flt).items() if v not in ("", None)})
    note = f'<p class="muted">{len(rows)} release(s){" for " + escape(query) if query else ""}</p>'
    return layout("History", form + note + table)
