"""The result of evaluating a release's gates, as the release state machine consumes it.

A *permanent* failure (missing provenance, an agent the lane does not allow, a bad
signature) rejects the release for good. A *transient* one (kill switch off, outside a
change window, concurrency or daily limit reached, lane suspended) holds it as Gated
until the gate opens; ``retry_after`` says when it is worth looking again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class GateResult:
    gate: str  # e.g. "provenance", "agent", "killSwitch", "changeWindow", "concurrency"
    passed: bool
    reason: str = ""
    permanent: bool = False
    retry_after: datetime | None = None


@dataclass(frozen=True)
class GateReport:
    results: tuple[GateResult, ...] = field(default_factory=tuple)

    @property
    def rejections(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if not r.passed and r.permanent)

    @property
    def blocks(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if not r.passed and not r.permanent)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def autonomy_off(self) -> bool:
        """The kill switch (or a lane suspension) says no: in-flight releases stop too."""
        return any(not r.passed and r.gate in ("killSwitch", "laneSuspended") for r in self.results)

    def summary(self) -> str:
        failed = [r for r in self.results if not r.passed]
        return "; ".join(f"{r.gate}: {r.reason}" for r in failed) or "all gates passed"
