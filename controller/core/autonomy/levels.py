"""The level each (agent, model) holds in a lane, replayed from its finished releases.

The level is a pure function of the lane's rules, the pair's finished releases in the
order they finished, and the humans' pins and resets in the order they were made. Nothing
else is stored, so any replica (or ``changelane scorecard``) that sees the same releases
derives the same levels; the lane's status only caches the result so a change of level is
announced once.

Rules (see ``controller.core.models.agent_autonomy``): graduation and demotion read only
the releases that finished since the pair's last change of level, so one bad run demotes
once, and a graduation needs fresh evidence at the new level. A pin holds the level until
a reset; a reset goes back to the entry level with fresh evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from controller.core.autonomy.record import UNKNOWN_AGENT, ReleaseOutcome, wilson_interval
from controller.core.models import AgentStanding, ChangeLane, LaneRelease
from controller.core.models.agent_autonomy import AgentAutonomySpec, AutonomyLevel
from controller.core.outcomes import Outcome


@dataclass(frozen=True)
class Pin:
    """A human's word on one pair: ``level`` pins it; ``None`` resets it to the entry level."""

    agent: str
    model: str
    level: AutonomyLevel | None
    by: str
    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class LevelChange:
    agent: str
    model: str
    from_level: AutonomyLevel
    to_level: AutonomyLevel
    at: datetime
    reason: str
    figures: tuple[tuple[str, float | int | str], ...] = ()


@dataclass
class _Replay:
    level: AutonomyLevel
    pinned_by: str | None = None
    since: datetime | None = None
    reason: str = "entry level"
    window: list[bool] | None = None  # True = rolled back, per finished release at level

    def results(self) -> list[bool]:
        if self.window is None:
            self.window = []
        return self.window


def _figures(
    results: Sequence[bool], spec: AgentAutonomySpec
) -> tuple[tuple[str, float | int | str], ...]:
    failures = sum(results)
    low, high = wilson_interval(failures, len(results), spec.graduate.confidence)
    return (
        ("finished", len(results)),
        ("rolled_back", failures),
        ("change_failure_upper", round(high, 4)),
        ("change_failure_lower", round(low, 4)),
    )


def _auto_change(state: _Replay, spec: AgentAutonomySpec) -> tuple[AutonomyLevel, str] | None:
    results = state.results()
    recent = results[-spec.demote.of_last :]
    if sum(recent) >= spec.demote.rollbacks and state.level is not AutonomyLevel.SHADOW:
        return state.level.down(), (
            f"demoted: {sum(recent)} of the last {len(recent)} releases rolled back "
            f"(rule: {spec.demote.rollbacks} of {spec.demote.of_last})"
        )
    if len(results) >= spec.graduate.min_releases and state.level is not AutonomyLevel.AUTONOMOUS:
        _, upper = wilson_interval(sum(results), len(results), spec.graduate.confidence)
        if upper <= spec.graduate.max_change_failure_upper:
            return state.level.up(), (
                f"graduated: {len(results)} releases, change-failure rate upper bound "
                f"{upper:.1%} <= {spec.graduate.max_change_failure_upper:.1%}"
            )
    return None


def replay(
    spec: AgentAutonomySpec,
    outcomes: Iterable[ReleaseOutcome],
    pins: Iterable[Pin] = (),
) -> tuple[dict[tuple[str, str], AgentStanding], list[LevelChange]]:
    """Every pair's standing now and every change of level on the way, oldest first."""
    events: list[tuple[datetime, int, ReleaseOutcome | Pin]] = []
    for o in outcomes:
        if o.finished and o.finished_at is not None:
            events.append((o.finished_at, 1, o))
        else:
            # Seen but not (yet) finished: the pair exists at the entry level.
            events.append((o.seen_at, 2, o))
    events.extend((p.at, 0, p) for p in pins)
    events.sort(key=lambda e: (e[0], e[1]))
    states: dict[tuple[str, str], _Replay] = {}
    changes: list[LevelChange] = []
    for at, _, event in events:
        key = (event.agent, event.model)
        state = states.setdefault(key, _Replay(level=spec.entry_level))
        before = state.level
        if isinstance(event, Pin):
            state.window = []
            state.since = at
            if event.level is None:
                state.level, state.pinned_by = spec.entry_level, None
                state.reason = f"reset by {event.by}" + (
                    f": {event.reason}" if event.reason else ""
                )
            else:
                state.level, state.pinned_by = event.level, event.by
                state.reason = f"pinned by {event.by}" + (
                    f": {event.reason}" if event.reason else ""
                )
            figures: tuple[tuple[str, float | int | str], ...] = (("by", event.by),)
        elif event.finished:
            state.results().append(event.outcome is Outcome.ROLLED_BACK)
            if state.pinned_by is not None:
                continue
            verdict = _auto_change(state, spec)
            if verdict is None:
                continue
            figures = _figures(state.results(), spec)
            state.level, state.reason = verdict
            state.window, state.since = [], at
        else:
            continue
        if state.level is not before or isinstance(event, Pin):
            changes.append(
                LevelChange(
                    event.agent, event.model, before, state.level, at, state.reason, figures
                )
            )
    standings = {
        key: AgentStanding(
            agent=key[0],
            model=key[1],
            level=s.level,
            pinned_by=s.pinned_by,
            since=s.since,
            reason=s.reason,
            finished_at_level=len(s.results()),
            rolled_back_at_level=sum(s.results()),
        )
        for key, s in states.items()
    }
    return standings, changes


def level_of(
    spec: AgentAutonomySpec | None,
    standings: dict[tuple[str, str], AgentStanding],
    agent: str,
    model: str,
) -> AutonomyLevel:
    """The level a new release of (agent, model) starts at: the lane's full autonomy when
    the lane declares no per-agent rules."""
    if spec is None:
        return AutonomyLevel.AUTONOMOUS
    standing = standings.get((agent, model))
    return standing.level if standing is not None else spec.entry_level


def standings_of(lane: ChangeLane) -> dict[tuple[str, str], AgentStanding]:
    """The standings the lane's status carries (as last derived by the controller)."""
    return {(s.agent, s.model): s for s in (lane.status.agents if lane.status else [])}


def author_of(release: LaneRelease) -> tuple[str, str]:
    """(agent, model) as the track records key them; absent values read ``unknown``."""
    p = release.spec.provenance
    return (p.agent or UNKNOWN_AGENT, p.model or UNKNOWN_AGENT)


def release_level(lane: ChangeLane, release: LaneRelease) -> AutonomyLevel:
    """The level a release starts at: its author's standing in the lane now."""
    agent, model = author_of(release)
    return level_of(lane.spec.gates.agent_autonomy, standings_of(lane), agent, model)
