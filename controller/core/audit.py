"""The audit record: one structured record per decision, with its evidence.

Stable field names matter more than anything else here: on-call tooling, the hash-chained
audit log and dashboards all read them. Add fields; never rename or remove one.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Decision(StrEnum):
    RELEASE_SEEN = "release_seen"
    GATED = "gated"
    REJECTED = "rejected"
    STARTED = "started"
    STEP_ADVANCED = "step_advanced"
    MEASUREMENT = "measurement"
    HELD = "held"
    PAUSED = "paused"
    RESUMED = "resumed"
    PROMOTING = "promoting"
    PROMOTED = "promoted"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    LANE_SUSPENDED = "lane_suspended"
    LANE_RESUMED = "lane_resumed"
    HUMAN_OVERRIDE = "human_override"
    AUTONOMY_CHANGED = "autonomy_changed"
    SHADOW = "shadow"


class Evidence(BaseModel):
    """What a decision was based on: one check's measurement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    check: str
    verdict: str
    canary: float | None = None
    baseline: float | None = None
    threshold: float | None = None
    statistic: str | None = None
    query: str | None = None
    message: str = ""


class AuditProvenance(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: str | None = None
    model: str | None = None
    change: str | None = None
    tests: str | None = None
    reviewer: str | None = None


class AuditRecord(BaseModel):
    """One decision. ``prev_hash``/``hash`` are filled in by the durable audit log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = Field(
        default=None, description="'<release uid>/<seq>': the same decision is never written twice."
    )
    time: datetime
    lane: str
    namespace: str | None = None
    workload: str | None = None
    release: str | None = None
    phase_from: str | None = None
    phase_to: str | None = None
    from_revision: str | None = None
    to_revision: str | None = None
    from_images: list[str] = Field(default_factory=list)
    to_images: list[str] = Field(default_factory=list)
    provenance: AuditProvenance = Field(default_factory=AuditProvenance)
    decision: Decision
    reason: str
    message: str = ""
    weight: int | None = None
    step: int | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)
    result: str | None = None
    actor: str = Field(default="controller", description="'controller' or a human identity.")
    instance: str | None = Field(default=None, description="Controller instance (pod name).")

    def as_log_fields(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)
