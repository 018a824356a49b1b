"""Delete finished LaneReleases the retention policy lets go (leader only, fenced)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from pydantic import ValidationError

from controller.adapters.kube.api import JsonDict, KubeApi, NotFoundError
from controller.core.models import LaneRelease
from controller.core.retention import RetentionPolicy, expired

log = structlog.get_logger("changelane.retention")


class ReleaseRetention:
    def __init__(
        self,
        api: KubeApi,
        releases: Callable[[], list[JsonDict]],
        policy: RetentionPolicy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api, self.releases, self.policy, self.clock = api, releases, policy, clock

    def sweep(self) -> list[str]:
        """Delete what the policy lets go; returns 'namespace/name' of each deleted."""
        parsed = []
        for raw in self.releases():
            try:
                parsed.append(LaneRelease.model_validate(raw))
            except ValidationError:
                continue  # the reconciler reports it; never delete what we cannot read
        deleted = []
        for rel in expired(parsed, self.policy, self.clock()):
            ns = rel.metadata.namespace or ""
            try:
                self.api.delete_release(ns, rel.name)
            except NotFoundError:
                continue
            deleted.append(f"{ns}/{rel.name}")
            log.info(
                "lanerelease deleted by retention",
                namespace=ns,
                release=rel.name,
                phase=rel.status.phase.value,
                finished_at=rel.status.finished_at.isoformat() if rel.status.finished_at else None,
            )
        return deleted
