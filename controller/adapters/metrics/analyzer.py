"""The runtime's ``Analyzer`` port on Prometheus: release -> parameters -> fetch -> judge.

Parameters come from the release: ``namespace`` and ``workload`` from its target,
``revision`` from the pod-template hash of the track (``to`` for the canary, ``from`` for
the baseline), ``lane`` from the lane, and ``window`` = seconds since the canary reached
its current step (``status.stepStartedAt``), the window the sequential test assumes.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from typing import Protocol

import structlog

from controller.adapters.metrics.baseline_history import BaselineHistory
from controller.adapters.metrics.prometheus import PrometheusMetrics
from controller.adapters.metrics.prometheus_range import PrometheusHistory
from controller.core.analysis import (
    CheckSample,
    ReleaseParams,
    analysis_failed,
    analysis_window_seconds,
    judge_release,
)
from controller.core.analysis.sample import params_for_window
from controller.core.models import AnalysisCheck, ChangeLane, LaneRelease, Measurement, Verdict

log = structlog.get_logger("changelane.analysis")


def release_params(
    lane: ChangeLane, release: LaneRelease, now: datetime, min_window_seconds: int
) -> ReleaseParams:
    started = release.status.step_started_at or release.status.started_at or now
    window = analysis_window_seconds(started, now)
    return params_for_window(lane.name, release, window, min_window_seconds)


def step_age_seconds(release: LaneRelease, now: datetime) -> int:
    """Whole seconds the release's current step has run (rounded down: a window this long
    ends now and starts no earlier than the step)."""
    started = release.status.step_started_at or release.status.started_at or now
    return max(0, math.floor((now - started).total_seconds()))


class MetricsSource(Protocol):
    """What the analyzer needs from a metrics backend: PrometheusMetrics, or the demo's
    embedded source when no Prometheus is installed."""

    min_window_seconds: int

    def fetch(self, check: AnalysisCheck, params: ReleaseParams) -> CheckSample: ...


class PrometheusAnalyzer:
    """Queries and judges one check for a release's current step; never raises."""

    def __init__(self, metrics: PrometheusMetrics | MetricsSource) -> None:
        self.metrics = metrics
        # The judge's noise prior from the baseline's history needs range queries: on a
        # real Prometheus; the demo's embedded source keeps the fixed prior.
        self.history = (
            BaselineHistory(PrometheusHistory(metrics), metrics.min_window_seconds)
            if isinstance(metrics, PrometheusMetrics)
            else None
        )

    def measure(
        self, lane: ChangeLane, release: LaneRelease, check: AnalysisCheck, now: datetime
    ) -> Measurement:
        step = release.status.current_step
        age, min_window = step_age_seconds(release, now), self.metrics.min_window_seconds
        if age < min_window:
            # Never let a window reach before the step started: the same track label may
            # still hold the series of whatever ran before it (a rolled-back canary).
            return Measurement(
                check=check.name,
                time=now,
                step=step,
                verdict=Verdict.INCONCLUSIVE,
                message=f"lane {lane.name}, check {check.name}: the step started {age}s ago, "
                f"less than the minimum analysis window ({min_window}s); measuring once it "
                "is, so that no window reaches before the step",
            )
        try:
            params = release_params(lane, release, now, min_window)
            params = replace(params, window_seconds=age)
            sample = self.metrics.fetch(check, params)
            prior = self.history.prior(lane, release, check, now) if self.history else None
            measurement = judge_release(lane, release, check, sample, now, prior)
        except Exception as exc:  # a bug here must hold the release, never pass it
            log.exception("analysis failed", lane=lane.name, check=check.name)
            return analysis_failed(lane, check, step, now, exc)
        log.info(
            "measurement",
            lane=lane.name,
            release=release.name,
            check=check.name,
            step=step,
            verdict=measurement.verdict.value,
            canary=measurement.canary,
            baseline=measurement.baseline,
            threshold=measurement.threshold,
            statistic=measurement.statistic,
            window_s=params.window_seconds,
        )
        return measurement
