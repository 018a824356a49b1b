"""The runtime's ``FlagRamp`` port on the flag writer: a release's flag ramps in the
ConfigMap or FeatureFlag its lane's ``strategy.flagRamp`` names (in the release's
namespace unless the lane names another). Writes report why they were not applied;
:meth:`FlagWriterRamp.observe` reads what is in force and whether someone else edited it."""

from __future__ import annotations

import structlog
from kubernetes import client

from controller.adapters.flags.flag_writer import FlagWriter
from controller.core.models import ChangeLane, LaneRelease
from controller.core.release_machine import FlagObservation

log = structlog.get_logger("changelane.flags")


class FlagWriterRamp:
    def __init__(self, api_client: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)

    def _writer(self, lane: ChangeLane, release: LaneRelease) -> FlagWriter | None:
        ramp = lane.spec.strategy.flag_ramp
        if ramp is None or release.spec.flag is None:
            return None
        return FlagWriter(ramp, release.spec.target.namespace, core=self._core, custom=self._custom)

    def set_weight(self, lane: ChangeLane, release: LaneRelease, weight: int) -> str | None:
        writer = self._writer(lane, release)
        if writer is None or release.spec.flag is None:
            return None
        result = writer.set_weight(release.spec.flag, weight)
        return None if result.ok else f"{result.status}: {result.reason}"

    def disable(self, lane: ChangeLane, release: LaneRelease) -> str | None:
        writer = self._writer(lane, release)
        if writer is None or release.spec.flag is None:
            return None
        result = writer.disable(release.spec.flag)
        if result.ok and result.reason:
            log.warning("flag_disabled_over_edit", release=release.name, reason=result.reason)
        return None if result.ok else f"{result.status}: {result.reason}"

    def observe(self, lane: ChangeLane, release: LaneRelease) -> FlagObservation:
        writer = self._writer(lane, release)
        if writer is None or release.spec.flag is None:
            return FlagObservation(None, "the lane has no flagRamp or the release no flag")
        return writer.observe(release.spec.flag)

    def weight(self, lane: ChangeLane, release: LaneRelease) -> int | None:
        return self.observe(lane, release).weight
