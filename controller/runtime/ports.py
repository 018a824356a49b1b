"""What the reconciler needs from the world beyond the Kubernetes API, as small protocols.

Each has a real adapter (Prometheus, OpenFeature/flagd, the audit log) and a simple one
that tests and the embedded demo can use.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from controller.core.gates import GateReport
from controller.core.models import AnalysisCheck, ChangeLane, LaneRelease, Measurement
from controller.core.release_machine import FlagObservation


class GateEvaluator(Protocol):
    def evaluate(
        self,
        lane: ChangeLane,
        release: LaneRelease,
        now: datetime,
        lane_releases: Sequence[LaneRelease],
    ) -> GateReport:
        """Every gate of the lane for this release; ``lane_releases`` are the lane's others."""
        ...


class Analyzer(Protocol):
    def measure(
        self, lane: ChangeLane, release: LaneRelease, check: AnalysisCheck, now: datetime
    ) -> Measurement:
        """Query and judge one check for the release's current step. Never raises: a
        failure to measure is an Error measurement."""
        ...


class FlagRamp(Protocol):
    """Ramps a release's feature flag. Writes return None when applied, else why not
    (e.g. someone else edited the flag; the writer then leaves it alone)."""

    def set_weight(self, lane: ChangeLane, release: LaneRelease, weight: int) -> str | None: ...

    def disable(self, lane: ChangeLane, release: LaneRelease) -> str | None:
        """Everyone back to the off-variant; applied even over someone else's edit."""
        ...

    def observe(self, lane: ChangeLane, release: LaneRelease) -> FlagObservation:
        """The on-weight in force and anything that stops the ramp. Never raises."""
        ...

    def weight(self, lane: ChangeLane, release: LaneRelease) -> int | None:
        """The on-weight in force now, or None when it cannot be read."""
        ...
