"""The lane's gates for one release, composed from the pure gate functions and the kill
switch (OpenFeature). Fails closed: no kill switch configured means autonomy off."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from controller.core.gates import GateReport, GateResult
from controller.core.gates.flag_source import FlagSourceState
from controller.core.gates.policy import evaluate_autonomy_policy
from controller.core.gates.provenance import evaluate_provenance
from controller.core.models import ChangeLane, LaneRelease, Phase
from controller.core.provenance_annotations import AnnotationProblem, provenance_from_annotations

IN_FLIGHT = frozenset({Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING, Phase.ROLLING_BACK})
FINISHED = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK})
#: A passing gate result that reports a broken flag source (last good definitions in use).
FLAG_SOURCE = "flagSource"


class KillSwitchPort(Protocol):
    def check(
        self, lane: ChangeLane, *, namespace: str, workload: str, agent: str | None = None
    ) -> GateResult: ...


class LaneGates:
    def __init__(self, kill_switch: KillSwitchPort | None) -> None:
        self.kill_switch = kill_switch

    def evaluate(
        self,
        lane: ChangeLane,
        release: LaneRelease,
        now: datetime,
        lane_releases: Sequence[LaneRelease],
    ) -> GateReport:
        spec = release.spec
        problems = [AnnotationProblem(p.key, p.message, p.field) for p in spec.provenance_problems]
        results = list(evaluate_provenance(lane, spec.provenance, problems=problems))
        results.append(self._kill_switch(lane, release))
        source = self.flag_source()
        if source is not None and not source.healthy:
            # Not a block by itself (the kill switch result above is, once the grace period
            # is over). Carried so the lane can report it until the source is back.
            results.append(GateResult(FLAG_SOURCE, True, source.describe()))
        resumed_at = lane.status.resumed_at if lane.status is not None else None
        outcomes = finished_outcomes(lane_releases, resumed_at)
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


def finished_outcomes(releases: Iterable[LaneRelease], resumed_at: datetime | None) -> list[str]:
    """Outcomes (phases) of the finished releases, oldest first, that count against the
    autonomy budget: those that finished after the lane was last resumed."""
    finished = sorted(
        (r for r in releases if r.status.phase in FINISHED and r.status.finished_at),
        key=lambda r: r.status.finished_at or datetime.min.replace(tzinfo=UTC),
    )
    return [
        r.status.phase.value
        for r in finished
        if resumed_at is None or (r.status.finished_at and r.status.finished_at > resumed_at)
    ]


def release_spec_from_template(template: dict[str, Any]) -> dict[str, Any]:
    """Provenance (and the flag to ramp) for a new LaneRelease, from pod-template
    annotations. Parsing never raises; every problem is kept for the gate to report."""
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    parsed = provenance_from_annotations(annotations)
    out: dict[str, Any] = {
        "provenance": parsed.provenance.to_wire(),
        "provenanceProblems": [
            {k: v for k, v in {"key": p.key, "message": p.message, "field": p.field}.items() if v}
            for p in parsed.problems
        ],
    }
    flag = annotations.get("changelane.dev/flag")
    if isinstance(flag, str) and 0 < len(flag) <= 253 and flag.isprintable():
        out["flag"] = {"key": flag}
    return out


def flag_source_of(gates: object) -> FlagSourceState | None:
    """The flag source health of ``gates`` (unwrapping instrumentation), if it has one."""
    for _ in range(5):
        if isinstance(gates, LaneGates):
            return gates.flag_source()
        gates = getattr(gates, "inner", None)
    return None
