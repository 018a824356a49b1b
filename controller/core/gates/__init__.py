"""Gates a release must pass before any traffic moves (pure)."""

from controller.core.gates.report import GateReport, GateResult

__all__ = ["GateReport", "GateResult"]
