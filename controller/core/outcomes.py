"""Where a release stands, in one vocabulary: the LaneRelease phase's spelling.

``status.phase`` is what ``kubectl get lanereleases`` and the CRD show, so every other
place that names a release's outcome - ``changelane audit`` (table, ``--json``,
``--outcome``), the ``changelane_releases_total{outcome=...}`` metric, the demo's JSON -
spells it the same way: ``Promoted``, ``RolledBack``, ``Rejected``, ... Audit *decisions*
(``rolled_back``, ``step_advanced``, ...) are a different thing, the events of a
release's life, and keep their own names.

Input where a person could have typed the older snake_case spelling (``--outcome
rolled_back``) is still accepted.
"""

from __future__ import annotations

from enum import StrEnum

from controller.core.audit import Decision
from controller.core.models import Phase


class Outcome(StrEnum):
    IN_PROGRESS = "InProgress"
    GATED = Phase.GATED.value
    PAUSED = Phase.PAUSED.value
    REJECTED = Phase.REJECTED.value
    ROLLING_BACK = Phase.ROLLING_BACK.value
    ROLLED_BACK = Phase.ROLLED_BACK.value
    PROMOTING = Phase.PROMOTING.value
    PROMOTED = Phase.PROMOTED.value


FINAL_OUTCOMES = frozenset({Outcome.REJECTED, Outcome.ROLLED_BACK, Outcome.PROMOTED})

#: The outcome each audit decision leaves a release in (decisions not listed change none).
OUTCOME_OF: dict[Decision, Outcome] = {
    Decision.RELEASE_SEEN: Outcome.IN_PROGRESS,
    Decision.GATED: Outcome.GATED,
    Decision.REJECTED: Outcome.REJECTED,
    Decision.STARTED: Outcome.IN_PROGRESS,
    Decision.PAUSED: Outcome.PAUSED,
    Decision.RESUMED: Outcome.IN_PROGRESS,
    Decision.PROMOTING: Outcome.PROMOTING,
    Decision.PROMOTED: Outcome.PROMOTED,
    Decision.ROLLING_BACK: Outcome.ROLLING_BACK,
    Decision.ROLLED_BACK: Outcome.ROLLED_BACK,
}


def _folded(text: str) -> str:
    return text.replace("_", "").replace("-", "").lower()


_BY_FOLDED = {_folded(o.value): o for o in Outcome}


def parse_outcome(text: str) -> Outcome:
    """``RolledBack``, ``rolled_back``, ``rolledback`` and ``rolled-back`` are one outcome.
    Raises ValueError naming the accepted values."""
    found = _BY_FOLDED.get(_folded(text.strip()))
    if found is None:
        accepted = ", ".join(o.value for o in Outcome)
        raise ValueError(f"unknown outcome {text!r}; expected one of: {accepted}")
    return found
