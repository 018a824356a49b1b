"""Backtests: the pure parts (releases, plans, A/A splits, replay, report) and the engine
against an in-memory history."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.adapters.metrics.prometheus import PrometheusRequestError
from controller.backtest.aa import (
    SplitError,
    SplitParams,
    pod_splits,
    series_selector,
    split_check,
    split_template,
)
from controller.backtest.engine import AAOptions, BacktestError, run_backtest
from controller.backtest.releases import (
    Expect,
    PastRelease,
    ReplicaSetSeen,
    healthy_windows,
    parse_releases_csv,
    releases_from_generations,
    releases_from_replicasets,
)
from controller.backtest.replay import Outcome, grid, interval_seconds, replay
from controller.backtest.report import AARun, document, gate, summarize
from controller.backtest.series import SeriesPlan, Timeline, coalesce, range_chunks, value_windows
from controller.core.analysis import ReleaseParams, Role, Track
from controller.core.promql import literal_alternation, render
from tests.unit.lane_fixtures import lane

LANE = lane("docs-site")
T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
IV = interval_seconds(LANE)


# --------------------------------------------------------------------------- releases CSV


def test_csv_rows_and_each_bad_row_named() -> None:
    text = (
        "namespace,workload,start,end,expect\n"
        "docs,docs,2026-10-01T12:00:00Z,2026-10-01T12:30:00+00:00,promote\n"
        "docs,docs,2026-10-01T13:00:00+01:00,2026-10-01T13:30:00+01:00,\n"
        "docs,,2026-10-01T12:00:00Z,2026-10-01T12:30:00Z,promote\n"
        "docs,docs,2026-10-01T12:00:00,2026-10-01T12:30:00Z,promote\n"
        "docs,docs,2026-10-01T12:00:00Z,2026-10-01T11:30:00Z,ROLLBACK\n"
        "docs,docs,2026-10-01T12:00:00Z,2026-10-01T12:30:00Z,perhaps\n"
        "\n"
        "docs,docs,2026-10-01T12:00:00Z\n"
    )
    releases, problems = parse_releases_csv(text, "r.csv")
    assert [(r.start, r.expect, r.source) for r in releases] == [
        (T0, Expect.PROMOTE, "r.csv:2"),
        (T0, None, "r.csv:3"),
    ]
    assert [str(p) for p in problems] == [
        "r.csv: line 4: workload: required: the Deployment's namespace and name",
        "r.csv: line 5: start: expected a time with a zone (Z or +01:00), "
        "got '2026-10-01T12:00:00'",
        "r.csv: line 6: end: must be after start (2026-10-01T12:00:00Z)",
        "r.csv: line 7: expect: expected promote, rollback or empty, got 'perhaps'",
        "r.csv: line 9: expected 5 columns, got 3",
    ]


def test_csv_header_is_required() -> None:
    releases, problems = parse_releases_csv("ns,wl,start,end\n", "r.csv")
    assert not releases
    assert str(problems[0]).startswith(
        "r.csv: line 1: expected the header namespace,workload,start,end,expect"
    )


def test_discovery_from_replicasets_and_generations() -> None:
    seen = [
        ReplicaSetSeen("docs", "docs", "docs-aaa", T0 - timedelta(days=3)),
        ReplicaSetSeen("docs", "docs", "docs-bbb", T0),
        ReplicaSetSeen("docs", "docs", "docs-ccc", T0 + timedelta(minutes=10)),
    ]
    found = releases_from_replicasets(
        seen, since=T0 - timedelta(days=1), until=T0 + timedelta(days=1), horizon_s=1200
    )
    assert [(r.from_revision, r.to_revision, r.end - r.start) for r in found] == [
        ("aaa", "bbb", timedelta(minutes=10)),  # cut short by the next release
        ("bbb", "ccc", timedelta(minutes=20)),  # the lane's horizon
    ]
    points = {int(T0.timestamp()) + 30 * i: float(1 + (i >= 5) + (i >= 9)) for i in range(20)}
    gens = releases_from_generations(
        "docs", "docs", points, until=T0 + timedelta(days=1), horizon_s=600
    )
    assert [r.start for r in gens] == [T0 + timedelta(seconds=150), T0 + timedelta(seconds=270)]


def test_healthy_windows_avoid_releases() -> None:
    busy = [PastRelease("docs", "docs", T0 + timedelta(hours=1), T0 + timedelta(hours=2))]
    windows = healthy_windows(
        busy, namespace="docs", workload="docs", since=T0, until=T0 + timedelta(hours=4),
        length_s=1800, limit=10,
    )  # fmt: skip
    assert len(windows) == 6
    for a, b in windows:
        assert b - a == timedelta(minutes=30)
        assert b <= busy[0].start or a >= busy[0].end


# --------------------------------------------------------------------------- fetch bounds


@given(
    start=st.integers(0, 10_000),
    length=st.integers(0, 50_000),
    step=st.integers(1, 120),
    cap=st.integers(1, 500),
)
def test_range_chunks_cover_the_grid_once_and_stay_bounded(
    start: int, length: int, step: int, cap: int
) -> None:
    end = start + length
    covered: list[int] = []
    for a, b in range_chunks(start, end, step, cap):
        points = list(range(a, b + 1, step))
        assert 1 <= len(points) <= cap
        covered += points
    assert covered == list(range(start, end + 1, step))


@given(st.lists(st.tuples(st.integers(0, 100), st.integers(1, 50)), min_size=1, max_size=20))
def test_coalesce_covers_every_span(raw: list[tuple[int, int]]) -> None:
    spans = [(a * 30, (a + n) * 30) for a, n in raw]
    merged = coalesce(spans, 30)
    for a, b in spans:
        assert any(ma <= a and b <= mb for ma, mb in merged)
    assert all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(merged))


def test_value_windows_double_up_to_the_longest_step() -> None:
    assert value_windows(30, 120) == (30, 60, 120)
    assert value_windows(30, 100) == (30, 60, 120)
    assert value_windows(60, 30) == (60,)


# --------------------------------------------------------------------------- A/A splits


def test_split_template_replaces_the_arm_matcher() -> None:
    template = (
        'sum(increase(x{app="{{ workload }}", track="{{ track }}", rev="{{ revision }}"}'
        "[{{ window }}]))"
    )
    assert split_template(template) == (
        'sum(increase(x{app="{{ workload }}", pod=~"{{ pod }}", pod=~"{{ pod }}"}[{{ window }}]))'
    )
    with pytest.raises(SplitError, match="does not select its arm"):
        split_template('sum(x{app="{{ workload }}"})')
    with pytest.raises(SplitError, match="whole label value matched with ="):
        split_template('sum(x{track!="{{ track }}"})')
    with pytest.raises(SplitError, match="whole label value"):
        split_template('sum(x{deployment="{{ workload }}-{{ track }}"})')


def test_split_check_names_the_check_and_field() -> None:
    checks = {c.name: c for c in LANE.spec.analysis.checks}
    split = split_check(checks["error-rate"])
    assert split.errors_query is not None and 'pod=~"{{ pod }}"' in split.errors_query
    assert "track" not in split.errors_query
    unsplittable = checks["error-rate"].model_copy(update={"total_query": "sum(x)"})
    with pytest.raises(SplitError, match="check error-rate, totalQuery: "):
        split_check(unsplittable)


@given(st.lists(st.text(min_size=1, max_size=12), min_size=2, max_size=5, unique=True))
def test_pod_regex_matches_exactly_its_pods_after_escaping(pods: list[str]) -> None:
    canary, baseline = tuple(pods[:1]), tuple(pods[1:])
    params = SplitParams(
        lane="l", namespace="n", workload="w", canary_pods=canary, baseline_pods=baseline
    )
    rendered = render('x{pod=~"{{ pod }}"}', params.for_track(Track.CANARY, 30))
    body = rendered[len('x{pod=~"') : -len('"}')]
    # Undo PromQL string escaping, then the value is the regex Prometheus will use.
    value = body.encode("latin-1", "backslashreplace").decode("unicode_escape")
    assert value == literal_alternation(canary)
    assert all(re.fullmatch(value, p) for p in canary)
    assert not any(re.fullmatch(value, p) for p in baseline)


def test_pod_splits_are_distinct_partitions() -> None:
    pods = ("a", "b", "c", "d", "e")
    splits = pod_splits(pods, 2, 6, seed=3)
    assert len(splits) == len(set(splits)) == 6
    for canary, baseline in splits:
        assert len(canary) == 2 and sorted(canary + baseline) == list(pods)
    assert splits == pod_splits(pods, 2, 6, seed=3)
    assert len(pod_splits(pods, 1, 100, seed=0)) == 5
    assert pod_splits(("a",), 1, 5, seed=0) == []


def test_series_selector_finds_the_selector_around_a_marker() -> None:
    q = 'sum(rate(x_total{a="}{", pod=~"MARK"}[1m])) / sum(rate(y[1m]))'
    assert series_selector(q, "MARK") == 'x_total{a="}{", pod=~"MARK"}'
    assert series_selector(q, "nope") is None


# --------------------------------------------------------------------------- replay


def release(minutes: int = 25, expect: Expect | None = Expect.PROMOTE) -> PastRelease:
    return PastRelease("docs", "docs", T0, T0 + timedelta(minutes=minutes), expect)


def history_for(
    plan: SeriesPlan,
    r: PastRelease,
    *,
    canary_errors: float = 0.01,
    canary_latency: float = 0.05,
    tracks: tuple[Track, ...] = (Track.CANARY, Track.BASELINE),
) -> dict[str, Timeline]:
    """Per-interval counts (canary 100 req/s... of which a share fail) and latency values."""
    data: dict[str, Timeline] = {}
    start, end = grid(r.start, IV), int(r.end.timestamp())
    for fetch in plan.fetches:
        if fetch.key.track not in tracks:
            continue
        canary = fetch.key.track is Track.CANARY
        rps = 100.0 if canary else 300.0
        if fetch.key.role is Role.TOTAL:
            value = rps * IV
        elif fetch.key.role is Role.ERRORS:
            value = rps * IV * (canary_errors if canary else 0.01)
        else:
            value = canary_latency if canary else 0.05
        data[fetch.query] = {t: value for t in range(start + IV, end + 1, IV)}
    return data


def plan_for(r: PastRelease) -> SeriesPlan:
    params = ReleaseParams(lane=LANE.name, namespace=r.namespace, workload=r.workload)
    return SeriesPlan(LANE.spec.analysis.checks, params, interval_s=IV, longest_window_s=120)


def test_plan_fetches_each_query_once_at_the_interval() -> None:
    plan = plan_for(release())
    keys = sorted(str(f.key) for f in plan.fetches)
    assert keys == sorted(
        [
            "canary errors [30s]", "canary total [30s]",
            "baseline errors [30s]", "baseline total [30s]",
            "canary value [30s]", "canary value [60s]", "canary value [120s]",
            "baseline value [30s]", "baseline value [60s]", "baseline value [120s]",
        ]
    )  # fmt: skip
    assert len({f.query for f in plan.fetches}) == len(plan.fetches)


def test_a_healthy_canary_promotes_after_the_lanes_steps() -> None:
    r = release()
    plan = plan_for(r)
    result = replay(LANE, r, plan, history_for(plan, r))
    assert result.outcome is Outcome.PROMOTE, result.reason
    steps = LANE.spec.strategy.steps
    assert result.step == len(steps) - 1
    # 300 s of steps, then until x2 is ruled out: the prior allowance for multiplicative
    # noise fades batch by batch on these noiseless counts (docs/judging.md)
    assert result.decided_after_s is not None and 300 <= result.decided_after_s <= 900
    assert {e.check for e in result.evidence} == {"error-rate", "latency-p95"}
    assert all(e.verdict == "Pass" for e in result.evidence)


def test_an_erroring_canary_rolls_back_at_the_first_tick_with_evidence() -> None:
    r = release(expect=Expect.ROLLBACK)
    plan = plan_for(r)
    result = replay(LANE, r, plan, history_for(plan, r, canary_errors=0.08))
    assert result.outcome is Outcome.ROLLBACK
    assert (result.step, result.decided_after_s) == (0, 30.0)
    failed = [e for e in result.evidence if e.verdict == "Fail"]
    assert [e.check for e in failed] == ["error-rate"]
    assert failed[0].canary == pytest.approx(0.08) and failed[0].baseline == pytest.approx(0.01)
    assert "confidence sequence" in (failed[0].statistic or "")


def test_a_slow_canary_rolls_back_on_latency() -> None:
    r = release()
    plan = plan_for(r)
    result = replay(LANE, r, plan, history_for(plan, r, canary_latency=0.4))
    assert result.outcome is Outcome.ROLLBACK and "latency-p95" in result.reason


def test_no_data_is_never_a_pass() -> None:
    r = release()
    plan = plan_for(r)
    assert replay(LANE, r, plan, {}).outcome is Outcome.NO_DATA
    # Only the baseline has data: the judges hold, the release never promotes.
    half = replay(LANE, r, plan, history_for(plan, r, tracks=(Track.BASELINE,)))
    assert half.outcome is Outcome.UNDECIDED
    assert "history ended" in half.reason


def test_history_that_ends_early_is_undecided() -> None:
    r = release(minutes=3)
    plan = plan_for(r)
    result = replay(LANE, r, plan, history_for(plan, r))
    assert result.outcome is Outcome.UNDECIDED and result.decided_at is None


# --------------------------------------------------------------------------- engine


@dataclass
class _Series:
    labels: Mapping[str, str]
    points: Timeline


@dataclass
class FakeHistory:
    """Answers range queries from a function of (query, time); records every request."""

    value: Mapping[str, float]
    queries: int = 0
    calls: list[tuple[str, int, int]] = field(default_factory=list)
    fail: dict[str, PrometheusRequestError] = field(default_factory=dict)
    pods: list[str] = field(default_factory=lambda: ["p-0", "p-1", "p-2"])
    url: str = "http://fake"

    def _answer(self, query: str) -> float | None:
        for needle, err in self.fail.items():
            if needle in query:
                raise err
        for needle, v in self.value.items():
            if needle in query:
                return v
        return None

    def range(
        self, query: str, start: int, end: int, step_s: int, *, what: str
    ) -> Sequence[_Series]:
        points = self.one(query, start, end, step_s, what=what)
        return [_Series({}, points)] if points else []

    def one(self, query: str, start: int, end: int, step_s: int, *, what: str) -> Timeline:
        self.queries += 1
        self.calls.append((query, start, end))
        try:
            v = self._answer(query)
        except PrometheusRequestError as exc:
            raise PrometheusRequestError(f"{what}: {exc}") from exc
        return {} if v is None else {t: v for t in range(start, end + 1, step_s)}

    def instant(self, query: str, at: int, *, what: str) -> list[tuple[Mapping[str, str], float]]:
        self.queries += 1
        if "kube_replicaset_created" in query:
            return []  # no kube-state-metrics here: discovery falls back to generations
        assert query.startswith("sum by (pod) (count_over_time(http_requests_total{")
        assert 'pod!=""' in query
        # p-late arrived mid-window (a canary, a new version): not part of the population.
        counts = {**{p: 100.0 for p in self.pods}, "p-late": 40.0}
        return [({"pod": p}, n) for p, n in counts.items()]


HEALTHY = {'code=~"5.."': 30.0, "http_requests_total": 3000.0, "histogram_quantile": 0.05}


def test_engine_batches_close_releases_into_one_range_query() -> None:
    near = [
        PastRelease(
            "docs",
            "docs",
            T0 + timedelta(minutes=30 * i),
            T0 + timedelta(minutes=30 * i + 25),
            Expect.PROMOTE,
        )
        for i in range(4)
    ]
    history = FakeHistory(HEALTHY)
    run = run_backtest(
        LANE, history, since=T0, until=T0 + timedelta(days=1), releases=near, aa=None
    )
    assert [r.outcome for r in run.results] == [Outcome.PROMOTE] * 4
    # Ten distinct queries, each fetched once for all four neighbouring releases.
    assert history.queries == run.summary.queries == 10
    assert run.summary.false_rollback_rate == 0.0 and run.summary.known_good == 4


def test_engine_a_a_runs_split_pods_and_count_false_rollbacks() -> None:
    one = [
        PastRelease("docs", "docs", T0 + timedelta(hours=3), T0 + timedelta(hours=3, minutes=25))
    ]
    history = FakeHistory(HEALTHY)
    run = run_backtest(
        LANE, history, since=T0, until=T0 + timedelta(hours=6), releases=one,
        aa=AAOptions(windows=2, splits=2),
    )  # fmt: skip
    assert run.aa is not None and run.aa.problem is None
    assert len(run.aa.results) == 4 and run.aa.rollbacks == 0
    split_queries = [q for q, _, _ in history.calls if "pod=~" in q]
    assert split_queries and all("track=" not in q for q in split_queries)
    assert not any("p-late" in q for q in split_queries)
    assert run.summary.aa_runs == 4 and run.summary.false_rollback_rate == 0.0


def test_engine_errors_name_the_check() -> None:
    history = FakeHistory(
        HEALTHY,
        fail={
            "histogram_quantile": PrometheusRequestError(
                "Prometheus rejected the query (HTTP 400): parse error"
            )
        },
    )
    with pytest.raises(BacktestError, match=r"check latency-p95 .*HTTP 400"):
        run_backtest(
            LANE, history, since=T0, until=T0 + timedelta(days=1), releases=[release()], aa=None
        )
    with pytest.raises(BacktestError, match="no releases of lane docs-site"):
        run_backtest(LANE, FakeHistory(HEALTHY), since=T0, until=T0 + timedelta(days=1), aa=None)


# --------------------------------------------------------------------------- report


def test_summary_json_and_gate() -> None:
    r = release()
    plan = plan_for(r)
    good = replay(LANE, r, plan, history_for(plan, r))
    bad_release = release(expect=Expect.ROLLBACK)
    missed = replay(LANE, bad_release, plan, history_for(plan, bad_release))
    empty = replay(LANE, r, plan, {})
    aa = AARun((good, good, good), windows=1, splits=3)
    s = summarize([good, missed, empty], aa, queries=7, seconds=1.25)
    assert (s.releases, s.no_data, s.false_rollback_rate, s.missed_regression_rate) == (
        3, 1, 0.0, 1.0,
    )  # fmt: skip
    doc = document([good, missed, empty], aa, s)
    assert list(doc["releases"][0])[:8] == [
        "namespace", "workload", "start", "expect", "decision", "decided_after_s", "step",
        "evidence",
    ]  # fmt: skip
    assert list(doc["releases"][0]["evidence"][0]) == [
        "check", "canary", "baseline", "threshold", "statistic", "verdict",
    ]  # fmt: skip
    assert doc["releases"][2]["decision"] == "no_data"
    assert list(doc["summary"])[:6] == [
        "releases", "false_rollback_rate", "missed_regression_rate", "promote_median_s",
        "queries", "seconds",
    ]  # fmt: skip
    assert gate(s, 0.01)[0] is True
    nothing = summarize([empty], None, queries=1, seconds=0.1)
    ok, why = gate(nothing, 0.5)
    assert not ok and "no false-rollback estimate" in why


def test_since_and_until_take_durations_ago_or_iso_times() -> None:
    import click

    from controller.cli.backtest import when

    now = datetime(2026, 11, 1, tzinfo=UTC)
    assert when("30d", now) == now - timedelta(days=30)
    assert when("1w2d6h", now) == now - timedelta(days=9, hours=6)
    assert when("2026-10-01T00:00:00+02:00", now) == datetime(2026, 9, 30, 22, tzinfo=UTC)
    with pytest.raises(click.BadParameter, match="expected a duration before now"):
        when("last tuesday", now)
