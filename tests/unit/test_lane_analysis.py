"""Grouped per-lane PromQL (pure): the grouped template form, the tick plan, accumulation,
and windows that never reach before a release's step started."""

from __future__ import annotations

import math

import promql_parser
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.analysis import judge, plan_queries
from controller.core.analysis.sample import ReleaseParams, ResultKind, Role, Track, ok
from controller.core.lane_analysis import (
    DueRelease,
    accumulate,
    accumulated_sample,
    plan_check,
    result_for,
    series_templates,
    window_rung,
    windowed_sample,
)
from controller.core.models import AnalysisCheck, Verdict
from controller.core.promql_grouped import grouped_template

SEL = 'namespace="{{ namespace }}", app="{{ workload }}", track="{{ track }}"'
ERRORS = "sum(increase(http_requests_total{" + SEL + ', code=~"5.."}[{{ window }}]))'
TOTAL = "sum(increase(http_requests_total{" + SEL + "}[{{ window }}]))"
P95 = "histogram_quantile(0.95, sum by (le) (rate(lat_bucket{" + SEL + "}[{{ window }}])))"

SEQUENTIAL = AnalysisCheck.model_validate(
    {"name": "errors", "kind": "sequential", "errorsQuery": ERRORS, "totalQuery": TOTAL}
)
LATENCY = AnalysisCheck.model_validate(
    {"name": "latency", "kind": "threshold", "query": P95, "threshold": 0.5}
)
BURN = AnalysisCheck.model_validate(
    {
        "name": "burn",
        "kind": "burnRate",
        "errorsQuery": ERRORS,
        "totalQuery": TOTAL,
        "sloTarget": 0.99,
        "maxBurnRate": 10,
    }
)


def rel(i: int, started: float, step: int = 0) -> DueRelease:
    return DueRelease("ns", f"app-{i}-abc", f"app-{i}", step, started)


# ---------------------------------------------------------------------- grouped templates


def test_grouped_form_keeps_the_release_labels_and_escapes_every_name() -> None:
    grouped = grouped_template(P95)
    assert not isinstance(grouped, str)
    assert dict(grouped.labels) == {"namespace": "namespace", "workload": "app", "track": "track"}
    query = grouped.render(
        namespaces=("ns",),
        workloads=("a.b", 'evil"}) or vector(1) #'),
        tracks=("canary", "baseline"),
        window="30s",
        lane="l",
    )
    assert "sum by (le, namespace, app, track)" in query
    assert 'app=~"^(?:a\\\\.b|evil\\"\\\\}\\\\) or vector\\\\(1\\\\) #)$"' in query
    promql_parser.parse(query)  # the hostile name stayed inside its string


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("sum(x{" + SEL + ', pod_template_hash="{{ revision }}"})', "revision"),
        ("topk(1, x{" + SEL + "})", "ranks"),
        ("sum without (pod) (x{" + SEL + "})", "without"),
        ("sum(x{" + SEL + "}) by (le)", "follows"),
        ('sum(x{namespace="{{ namespace }}", app="{{ workload }}"})', "track"),
        (
            'sum(x{app=~"{{ workload }}", namespace="{{ namespace }}", track="{{ track }}"})',
            "whole",
        ),
        ("x{" + SEL + "}", "no aggregation"),
    ],
)
def test_templates_without_an_exact_grouped_form_stay_per_release(template: str, why: str) -> None:
    result = grouped_template(template)
    assert isinstance(result, str) and why in result


def test_series_templates_are_the_series_plan_queries_renders() -> None:
    for check in (SEQUENTIAL, LATENCY, BURN):
        params = ReleaseParams(lane="l", namespace="ns", workload="w", window_seconds=600)
        planned = [p.key for p in plan_queries(check, params)]
        assert [k for k, _ in series_templates(check, 600, 30)] == planned


# ---------------------------------------------------------------------- the tick plan


def test_one_query_per_role_serves_every_release_of_the_lane() -> None:
    releases = [rel(i, started=0.0) for i in range(500)]
    plan = plan_check(
        SEQUENTIAL,
        releases,
        tick_end=3600,
        tick_window=30,
        unit_s=30,
        min_window_s=30,
        accumulated={},
    )
    assert len(plan.queries) == 2  # errors and total, both tracks in each
    assert all(len(q.releases) == 500 and len(q.tracks) == 2 for q in plan.queries)
    assert not plan.single


def test_windowed_checks_cost_one_query_per_rung_whatever_the_release_count() -> None:
    # 1,000 releases whose steps started at every second of the last hour.
    releases = [rel(i, started=3600.0 - 3.6 * i) for i in range(1000)]
    plan = plan_check(
        LATENCY, releases, tick_end=3600, tick_window=30, unit_s=30, min_window_s=30, accumulated={}
    )
    # 120 units of step so far: rungs 1, 2, 3, 4, 6, ..., 96 (13 of them), one query each.
    assert len(plan.queries) == 13
    assert sum(len(q.releases) for q in plan.queries) == len(plan.windows)


@given(elapsed=st.floats(min_value=0, max_value=10 * 86400), unit=st.integers(1, 600))
def test_a_rung_never_reaches_before_the_step_and_covers_two_thirds_of_it(
    elapsed: float, unit: int
) -> None:
    rung = window_rung(elapsed, unit)
    if elapsed < unit:
        assert rung is None
    else:
        assert rung is not None and unit <= rung <= elapsed
        assert rung >= elapsed * 2 / 3 or rung == unit


def test_a_step_younger_than_the_tick_window_is_not_counted_yet() -> None:
    """Window contamination: a release shipped right after a rolled-back one (same
    workload, same track label) must not be judged on what ran before its step."""
    fresh = rel(1, started=3590.0)  # the step started 10 s before the tick ended
    settled = rel(2, started=3000.0)
    for check in (SEQUENTIAL, LATENCY, BURN):
        plan = plan_check(
            check,
            [fresh, settled],
            tick_end=3600,
            tick_window=30,
            unit_s=30,
            min_window_s=30,
            accumulated={},
        )
        assert fresh.key not in plan.windows and settled.key in plan.windows
        for q in plan.queries:
            for r in q.releases:
                assert 3600 - q.seconds >= r.step_started


# ---------------------------------------------------------------------- accumulation


def test_counts_accumulate_tick_by_tick_into_the_judges_cumulative_window() -> None:
    r = rel(1, started=0.0)
    acc = None
    for tick in range(1, 5):
        increments = {
            (Track.CANARY, Role.ERRORS): ok(1.0),
            (Track.CANARY, Role.TOTAL): ok(100.0),
            (Track.BASELINE, Role.ERRORS): ok(1.0),
            (Track.BASELINE, Role.TOTAL): ok(900.0),
        }
        acc = accumulate(acc, r, tick_end=30 * tick, tick_window=30, increments=increments)
    assert acc is not None and acc.since == 0 and acc.span == 120
    assert acc.counts[(Track.CANARY, Role.TOTAL)] == 400.0
    sample = accumulated_sample("l", SEQUENTIAL, acc, None, {}, 30)
    assert sample.window_seconds == 120
    assert sample.get(Track.BASELINE, Role.TOTAL).value == 3600.0
    measurement = judge(SEQUENTIAL, sample, step=0, now=_now())
    assert measurement.verdict is not Verdict.ERROR


def test_a_gap_or_a_new_step_starts_the_counts_afresh() -> None:
    r = rel(1, started=0.0)
    one = {(Track.CANARY, Role.TOTAL): ok(10.0)}
    acc = accumulate(None, r, tick_end=30, tick_window=30, increments=one)
    skipped = accumulate(acc, r, tick_end=90, tick_window=30, increments=one)
    assert (
        skipped is not None
        and skipped.since == 60
        and skipped.counts[(Track.CANARY, Role.TOTAL)] == 10
    )
    next_step = accumulate(acc, rel(1, 0.0, step=1), tick_end=60, tick_window=30, increments=one)
    assert next_step is not None and next_step.counts[(Track.CANARY, Role.TOTAL)] == 10


def test_a_failed_tick_query_is_an_error_for_the_check_and_resets_the_counts() -> None:
    r = rel(1, started=0.0)
    answer = "lane l, check errors: Prometheus at http://x failed 3 attempts"
    failed = result_for(answer, r, Track.CANARY, "q")
    assert failed.kind is ResultKind.ERROR
    assert (
        accumulate(
            None, r, tick_end=30, tick_window=30, increments={(Track.CANARY, Role.TOTAL): failed}
        )
        is None
    )
    m = judge(
        SEQUENTIAL, accumulated_sample("l", SEQUENTIAL, None, failed, {}, 30), step=0, now=_now()
    )
    assert m.verdict is Verdict.ERROR and "failed 3 attempts" in m.message


def test_a_release_missing_from_the_grouped_answer_has_no_data_never_a_pass() -> None:
    releases = [rel(1, started=0.0), rel(2, started=0.0)]
    plan = plan_check(
        LATENCY, releases, tick_end=600, tick_window=30, unit_s=30, min_window_s=30, accumulated={}
    )
    answers = [{("ns", "app-1", "canary"): 0.1} for _ in plan.queries]
    present = windowed_sample("l", plan, releases[0], answers, {}, 30)
    missing = windowed_sample("l", plan, releases[1], answers, {}, 30)
    assert judge(LATENCY, present, step=0, now=_now()).verdict is Verdict.PASS
    assert judge(LATENCY, missing, step=0, now=_now()).verdict is Verdict.INCONCLUSIVE
    nan = result_for({("ns", "app-1", "canary"): math.nan}, releases[0], Track.CANARY, "q")
    assert nan.kind is ResultKind.NO_DATA


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2026, 11, 30, tzinfo=UTC)


def test_a_lane_with_more_releases_than_a_query_holds_is_asked_in_chunks() -> None:
    from controller.core.lane_analysis import MAX_RELEASES_PER_QUERY

    releases = [rel(i, started=0.0) for i in range(MAX_RELEASES_PER_QUERY + 1)]
    plan = plan_check(
        SEQUENTIAL,
        releases,
        tick_end=600,
        tick_window=30,
        unit_s=30,
        min_window_s=30,
        accumulated={},
    )
    assert len(plan.queries) == 4  # (errors, total) x two chunks
    assert sorted(len(q.releases) for q in plan.queries) == [1, 1, 2000, 2000]
