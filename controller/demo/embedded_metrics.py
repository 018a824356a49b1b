"""The demo's metrics source when no Prometheus binary is on PATH.

It answers the analysis plan of the demo lane's checks straight from the simulated
workload's counters: for each planned series it returns the errors or requests of the
track over the window (and, for a value query, the error ratio). It does not parse
PromQL; it serves only the demo's own query shapes, which is why the demo says which
backend it used. The judges that decide are the same ones Prometheus data goes through.
"""

from __future__ import annotations

import time

from controller.core.analysis import CheckSample, ReleaseParams
from controller.core.analysis.sample import QueryResult, ResultKind, Role, plan_queries
from controller.core.models import AnalysisCheck
from controller.demo.workload import SimulatedWorkload


class EmbeddedMetrics:
    min_window_seconds = 1

    def __init__(self, workload: SimulatedWorkload) -> None:
        self.workload = workload

    def fetch(self, check: AnalysisCheck, params: ReleaseParams) -> CheckSample:
        results = {}
        for planned in plan_queries(check, params):
            key = planned.key
            counts = self.workload.counts_since(time.time() - key.window_seconds)
            errors, total = counts[key.track.value]
            if key.role is Role.ERRORS:
                value = errors
            elif key.role is Role.TOTAL:
                value = total
            elif total > 0:
                value = errors / total
            else:
                results[key] = QueryResult(planned.query, ResultKind.NO_DATA, detail="no requests")
                continue
            results[key] = QueryResult(planned.query, ResultKind.OK, value=value)
        return CheckSample(
            lane=params.lane,
            check=check.name,
            window_seconds=params.window_seconds,
            min_window_seconds=params.min_window_seconds,
            results=results,
        )
