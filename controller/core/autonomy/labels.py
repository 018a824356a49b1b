"""Bounded label values for per-agent metrics: unknown or surplus authors fold into ``other``.

An agent identity comes from an annotation anyone with write access to a Deployment can
set, so it must never mint a metrics label by itself. A pair keeps its own label only when
the lane allows it (the agent gate's rule) and it is among the lane's ``maxTrackedAgents``
most active pairs; everything else is counted under ``other``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from controller.core.autonomy.record import ReleaseOutcome
from controller.core.gates.provenance import author_allowed
from controller.core.models import ChangeLane

OTHER = "other"
DEFAULT_MAX_TRACKED = 20


def tracked_pairs(lane: ChangeLane, outcomes: Sequence[ReleaseOutcome]) -> set[tuple[str, str]]:
    """The (agent, model) pairs that keep their own label in this lane."""
    spec = lane.spec.gates.agent_autonomy
    cap = spec.max_tracked_agents if spec is not None else DEFAULT_MAX_TRACKED
    activity = Counter(
        (o.agent, o.model) for o in outcomes if author_allowed(lane, o.agent, o.model)
    )
    return {pair for pair, _ in sorted(activity.items(), key=lambda kv: (-kv[1], kv[0]))[:cap]}


def fold_labels(
    outcomes: Sequence[ReleaseOutcome], tracked: set[tuple[str, str]]
) -> list[ReleaseOutcome]:
    """The outcomes with every untracked author renamed ``other``."""
    return [
        o if (o.agent, o.model) in tracked else replace(o, agent=OTHER, model=OTHER)
        for o in outcomes
    ]
