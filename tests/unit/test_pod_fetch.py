"""The adapter's per-pod fetch: answers are read per pod and track, and any failed per-pod
query leaves the sample without pods (the check then runs at arm level, never fails or
passes a release on it)."""

from __future__ import annotations

from typing import Any

from controller.adapters.metrics.pods import fetch_pods
from controller.bench.decisions import BENCH_CHECKS
from controller.core.analysis.sample import ReleaseParams, Track
from controller.core.models import AnalysisCheck

CHECK = AnalysisCheck.model_validate(BENCH_CHECKS[0])
PARAMS = ReleaseParams(lane="shop", namespace="shop", workload="web", window_seconds=60)


class Answers:
    """A stand-in for PrometheusMetrics.query_vector: one answer per (track, role)."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.asked: list[str] = []

    def query_vector(self, promql: str) -> list[Any] | str:
        self.asked.append(promql)
        if self.fail_on is not None and self.fail_on in promql:
            return "per-pod query: Prometheus at http://p failed 3 attempts: ConnectionError"
        track = "canary" if 'track="canary"' in promql else "primary"
        errors = "5.." in promql
        return [
            {"metric": {"pod": f"{track}-a"}, "value": [0, "2" if errors else "100"]},
            {"metric": {"pod": f"{track}-b"}, "value": [0, "0" if errors else "50"]},
        ]


def test_per_pod_answers_are_read_per_track_and_pod() -> None:
    answers = Answers()
    pods = fetch_pods(answers, CHECK, PARAMS)  # type: ignore[arg-type]
    assert len(answers.asked) == 4  # errors and totals, per track
    assert all("by (pod)" in q for q in answers.asked)
    assert pods[Track.CANARY] == {"canary-a": (2.0, 100.0), "canary-b": (0.0, 50.0)}
    assert set(pods[Track.BASELINE]) == {"primary-a", "primary-b"}


def test_any_failed_per_pod_query_leaves_the_sample_without_pods() -> None:
    assert fetch_pods(Answers(fail_on='track="canary"'), CHECK, PARAMS) == {}  # type: ignore[arg-type]
    assert fetch_pods(Answers(fail_on="5.."), CHECK, PARAMS) == {}  # type: ignore[arg-type]
