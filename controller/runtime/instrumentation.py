"""The controller's ports, wrapped so that using them feeds ``ControllerMetrics``.

- :class:`MeasuredAnalyzer` times every analysis (one check, all its queries) and counts
  the ones that failed to measure (an ``Error`` verdict, or an exception).
- :class:`ObservedGates` publishes the kill-switch result per lane each time a release's
  gates are evaluated, and remembers which gates held a release, so that
- :class:`MetricsSink`, the audit sink in front of ``ControllerMetrics.emit``, can count a
  ``gated`` decision per holding gate. It also times regression onset to rollback
  (``controller.core.detection``) and drops a record id it has already counted (a record
  is re-flushed when clearing the outbox lost a race).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime

from controller.core.audit import AuditRecord, Decision
from controller.core.detection import RegressionOnsets
from controller.core.gates import GateReport
from controller.core.models import AnalysisCheck, ChangeLane, LaneRelease, Measurement, Verdict
from controller.runtime.metrics import ControllerMetrics
from controller.runtime.ports import Analyzer, GateEvaluator

KILL_SWITCH_GATE = "killSwitch"
#: Record ids remembered for de-duplication (a few minutes of decisions).
REMEMBERED_IDS = 4096
#: Releases whose last holding gates are remembered.
REMEMBERED_RELEASES = 4096


class MeasuredAnalyzer:
    def __init__(self, inner: Analyzer, metrics: ControllerMetrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def measure(
        self, lane: ChangeLane, release: LaneRelease, check: AnalysisCheck, now: datetime
    ) -> Measurement:
        started = time.perf_counter()
        failed = True
        try:
            measurement = self.inner.measure(lane, release, check, now)
            failed = measurement.verdict is Verdict.ERROR
            return measurement
        finally:
            self.metrics.record_analysis_query(
                lane.name, check.name, time.perf_counter() - started, failed=failed
            )


class ObservedGates:
    def __init__(self, inner: GateEvaluator, metrics: ControllerMetrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self._held: OrderedDict[tuple[str, str], tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def evaluate(
        self,
        lane: ChangeLane,
        release: LaneRelease,
        now: datetime,
        lane_releases: Sequence[LaneRelease],
        *,
        in_flight: bool = False,
    ) -> GateReport:
        report = self.inner.evaluate(lane, release, now, lane_releases, in_flight=in_flight)
        for result in report.results:
            if result.gate == KILL_SWITCH_GATE:
                self.metrics.set_lane_autonomy(lane.name, result.passed)
        key = (release.spec.target.namespace, release.name)
        with self._lock:
            self._held[key] = tuple(r.gate for r in report.blocks)
            self._held.move_to_end(key)
            while len(self._held) > REMEMBERED_RELEASES:
                self._held.popitem(last=False)
        return report

    def holding(self, namespace: str | None, release: str | None) -> tuple[str, ...]:
        """The gates that held the release at its last evaluation (none when unknown)."""
        with self._lock:
            return self._held.get((namespace or "", release or ""), ())


class MetricsSink:
    def __init__(self, metrics: ControllerMetrics, gates: ObservedGates | None = None) -> None:
        self.metrics = metrics
        self.gates = gates
        self._onsets = RegressionOnsets()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def emit(self, record: AuditRecord) -> None:
        with self._lock:
            if record.id is not None:
                if record.id in self._seen:
                    return
                self._seen[record.id] = None
                if len(self._seen) > REMEMBERED_IDS:
                    self._seen.popitem(last=False)
            caught = self._onsets.add(record)
        self.metrics.emit(record)
        if caught is not None:
            self.metrics.record_regression_detected(caught.lane, caught.seconds)
        if record.decision is Decision.GATED and self.gates is not None:
            for gate in self.gates.holding(record.namespace, record.release) or ("unknown",):
                self.metrics.record_gated(record.lane, gate)
