"""Per-agent autonomy in a lane: the levels and the rules that move an agent between them.

A lane may declare ``spec.gates.agentAutonomy``. Without it every agent allowed in the lane
has the lane's autonomy (as before). With it, each (agent, model) pair holds a level:

* ``shadow``: the controller records the release and never moves traffic on its own; the
  release waits at step 0 for a human (``changelane resume`` ramps it, supervised);
* ``supervised``: the release ramps and is analysed, rollback stays automatic, promotion
  waits for a human ``changelane promote``;
* ``autonomous``: the lane's full autonomy.

A new pair starts at ``entryLevel``. It graduates one level after ``graduate.minReleases``
finished releases at its current level whose change-failure rate has a Wilson upper bound
(at ``graduate.confidence``) at most ``graduate.maxChangeFailureUpper``; it is demoted one
level when ``demote.rollbacks`` of its last ``demote.ofLast`` finished releases at its
current level rolled back.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, model_validator

from controller.core.models.common import CamelModel


class AutonomyLevel(StrEnum):
    SHADOW = "shadow"
    SUPERVISED = "supervised"
    AUTONOMOUS = "autonomous"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    def up(self) -> AutonomyLevel:
        return _ORDER[min(self.rank + 1, len(_ORDER) - 1)]

    def down(self) -> AutonomyLevel:
        return _ORDER[max(self.rank - 1, 0)]


_ORDER = (AutonomyLevel.SHADOW, AutonomyLevel.SUPERVISED, AutonomyLevel.AUTONOMOUS)


class GraduationRule(CamelModel):
    min_releases: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=20, description="Finished releases at the current level before graduating."
    )
    max_change_failure_upper: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.10,
        description="Graduate only while the change-failure rate's Wilson upper bound is "
        "at most this.",
    )
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = Field(
        default=0.95, description="Two-sided confidence of the Wilson interval."
    )


class DemotionRule(CamelModel):
    rollbacks: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=3, description="Rollbacks among the last `ofLast` finished releases that demote."
    )
    of_last: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=10, description="How many recent finished releases the demotion rule reads."
    )

    @model_validator(mode="after")
    def _rollbacks_fit(self) -> Self:
        if self.rollbacks > self.of_last:
            raise ValueError(
                f"rollbacks ({self.rollbacks}) cannot exceed ofLast ({self.of_last}): "
                "the rule could never fire"
            )
        return self


class AgentAutonomySpec(CamelModel):
    entry_level: AutonomyLevel = Field(
        default=AutonomyLevel.SUPERVISED, description="Level of an agent/model new to the lane."
    )
    graduate: GraduationRule = Field(default_factory=GraduationRule)
    demote: DemotionRule = Field(default_factory=DemotionRule)
    max_tracked_agents: Annotated[int, Field(ge=1, le=200)] = Field(
        default=20,
        description="Agent/model label values exported per lane; the rest fold into 'other'.",
    )

    @model_validator(mode="after")
    def _rules_agree(self) -> Self:
        # Graduating while failing at the demotion rate would make an agent oscillate:
        # the graduation bound must sit below the rate the demotion rule acts on.
        demotion_rate = self.demote.rollbacks / self.demote.of_last
        if self.graduate.max_change_failure_upper >= demotion_rate:
            raise ValueError(
                "graduate.maxChangeFailureUpper "
                f"({self.graduate.max_change_failure_upper}) must be below the demotion rate "
                f"demote.rollbacks/demote.ofLast ({self.demote.rollbacks}/"
                f"{self.demote.of_last} = {demotion_rate:.3g}); otherwise an agent could "
                "graduate while failing often enough to be demoted"
            )
        return self
