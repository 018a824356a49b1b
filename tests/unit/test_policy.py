from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.core.gates.policy import (
    autonomy_budget_decision,
    evaluate_autonomy_policy,
    evaluate_change_window,
    evaluate_concurrency,
    evaluate_daily_limit,
    evaluate_lane_suspension,
    in_change_window,
    next_window_opening,
    shadow_mode,
)
from controller.core.gates.report import GateReport
from controller.core.models.lane import AutonomyBudget, ChangeLane, ChangeWindow
from tests.unit.lane_fixtures import lane

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri"]


def win(days: list[str], start: str, end: str, tz: str = "UTC") -> ChangeWindow:
    return ChangeWindow.model_validate({"days": days, "start": start, "end": end, "timeZone": tz})


def test_inside_window_passes_and_outside_says_when() -> None:
    windowed = lane(
        **{
            "gates.changeWindows": [
                {"days": WEEKDAYS, "start": "09:00", "end": "17:00", "timeZone": "Europe/Berlin"}
            ]
        }
    )
    # Friday 2025-03-07 16:59 Berlin: open.
    assert evaluate_change_window(windowed, datetime(2025, 3, 7, 16, 59, tzinfo=BERLIN)).passed
    # Friday 17:00 Berlin: closed until Monday 09:00 Berlin.
    result = evaluate_change_window(windowed, datetime(2025, 3, 7, 17, 0, tzinfo=BERLIN))
    assert not result.passed and not result.permanent
    assert result.retry_after == datetime(2025, 3, 10, 9, 0, tzinfo=BERLIN)
    assert result.reason == (
        "outside lane docs-site's change windows (Mon,Tue,Wed,Thu,Fri 09:00-17:00 "
        "Europe/Berlin); next opening 2025-03-10T09:00:00+01:00"
    )


def test_no_windows_means_any_time() -> None:
    assert evaluate_change_window(lane(), datetime(2025, 1, 1, 3, tzinfo=UTC)).passed


def test_start_in_skipped_hour_opens_at_the_transition() -> None:
    # Berlin skips 02:00-03:00 on 2025-03-30 (01:00 UTC). A Sunday 02:30-04:00 window
    # opens at the jump: 03:00 local.
    window = win(["Sun"], "02:30", "04:00", "Europe/Berlin")
    opening = next_window_opening([window], datetime(2025, 3, 30, 0, 0, tzinfo=UTC))
    assert opening == datetime(2025, 3, 30, 1, 0, tzinfo=UTC)
    assert in_change_window([window], opening)
    assert not in_change_window([window], opening - timedelta(seconds=1))


def test_repeated_hour_reopens() -> None:
    # Berlin repeats 02:00-03:00 on 2025-10-26: a 02:00-02:30 window is open twice.
    window = win(["Sun"], "02:00", "02:30", "Europe/Berlin")
    first = next_window_opening([window], datetime(2025, 10, 25, 23, 0, tzinfo=UTC))
    assert first == datetime(2025, 10, 26, 0, 0, tzinfo=UTC)
    second = next_window_opening([window], datetime(2025, 10, 26, 0, 30, tzinfo=UTC))
    assert second == datetime(2025, 10, 26, 1, 0, tzinfo=UTC)
    # A start inside the repeated hour is reached twice by the wall clock.
    window = win(["Sun"], "02:15", "02:30", "Europe/Berlin")
    again = next_window_opening([window], datetime(2025, 10, 26, 0, 30, tzinfo=UTC))
    assert again == datetime(2025, 10, 26, 1, 15, tzinfo=UTC)


def test_window_validation() -> None:
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        win(["Mon"], "09:00", "10:00", "Mars/Olympus")
    with pytest.raises(ValidationError, match="must be after start"):
        win(["Mon"], "10:00", "09:00")
    assert in_change_window(
        [win(["Mon"], "00:00", "24:00")], datetime(2025, 3, 10, 23, 59, 59, tzinfo=UTC)
    )


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_window_opening([win(["Mon"], "09:00", "10:00")], datetime(2025, 3, 10, 8))


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]


@st.composite
def windows(draw: st.DrawFn) -> ChangeWindow:
    start = draw(st.integers(0, 23 * 60 + 58))
    end = draw(st.integers(start + 1, 24 * 60))
    days = draw(
        st.lists(
            st.sampled_from(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    return win(
        days,
        f"{start // 60:02d}:{start % 60:02d}",
        f"{end // 60:02d}:{end % 60:02d}",
        draw(st.sampled_from(ZONES)),
    )


# Instants near DST changes are over-represented: that is where window logic breaks.
DST_EDGES = [
    datetime(2025, 3, 30, 1, tzinfo=UTC),
    datetime(2025, 10, 26, 1, tzinfo=UTC),
    datetime(2025, 3, 9, 7, tzinfo=UTC),
    datetime(2025, 11, 2, 6, tzinfo=UTC),
    datetime(2025, 4, 5, 15, tzinfo=UTC),
]
instants = st.one_of(
    st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    ),
    st.builds(
        lambda base, minutes: base + timedelta(minutes=minutes),
        st.sampled_from(DST_EDGES),
        st.integers(-3 * 24 * 60, 3 * 24 * 60),
    ),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(windows(), min_size=1, max_size=2), instants)
def test_retry_after_is_the_first_open_instant(ws: list[ChangeWindow], now: datetime) -> None:
    opening = next_window_opening(ws, now)
    assert opening is not None
    assert opening >= now
    assert in_change_window(ws, opening)
    if opening == now:
        return
    # Windows and offset changes fall on whole minutes, so every open stretch contains a
    # whole minute: scanning whole minutes between now and the answer is exhaustive.
    t = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while t < opening:
        assert not in_change_window(ws, t), f"{t} is open, earlier than {opening}"
        t += timedelta(minutes=1)


def test_concurrency() -> None:
    two = lane(**{"gates.maxConcurrentReleases": 2})
    assert evaluate_concurrency(two, "r3", ["r1", "r3"]).passed  # itself does not count
    blocked = evaluate_concurrency(two, "r3", ["r1", "r2", "r3"])
    assert not blocked.passed and blocked.retry_after is None
    assert blocked.reason == (
        "lane docs-site already runs 2 releases (max 2): r1, r2; proceeds when one of them finishes"
    )


def test_daily_limit_is_a_rolling_day() -> None:
    limited = lane(**{"gates.maxReleasesPerDay": 2})
    now = datetime(2025, 3, 10, 12, tzinfo=UTC)
    old = now - timedelta(hours=25)
    a, b = now - timedelta(hours=20), now - timedelta(hours=3)
    assert evaluate_daily_limit(limited, [old, a], now).passed
    blocked = evaluate_daily_limit(limited, [old, b, a], now)
    assert not blocked.passed
    assert blocked.retry_after == a + timedelta(days=1)
    assert evaluate_daily_limit(limited, [b, a], blocked.retry_after).passed
    assert "started 2 releases in the last 24 hours (max 2)" in blocked.reason


def test_budget_judges_the_last_window_on_a_fixed_scale() -> None:
    budget = AutonomyBudget(max_change_failure_rate=0.34, window=6)
    # Two failures of six: 33% is within 34%; a third trips it.
    assert not autonomy_budget_decision(budget, ["RolledBack", "RolledBack"]).suspend
    decision = autonomy_budget_decision(
        budget, ["RolledBack", "Rejected", "RolledBack", "Promoted", "RolledBack"]
    )
    assert decision.suspend and decision.failures == 3
    assert decision.reason == (
        "3 of the last 6 releases rolled back (change-failure rate 50% exceeds the limit 34%)"
    )
    # Old failures age out of the window.
    aged = ["RolledBack"] * 3 + ["Promoted"] * 6
    assert not autonomy_budget_decision(budget, aged).suspend


@given(
    st.lists(st.sampled_from(["Promoted", "RolledBack", "Rejected", "Gated"]), max_size=30),
    st.integers(1, 10),
    st.floats(0, 1),
)
def test_budget_property(outcomes: list[str], window: int, limit: float) -> None:
    decision = autonomy_budget_decision(
        AutonomyBudget(max_change_failure_rate=limit, window=window), outcomes
    )
    finished = [o for o in outcomes if o in ("Promoted", "RolledBack")][-window:]
    assert decision.failures == finished.count("RolledBack")
    assert decision.suspend == (decision.failures / window > limit)
    # Another success never makes suspension more likely.
    after = autonomy_budget_decision(
        AutonomyBudget(max_change_failure_rate=limit, window=window), [*outcomes, "Promoted"]
    )
    assert after.failures <= decision.failures


def test_suspension_gate() -> None:
    data = lane().model_dump(by_alias=True)
    data["status"] = {"suspended": True, "suspendedReason": "resumed by nobody"}
    suspended = ChangeLane.model_validate(data)
    result = evaluate_lane_suspension(suspended)
    assert not result.passed and result.gate == "laneSuspended" and result.retry_after is None
    assert "changelane lanes resume docs-site" in result.reason
    tripping = evaluate_lane_suspension(lane(), ["RolledBack"] * 3)
    assert not tripping.passed and "autonomy budget spent" in tripping.reason
    assert GateReport((tripping,)).autonomy_off


def test_policy_combines_and_shadow_is_surfaced() -> None:
    now = datetime(2025, 3, 10, 12, tzinfo=UTC)
    results = evaluate_autonomy_policy(lane(), release="r1", now=now)
    assert GateReport(tuple(results)).passed
    assert [r.gate for r in results] == [
        "laneSuspended",
        "changeWindow",
        "concurrency",
        "dailyLimit",
    ]
    assert not shadow_mode(lane())
    assert shadow_mode(lane(**{"gates.mode": "shadow"}))
