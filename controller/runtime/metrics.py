"""The controller's own Prometheus metrics, on its own registry, served on ``/metrics``.

The metric names are a contract with the chart's dashboard and alert rules: never rename.
The runtime calls the ``record``/``set`` functions; :meth:`ControllerMetrics.emit` makes the
metrics an audit sink too, so plugging it into the audit fan-out keeps the release counters
and the per-lane scorecard in step with the decisions without extra wiring. Scorecard
arithmetic lives in ``controller.core.scorecard``; this module only publishes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from controller.core.audit import AuditRecord, Decision
from controller.core.autonomy.record import TrackRecord
from controller.core.detection import rollback_reason_class
from controller.core.models import AgentStanding
from controller.core.outcomes import FINAL_OUTCOMES, OUTCOME_OF, Outcome
from controller.core.scorecard import DEFAULT_REWORK_WINDOW, LaneScorecard, ScorecardFold

# Regression onset to rollback: the whole point is seconds-to-minutes, not Flagger's ~5 min.
DETECTION_BUCKETS = (5, 10, 15, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1800)
QUERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
RECONCILE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: Only final outcomes are counted (``core.outcomes``: the LaneRelease phase's spelling).
_OUTCOMES = {d: o.value for d, o in OUTCOME_OF.items() if o in FINAL_OUTCOMES}


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.releases = Counter(
            "changelane_releases_total",
            "Releases that reached an outcome, by lane and outcome.",
            ["lane", "outcome"],
            registry=r,
        )
        self.rollbacks = Counter(
            "changelane_rollbacks_total",
            "Rollbacks by lane and reason class (controller.core.detection).",
            ["lane", "reason"],
            registry=r,
        )
        self.regression_detection = Histogram(
            "changelane_regression_detection_seconds",
            "Time from regression onset (the start of the step that rolled back, else the first "
            "failing measurement) to the rollback decision.",
            ["lane"],
            buckets=DETECTION_BUCKETS,
            registry=r,
        )
        self.analysis_query_duration = Histogram(
            "changelane_analysis_query_duration_seconds",
            "Duration of analysis queries against Prometheus.",
            ["lane", "check"],
            buckets=QUERY_BUCKETS,
            registry=r,
        )
        self.notification_attempts = Counter(
            "changelane_notification_attempts_total",
            "Notification delivery attempts by lane, destination, event and outcome "
            "(delivered, retrying, gave_up, refused: a bad destination or a 4xx).",
            ["lane", "destination", "event", "outcome"],
            registry=r,
        )
        self.analysis_query_errors = Counter(
            "changelane_analysis_query_errors_total",
            "Analysis queries that failed (error, timeout, unusable answer).",
            ["lane", "check"],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "changelane_reconcile_duration_seconds",
            "Duration of one reconcile, by object kind.",
            ["kind"],
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.workqueue_depth = Gauge(
            "changelane_workqueue_depth", "Keys waiting in the work queue.", registry=r
        )
        self.lane_autonomy_enabled = Gauge(
            "changelane_lane_autonomy_enabled",
            "1 when the lane's kill-switch flag allows autonomous releases, else 0.",
            ["lane"],
            registry=r,
        )
        self.lane_suspended = Gauge(
            "changelane_lane_suspended",
            "1 when the lane is suspended, else 0.",
            ["lane"],
            registry=r,
        )
        self.leader = Gauge(
            "changelane_leader",
            "1 when this instance acts: the elected leader, or with shards the owner of any.",
            registry=r,
        )
        self.lease_held = Gauge(
            "changelane_lease_held",
            "1 per Lease (the leader Lease or a shard Lease) this instance acts under now.",
            ["lease"],
            registry=r,
        )
        self.shards = Gauge(
            "changelane_shards",
            "Leases the lanes are spread over (1: one leader Lease; --shards).",
            registry=r,
        )
        self.change_failure_rate = Gauge(
            "changelane_lane_change_failure_rate",
            "Rolled back / (promoted + rolled back) since the controller started.",
            ["lane"],
            registry=r,
        )
        self.provenance_coverage = Gauge(
            "changelane_lane_provenance_coverage",
            "Share of releases whose provenance names agent, model, change and tests.",
            ["lane"],
            registry=r,
        )
        self.rework_rate = Gauge(
            "changelane_lane_rework_rate",
            "Share of releases that follow a promotion of the same workload within the "
            "rework window.",
            ["lane"],
            registry=r,
        )
        self.releases_gated = Counter(
            "changelane_releases_gated_total",
            "Releases held by a gate, by lane and gate.",
            ["lane", "gate"],
            registry=r,
        )
        pair = ["lane", "agent", "model"]
        self.agent_releases = Gauge(
            "changelane_agent_releases",
            "Releases in the cluster by author and outcome (seen = all of them); authors "
            "the lane does not allow, or beyond its maxTrackedAgents, fold into 'other'.",
            [*pair, "outcome"],
            registry=r,
        )
        self.agent_change_failure = Gauge(
            "changelane_agent_change_failure_rate",
            "Change-failure rate by author: the estimate and its 95% Wilson bounds.",
            [*pair, "bound"],
            registry=r,
        )
        self.agent_rates = Gauge(
            "changelane_agent_track_record",
            "Track-record figures by author: rework_rate, containment, provenance_coverage, "
            "median_decision_seconds.",
            [*pair, "figure"],
            registry=r,
        )
        self.agent_level = Gauge(
            "changelane_agent_autonomy_level",
            "Autonomy level by author in lanes with agentAutonomy: 0 shadow, 1 supervised, "
            "2 autonomous.",
            pair,
            registry=r,
        )
        self._published: dict[tuple[Gauge, str], set[tuple[str, ...]]] = {}
        self._scorecard = ScorecardFold(DEFAULT_REWORK_WINDOW)
        self._lock = threading.Lock()

    # -- decisions ------------------------------------------------------------------------

    def emit(self, record: AuditRecord) -> None:
        """Audit sink: count outcomes and rollbacks, and refresh the lane's scorecard."""
        outcome = _OUTCOMES.get(record.decision)
        if outcome is not None:
            self.releases.labels(lane=record.lane, outcome=outcome).inc()
        if record.decision is Decision.ROLLED_BACK:
            # The reason text names measured values: a label needs its bounded class.
            reason = rollback_reason_class(record.reason, record.actor)
            self.rollbacks.labels(lane=record.lane, reason=reason).inc()
        with self._lock:
            self._scorecard.add(record)
            card = self._scorecard.scorecards()[record.lane]
        self.publish_scorecard(card)

    def publish_scorecard(self, card: LaneScorecard) -> None:
        """Set the lane's gauges; a rate that is still unknown is not published."""
        for gauge, value in (
            (self.change_failure_rate, card.change_failure_rate),
            (self.provenance_coverage, card.provenance_coverage),
            (self.rework_rate, card.rework_rate),
        ):
            if value is not None:
                gauge.labels(lane=card.lane).set(value)

    def publish_track_records(self, lane: str, records: Iterable[TrackRecord]) -> None:
        """Replace the lane's per-author series (an author that folded into 'other' or
        left the cluster loses its own)."""
        releases, failure, rates = [], [], []
        for rec in records:
            pair = (lane, rec.agent, rec.model or "")
            releases += [
                ((*pair, "seen"), rec.shipped),
                ((*pair, Outcome.PROMOTED.value), rec.promoted),
                ((*pair, Outcome.ROLLED_BACK.value), rec.rolled_back),
                ((*pair, Outcome.REJECTED.value), rec.rejected),
            ]
            interval = rec.change_failure_interval()
            if rec.change_failure_rate is not None and interval is not None:
                failure += [
                    ((*pair, "estimate"), rec.change_failure_rate),
                    ((*pair, "lower"), interval[0]),
                    ((*pair, "upper"), interval[1]),
                ]
            for name, value in (
                ("rework_rate", rec.rework_rate),
                ("containment", rec.containment),
                ("provenance_coverage", rec.provenance_coverage),
                ("median_decision_seconds", rec.median_decision_seconds),
            ):
                if value is not None:
                    rates.append(((*pair, name), value))
        self._replace(self.agent_releases, lane, releases)
        self._replace(self.agent_change_failure, lane, failure)
        self._replace(self.agent_rates, lane, rates)

    def publish_levels(self, lane: str, standings: Iterable[AgentStanding]) -> None:
        self._replace(
            self.agent_level,
            lane,
            [((lane, s.agent, s.model), s.level.rank) for s in standings],
        )

    def _replace(
        self, gauge: Gauge, lane: str, series: Sequence[tuple[tuple[str, ...], float]]
    ) -> None:
        with self._lock:
            before = self._published.get((gauge, lane), set())
            now = {labels for labels, _ in series}
            for labels in before - now:
                gauge.remove(*labels)
            for labels, value in series:
                gauge.labels(*labels).set(value)
            self._published[(gauge, lane)] = now

    def record_gated(self, lane: str, gate: str) -> None:
        self.releases_gated.labels(lane=lane, gate=gate).inc()

    def record_regression_detected(self, lane: str, seconds: float) -> None:
        self.regression_detection.labels(lane=lane).observe(seconds)

    # -- analysis and reconcile ---------------------------------------------------------

    def record_analysis_query(
        self, lane: str, check: str, seconds: float, *, failed: bool = False
    ) -> None:
        self.analysis_query_duration.labels(lane=lane, check=check).observe(seconds)
        if failed:
            self.analysis_query_errors.labels(lane=lane, check=check).inc()

    @contextmanager
    def time_analysis_query(self, lane: str, check: str) -> Iterator[None]:
        """Time a query; an exception counts as an error and propagates."""
        start = time.perf_counter()
        failed = True
        try:
            yield
            failed = False
        finally:
            self.record_analysis_query(lane, check, time.perf_counter() - start, failed=failed)

    def record_reconcile(self, kind: str, seconds: float) -> None:
        self.reconcile_duration.labels(kind=kind).observe(seconds)

    @contextmanager
    def time_reconcile(self, kind: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record_reconcile(kind, time.perf_counter() - start)

    # -- state ----------------------------------------------------------------------------

    def set_workqueue_depth(self, depth: int) -> None:
        self.workqueue_depth.set(depth)

    def set_lane_autonomy(self, lane: str, enabled: bool) -> None:
        self.lane_autonomy_enabled.labels(lane=lane).set(1 if enabled else 0)

    def set_lane_suspended(self, lane: str, suspended: bool) -> None:
        self.lane_suspended.labels(lane=lane).set(1 if suspended else 0)

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)

    def exposition(self) -> bytes:
        """The text format, as ``/metrics`` serves it."""
        return generate_latest(self.registry)


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(
    metrics: ControllerMetrics, port: int = 0, addr: str = "127.0.0.1"
) -> MetricsServer:
    """Serve ``/metrics`` from a daemon thread. Loopback by default; in a pod the runtime
    passes ``0.0.0.0`` so Prometheus can scrape it. ``port=0`` picks a free port."""
    server, thread = start_http_server(port, addr=addr, registry=metrics.registry)
    return MetricsServer(server, thread)
