"""The per-lane scheduler asks for the baseline's history once per check and tick, for the
releases that start analysing, and the prior rides in each release's first evidence."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controller.core.models import ChangeLane, CheckKind, LaneRelease, NoisePrior
from controller.runtime.lane_analysis import LaneAnalysis
from tests.unit.lane_fixtures import lane
from tests.unit.runtime.test_lane_analysis_scheduler import (
    T0,
    FakeMetrics,
    ready_deployment,
    release,
)

PRIOR = NoisePrior(dispersion=0.02, batches=4.0, history_batches=30)


class FakeMetricsWithHistory(FakeMetrics):
    def __init__(self) -> None:
        super().__init__()
        self.prefetched: list[tuple[str, int]] = []
        self.asked: list[str] = []

    def prefetch_priors(
        self, lane: ChangeLane, releases: list[LaneRelease], check: Any, now: datetime
    ) -> None:
        self.prefetched.append((check.name, len(releases)))

    def noise_prior(
        self, lane: ChangeLane, release: LaneRelease, check: Any, now: datetime
    ) -> NoisePrior | None:
        self.asked.append(release.name)
        return PRIOR


def docs_lane(noise_prior: str) -> ChangeLane:
    docs = lane("docs-site")
    checks = [
        c.model_copy(update={"noise_prior": noise_prior}) if c.kind is CheckKind.SEQUENTIAL else c
        for c in docs.spec.analysis.checks
    ]
    analysis = docs.spec.analysis.model_copy(update={"checks": checks})
    return docs.model_copy(update={"spec": docs.spec.model_copy(update={"analysis": analysis})})


def run_tick(noise_prior: str) -> tuple[FakeMetricsWithHistory, list[Any]]:
    started = datetime.fromtimestamp(T0 - 600, tz=UTC)
    releases = [release(i, started) for i in range(50)]
    metrics = FakeMetricsWithHistory()
    docs = docs_lane(noise_prior)
    analysis = LaneAnalysis(
        metrics,
        lanes=lambda: {"docs-site": docs},
        releases_of_lane=lambda name: releases,
        deployment=ready_deployment,
        enqueue=lambda ns, name: None,
        clock=lambda: float(T0),
    )
    analysis.run_due()
    return metrics, list(analysis.take(docs, releases[0]))


def test_the_history_is_asked_once_per_check_and_tick_and_seeds_the_evidence() -> None:
    metrics, taken = run_tick("history")
    # one prefetch per check of the lane for all 50 releases, not one per release
    assert metrics.prefetched == [("error-rate", 50), ("latency-p95", 50)]
    sequential = next(m for m in taken if m.check == "error-rate")
    assert sequential.evidence is not None and sequential.evidence.prior == PRIOR
    latency = next(m for m in taken if m.check == "latency-p95")
    assert latency.evidence is None  # only a sequential check carries a noise prior


def test_a_check_with_the_fixed_prior_never_takes_one() -> None:
    _, taken = run_tick("fixed")
    sequential = next(m for m in taken if m.check == "error-rate")
    assert sequential.evidence is not None and sequential.evidence.prior is None
