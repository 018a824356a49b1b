"""Audit records as the controller writes them, for notification tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controller.core.audit import AuditProvenance, AuditRecord, Decision, Evidence


def record(decision: Decision = Decision.ROLLING_BACK, n: int = 5, **over: Any) -> AuditRecord:
    fields: dict[str, Any] = dict(
        id=f"uid-1/{n}",
        time=datetime.now(UTC),
        lane="docs",
        namespace="web",
        workload="site",
        release="site-abc123",
        decision=decision,
        reason="critical check error-rate Fail",
        step=0,
        weight=0,
        provenance=AuditProvenance(
            agent="claude-code", model="claude-opus-4", change="https://git.example/pr/7"
        ),
        evidence=[
            Evidence(
                check="error-rate",
                verdict="Fail",
                canary=0.15,
                baseline=0.0,
                threshold=0.05,
                statistic="msprt p=8.8e-07 < alpha 0.01",
            )
        ],
    )
    fields.update(over)
    return AuditRecord(**fields)
