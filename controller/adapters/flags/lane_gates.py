"""The runtime's ``GateEvaluator`` port: the lane's gates for one release, composed from
the pure gate functions and the kill switch (OpenFeature). Fails closed: no kill switch
configured means autonomy off."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from controller.core.gates import GateReport, GateResult
from controller.core.gates.flag_source import FlagSourceState
from controller.core.gates.lane import (
    FLAG_SOURCE,
    IN_FLIGHT,
    finished_outcomes,
    provenance_gate_results,
)
from controller.core.gates.policy import evaluate_autonomy_policy, evaluate_lane_suspension
from controller.core.models import ChangeLane, LaneRelease


class KillSwitchPort(Protocol):
    def check(
        self, lane: ChangeLane, *, namespace: str, workload: str, agent: str | None = None
    ) -> GateResult: ...


class LaneGates:
    def __init__(self, kill_switch: KillSwitchPort | None) -> None:
        self.kill_switch = kill_switch
        # The last releases list whose outcomes were computed, per lane: the runtime
        # passes the same list object until one of its releases starts or finishes.
        self._outcomes: dict[str, tuple[Sequence[LaneRelease], datetime | None, list[str]]] = {}

    def _finished_outcomes(
        self, lane: ChangeLane, releases: Sequence[LaneRelease], resumed_at: datetime | None
    ) -> list[str]:
        cached = self._outcomes.get(lane.name)
        if cached is not None and cached[0] is releases and cached[1] == resumed_at:
            return cached[2]
        outcomes = finished_outcomes(releases, resumed_at)
        if isinstance(releases, list):  # a list held here cannot become another's id
            self._outcomes[lane.name] = (releases, resumed_at, outcomes)
        return outcomes

    def evaluate(
        self,
        lane: ChangeLane,
        release: LaneRelease,
        now: datetime,
        lane_releases: Sequence[LaneRelease],
        *,
        in_flight: bool = False,
    ) -> GateReport:
        """Every gate; ``in_flight``: only those that stop a release already progressing
        (``GateReport.autonomy_off``: the kill switch and the lane's suspension). The
        admission gates (provenance, window, concurrency, daily limit) were passed when
        it started and nothing in flight reads them, and at 1,000 releases in a lane
        evaluating them at every measurement was half of each reconcile."""
        results = [] if in_flight else provenance_gate_results(lane, release.spec, lane_releases)
        results.append(self._kill_switch(lane, release))
        source = self.flag_source()
        if source is not None and not source.healthy:
            # Not a block by itself (the kill switch result above is, once the grace period
            # is over). Carried so the lane can report it until the source is back.
            results.append(GateResult(FLAG_SOURCE, True, source.describe()))
        resumed_at = lane.status.resumed_at if lane.status is not None else None
        outcomes = self._finished_outcomes(lane, lane_releases, resumed_at)
        if in_flight:
            results.append(evaluate_lane_suspension(lane, outcomes))
            return GateReport(tuple(results))
        results += evaluate_autonomy_policy(
            lane,
            release=release.name,
            now=now,
            active_releases=[r.name for r in lane_releases if r.status.phase in IN_FLIGHT],
            started_at=[r.status.started_at for r in lane_releases if r.status.started_at],
            recent_outcomes=outcomes,
        )
        return GateReport(tuple(results))

    def flag_source(self) -> FlagSourceState | None:
        """The kill switch's flag source health, where the kill switch reports it."""
        state = getattr(self.kill_switch, "source_state", None)
        result = state() if callable(state) else None
        return result if isinstance(result, FlagSourceState) else None

    def _kill_switch(self, lane: ChangeLane, release: LaneRelease) -> GateResult:
        if self.kill_switch is None:
            return GateResult("killSwitch", False, "no flag provider configured; failing closed")
        return self.kill_switch.check(
            lane,
            namespace=release.spec.target.namespace,
            workload=release.spec.target.name,
            agent=release.spec.provenance.agent,
        )
