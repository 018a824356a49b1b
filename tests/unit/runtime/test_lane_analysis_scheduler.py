"""The per-lane analysis scheduler: one grouped query per check and tick for all releases,
measurements handed to the reconcile only for the state they were judged from."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.bench.grouped_answers import grouped_series
from controller.core.analysis import CheckSample, ReleaseParams
from controller.core.lane_analysis import GroupAnswer
from controller.core.models import LaneRelease, Phase, Verdict
from controller.runtime.indexes import ReleaseIndex
from controller.runtime.lane_analysis import LaneAnalysis
from controller.workqueue import WorkQueue
from tests.unit.lane_fixtures import lane

T0 = 1_800_000_000  # epoch seconds, a whole number like a tick


class FakeMetrics:
    """Answers grouped queries like Prometheus would (one series per listed workload and
    track): 1,000 requests and no errors per tick, 50 ms latency."""

    min_window_seconds = 30

    def __init__(self) -> None:
        self.queries: list[tuple[str, float]] = []

    def query_groups(
        self, promql: str, labels: Mapping[str, str], at: float, what: str
    ) -> GroupAnswer | str:
        self.queries.append((promql, at))
        value = 0.0 if '"5.."' in promql else 0.05 if "histogram_quantile" in promql else 1000.0
        out = {}
        for series in grouped_series(promql) or []:
            key = (series[labels["namespace"]], series[labels["workload"]], series[labels["track"]])
            out[key] = value
        return out

    def fetch(self, check: Any, params: ReleaseParams) -> CheckSample:
        raise AssertionError("every declared template has a grouped form")


def release(i: int, step_started: datetime, **status: Any) -> LaneRelease:
    return LaneRelease.model_validate(
        {
            "metadata": {"name": f"site-{i}-h{i}", "namespace": "docs"},
            "spec": {
                "lane": "docs-site",
                "target": {"name": f"site-{i}", "namespace": "docs"},
                "from": {"podTemplateHash": "old"},
                "to": {"podTemplateHash": f"h{i}"},
            },
            "status": {
                "phase": Phase.PROGRESSING.value,
                "stepStartedAt": step_started.isoformat(),
                **status,
            },
        }
    )


def ready_deployment(ns: str, name: str) -> dict[str, Any]:
    return {"spec": {"replicas": 1}, "status": {"readyReplicas": 1}}


def scheduler(
    releases: list[LaneRelease], clock: list[float]
) -> tuple[LaneAnalysis, FakeMetrics, list[tuple[str, str]]]:
    metrics = FakeMetrics()
    enqueued: list[tuple[str, str]] = []
    docs = lane("docs-site")
    analysis = LaneAnalysis(
        metrics,
        lanes=lambda: {"docs-site": docs},
        releases_of_lane=lambda name: releases,
        deployment=ready_deployment,
        enqueue=lambda ns, name: enqueued.append((ns, name)),
        clock=lambda: clock[0],
    )
    return analysis, metrics, enqueued


def test_a_tick_asks_each_check_once_for_every_release_and_hands_over_once() -> None:
    started = datetime.fromtimestamp(T0 - 600, tz=UTC)
    releases = [release(i, started) for i in range(200)]
    clock = [float(T0)]
    analysis, metrics, enqueued = scheduler(releases, clock)
    analysis.run_due()
    # docs-site: a sequential check (errors, total) and a relative latency check.
    assert len(metrics.queries) == 3
    assert all(at == T0 for _, at in metrics.queries)
    assert len(enqueued) == 200
    docs = lane("docs-site")
    taken = analysis.take(docs, releases[0])
    assert {m.check for m in taken} == {"error-rate", "latency-p95"}
    assert all(m.verdict is not Verdict.ERROR for m in taken), [m.message for m in taken]
    # The release's own query is the evidence, not the lane-wide one.
    assert all("site-0" in (m.query or "") and "site-1" not in (m.query or "") for m in taken)
    assert analysis.take(docs, releases[0]) == ()  # once
    clock[0] += 5
    analysis.run_due()
    assert len(metrics.queries) == 3  # not before the interval


def test_counts_add_up_across_ticks_from_the_first_window_inside_the_step() -> None:
    started = datetime.fromtimestamp(T0 - 10, tz=UTC)  # step 10 s old at the first tick
    releases = [release(0, started)]
    clock = [float(T0)]
    analysis, _, _ = scheduler(releases, clock)
    analysis.run_due()
    assert analysis.take(lane("docs-site"), releases[0]) == ()  # too young: nothing yet
    measured = []
    for _ in range(3):
        clock[0] += 30
        analysis.run_due()
        measured.append(analysis.take(lane("docs-site"), releases[0]))
    counting = [m for ms in measured for m in ms if m.check == "error-rate"]
    assert len(counting) == 3
    # Counting began at T0 (the first tick window wholly inside the step): 3 ticks.
    assert "[90s]" in (counting[-1].query or "")
    evidence = counting[-1].evidence
    assert evidence is not None and evidence.canary_total == 3000 == evidence.baseline_total


def test_a_measurement_judged_from_an_older_state_is_dropped() -> None:
    started = datetime.fromtimestamp(T0 - 600, tz=UTC)
    before = release(0, started)
    clock = [float(T0)]
    analysis, _, _ = scheduler([before], clock)
    analysis.run_due()
    moved_on = release(0, started, lastAnalysisAt=(started + timedelta(seconds=5)).isoformat())
    assert analysis.take(lane("docs-site"), moved_on) == ()


def test_what_a_release_no_longer_due_left_behind_is_forgotten() -> None:
    started = datetime.fromtimestamp(T0 - 600, tz=UTC)
    releases = [release(0, started)]
    clock = [float(T0)]
    analysis, _, _ = scheduler(releases, clock)
    analysis.run_due()
    assert analysis._pending and analysis._counts
    releases[0] = releases[0].model_copy(
        update={"status": releases[0].status.model_copy(update={"phase": Phase.ROLLED_BACK})}
    )
    clock[0] += 30
    analysis.run_due()
    assert not analysis._pending and not analysis._counts


def test_measurements_reach_the_workers_in_the_same_order_at_every_tick() -> None:
    """Each lane's measurements are applied in a burst after its tick; a release applied
    early in one burst and late in the next would wait the interval plus the burst (the
    eighth session measured bursts of 10-15 s at 1,000 releases). The order is the
    release index's (sorted keys), whatever order the releases' events arrived in, and
    the work queue's urgent lane keeps it ahead of the watch echoes waiting in the
    ordinary one."""
    started = datetime.fromtimestamp(T0 - 600, tz=UTC)
    raws = [release(i, started).model_dump(mode="json", by_alias=True) for i in range(50)]
    index = ReleaseIndex()
    queue: WorkQueue[tuple[str, str]] = WorkQueue()
    clock = [float(T0)]
    analysis = LaneAnalysis(
        FakeMetrics(),
        lanes=lambda: {"docs-site": lane("docs-site")},
        releases_of_lane=index.of_lane,
        deployment=ready_deployment,
        enqueue=lambda ns, name: queue.add((ns, name), urgent=True),
        clock=lambda: clock[0],
    )
    orders = []
    for tick, seed in enumerate((1, 2, 3)):
        # The releases' status writes come back as watch events in another order each
        # tick, and their echoes wait in the queue when the tick hands over.
        for i, raw in enumerate(random.Random(seed).sample(raws, len(raws))):
            raw["metadata"]["resourceVersion"] = str(1000 * tick + i)
            index.upsert(raw)
            queue.add(("docs", raw["metadata"]["name"]))
        analysis.run_due()
        served = []
        while (key := queue.get(timeout=0)) is not None:
            served.append(key)
            queue.done(key)
        orders.append(served[: len(raws)])
        clock[0] += 30
    names = sorted(("docs", str(r["metadata"]["name"])) for r in raws)
    assert orders == [names, names, names]
