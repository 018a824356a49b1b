"""Autonomy policy gates: when, how often and how many releases a lane may run on its own.

Every gate here is transient (the release waits as Gated, it is not rejected) and says
what blocked it and, where it can be known, when it may proceed (``retry_after``):

* ``changeWindow``: outside every declared window; ``retry_after`` is the next opening.
* ``concurrency``: the lane already runs ``maxConcurrentReleases``; proceeds when one ends.
* ``dailyLimit``: ``maxReleasesPerDay`` releases started in the last 24 hours (a rolling
  day, so the limit means the same thing at 00:05 as at 23:55); ``retry_after`` is when
  the oldest of them leaves the 24-hour window.
* ``laneSuspended``: a human or the autonomy budget suspended the lane; only
  ``changelane lanes resume LANE`` lifts it, so there is no ``retry_after``.

Change windows: ``days`` are the local days on which a window opens; it is open from
``start`` (inclusive) to ``end`` (exclusive) local wall time in ``timeZone``. Across a
daylight-saving change the wall clock decides: a window whose start falls in the skipped
hour opens at the transition; in a repeated hour the window may be open twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from controller.core.gates.report import GateResult
from controller.core.models.lane import AutonomyBudget, AutonomyMode, ChangeLane, ChangeWindow
from controller.core.models.release import Phase

CHANGE_WINDOW = "changeWindow"
CONCURRENCY = "concurrency"
DAILY_LIMIT = "dailyLimit"
LANE_SUSPENDED = "laneSuspended"

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Outcomes (LaneRelease phases) that count for the autonomy budget; others (Rejected,
#: Gated, ...) never deployed anything and say nothing about change failure.
FAILED_OUTCOMES = frozenset({Phase.ROLLED_BACK})
SUCCEEDED_OUTCOMES = frozenset({Phase.PROMOTED})

_DAY = timedelta(days=1)
# Far enough ahead that a window open one day a week is always found, even when a
# daylight-saving change swallows one of its occurrences.
_LOOKAHEAD_DAYS = 15
# Offset changes are months apart; sampling every 6 hours cannot miss one.
_TRANSITION_SAMPLE = timedelta(hours=6)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {now.isoformat()}")
    return now


def _seconds(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 3600 + int(minutes) * 60


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def window_open_at(window: ChangeWindow, at: datetime) -> bool:
    local = _aware(at).astimezone(_zone(window.time_zone))
    if DAY_NAMES[local.weekday()] not in window.days:
        return False
    wall = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return _seconds(window.start) <= wall < _seconds(window.end)


def in_change_window(windows: Sequence[ChangeWindow], at: datetime) -> bool:
    """True when any window is open at ``at``; no windows means any time."""
    return not windows or any(window_open_at(w, at) for w in windows)


def next_window_opening(windows: Sequence[ChangeWindow], now: datetime) -> datetime | None:
    """The earliest instant at or after ``now`` inside a window (``now`` itself when open).

    None only when no window can ever open (not possible for a valid lane). The answer is
    exact: the candidates are every instant at which a window can open (its start wall
    time, in either fold of an ambiguous hour, and every UTC offset change).
    """
    now = _aware(now)
    if in_change_window(windows, now):
        return now
    candidates: list[datetime] = []
    for window in windows:
        candidates.extend(_openings(window, now))
    opened = [c for c in candidates if c > now and in_change_window(windows, c)]
    return min(opened).astimezone(now.tzinfo) if opened else None


def _openings(window: ChangeWindow, now: datetime) -> Iterable[datetime]:
    zone = _zone(window.time_zone)
    start = time.fromisoformat(window.start)
    today = now.astimezone(zone).date()
    for offset in range(-1, _LOOKAHEAD_DAYS):
        day = today + timedelta(days=offset)
        if DAY_NAMES[day.weekday()] in window.days:
            for fold in (0, 1):
                yield datetime.combine(day, start, tzinfo=zone).replace(fold=fold).astimezone(UTC)
    yield from _offset_changes(zone, now - _DAY, now + timedelta(days=_LOOKAHEAD_DAYS))


def _offset_changes(zone: ZoneInfo, begin: datetime, end: datetime) -> Iterable[datetime]:
    """Every instant in [begin, end) at which ``zone``'s UTC offset changes."""
    lo = begin.astimezone(UTC).replace(microsecond=0)
    while lo < end:
        hi = lo + _TRANSITION_SAMPLE
        if lo.astimezone(zone).utcoffset() != hi.astimezone(zone).utcoffset():
            yield _bisect_change(zone, lo, hi)
        lo = hi


def _bisect_change(zone: ZoneInfo, lo: datetime, hi: datetime) -> datetime:
    before = lo.astimezone(zone).utcoffset()
    lo_ts, hi_ts = int(lo.timestamp()), int(hi.timestamp())
    while hi_ts - lo_ts > 1:
        mid = (lo_ts + hi_ts) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == before:
            lo_ts = mid
        else:
            hi_ts = mid
    return datetime.fromtimestamp(hi_ts, UTC)


def evaluate_change_window(lane: ChangeLane, now: datetime) -> GateResult:
    windows = lane.spec.gates.change_windows
    if in_change_window(windows, now):
        return GateResult(CHANGE_WINDOW, True, "inside a change window" if windows else "")
    opening = next_window_opening(windows, now)
    described = ", ".join(_describe(w) for w in windows)
    when = f"; next opening {opening.isoformat()}" if opening else "; no window ever opens"
    return GateResult(
        CHANGE_WINDOW,
        False,
        f"outside lane {lane.name}'s change windows ({described}){when}",
        retry_after=opening,
    )


def _describe(window: ChangeWindow) -> str:
    return f"{','.join(window.days)} {window.start}-{window.end} {window.time_zone}"


def evaluate_concurrency(
    lane: ChangeLane, release: str, active_releases: Iterable[str]
) -> GateResult:
    """``active_releases``: names of the lane's releases in flight (may include ``release``)."""
    others = sorted({name for name in active_releases if name != release})
    limit = lane.spec.gates.max_concurrent_releases
    if len(others) < limit:
        return GateResult(CONCURRENCY, True, f"{len(others)} of {limit} release slots in use")
    shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
    return GateResult(
        CONCURRENCY,
        False,
        f"lane {lane.name} already runs {len(others)} releases (max {limit}): {shown}; "
        "proceeds when one of them finishes",
    )


def evaluate_daily_limit(
    lane: ChangeLane, started_at: Iterable[datetime], now: datetime
) -> GateResult:
    """``started_at``: when each of the lane's other releases started moving traffic."""
    now = _aware(now)
    recent = sorted(t for t in (_aware(s) for s in started_at) if now - _DAY < t <= now)
    limit = lane.spec.gates.max_releases_per_day
    if len(recent) < limit:
        return GateResult(DAILY_LIMIT, True, f"{len(recent)} of {limit} releases in 24h")
    # Enough of the oldest must leave the window for one slot to free up.
    free_at = recent[len(recent) - limit] + _DAY
    return GateResult(
        DAILY_LIMIT,
        False,
        f"lane {lane.name} started {len(recent)} releases in the last 24 hours "
        f"(max {limit}); may proceed at {free_at.isoformat()}",
        retry_after=free_at,
    )


@dataclass(frozen=True)
class BudgetDecision:
    suspend: bool
    failures: int
    window: int
    rate: float
    limit: float
    reason: str


def autonomy_budget_decision(
    budget: AutonomyBudget, recent_outcomes: Sequence[str]
) -> BudgetDecision:
    """Whether the lane must suspend itself, from its release outcomes (oldest first).

    The change-failure rate is the number of rolled-back releases among the last
    ``window`` finished (promoted or rolled back) releases, divided by ``window``: a young
    lane is judged on the same scale as an old one, so its first failure alone does not
    suspend it ("more than 2 of the last 6" reads as it says).
    """
    finished = [o for o in recent_outcomes if o in FAILED_OUTCOMES | SUCCEEDED_OUTCOMES]
    last = finished[-budget.window :]
    failures = sum(1 for o in last if o in FAILED_OUTCOMES)
    rate = failures / budget.window
    suspend = rate > budget.max_change_failure_rate
    verdict = "exceeds" if suspend else "within"
    reason = (
        f"{failures} of the last {budget.window} releases rolled back "
        f"(change-failure rate {rate:.0%} {verdict} the limit {budget.max_change_failure_rate:.0%})"
    )
    return BudgetDecision(
        suspend, failures, budget.window, rate, budget.max_change_failure_rate, reason
    )


def lane_budget_applies(lane: ChangeLane) -> bool:
    """The lane-wide autonomy budget suspends the lane only when it has no per-agent levels:
    with ``agentAutonomy`` a failing author is demoted alone and the others keep shipping."""
    return lane.spec.gates.agent_autonomy is None


def evaluate_lane_suspension(
    lane: ChangeLane, recent_outcomes: Sequence[str] | None = None
) -> GateResult:
    """Suspended by status, or about to be by the budget (outcomes default to the status')."""
    status = lane.status
    resume = f"a human must resume it: changelane lanes resume {lane.name}"
    if status is not None and status.suspended:
        why = status.suspended_reason or "suspended"
        return GateResult(LANE_SUSPENDED, False, f"lane {lane.name} is suspended ({why}); {resume}")
    if not lane_budget_applies(lane):
        return GateResult(LANE_SUSPENDED, True, "per-agent levels replace the lane budget")
    outcomes = (
        recent_outcomes
        if recent_outcomes is not None
        else (status.recent_outcomes if status is not None else [])
    )
    decision = autonomy_budget_decision(lane.spec.gates.autonomy_budget, outcomes)
    if decision.suspend:
        return GateResult(
            LANE_SUSPENDED,
            False,
            f"lane {lane.name} autonomy budget spent: {decision.reason}; {resume}",
        )
    return GateResult(LANE_SUSPENDED, True, decision.reason)


def shadow_mode(lane: ChangeLane) -> bool:
    """Shadow lanes evaluate and record every decision but never act on the cluster."""
    return lane.spec.gates.mode is AutonomyMode.SHADOW


def evaluate_autonomy_policy(
    lane: ChangeLane,
    *,
    release: str,
    now: datetime,
    active_releases: Iterable[str] = (),
    started_at: Iterable[datetime] = (),
    recent_outcomes: Sequence[str] | None = None,
) -> list[GateResult]:
    """All policy gates for a release about to start. Shadow mode does not change the
    results (what *would* have been blocked is recorded); see :func:`shadow_mode`."""
    return [
        evaluate_lane_suspension(lane, recent_outcomes),
        evaluate_change_window(lane, now),
        evaluate_concurrency(lane, release, active_releases),
        evaluate_daily_limit(lane, started_at, now),
    ]
