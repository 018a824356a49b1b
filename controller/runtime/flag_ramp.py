"""The runtime's ``FlagRamp`` port on the flag writer: a release's flag ramps in the
ConfigMap or FeatureFlag its lane's ``strategy.flagRamp`` names."""

from __future__ import annotations

import structlog
from kubernetes import client

from controller.adapters.flags.flag_writer import FlagWriter
from controller.core.models import ChangeLane, LaneRelease

log = structlog.get_logger("changelane.flags")


class FlagWriterRamp:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def _writer(self, lane: ChangeLane, release: LaneRelease) -> FlagWriter | None:
        ramp = lane.spec.strategy.flag_ramp
        if ramp is None:
            return None
        namespace = release.spec.target.namespace
        return FlagWriter(ramp, namespace, core=self.core, custom=self.custom)

    def set_weight(self, lane: ChangeLane, release: LaneRelease, weight: int) -> None:
        writer, flag = self._writer(lane, release), release.spec.flag
        if writer is None or flag is None:
            return
        result = writer.set_weight(flag, weight)
        if not result.ok:
            log.warning(
                "flag ramp not applied", release=release.name, flag=flag.key, result=str(result)
            )

    def disable(self, lane: ChangeLane, release: LaneRelease) -> None:
        writer, flag = self._writer(lane, release), release.spec.flag
        if writer is None or flag is None:
            return
        result = writer.disable(flag)
        if not result.ok:
            log.warning(
                "flag not disabled", release=release.name, flag=flag.key, result=str(result)
            )

    def weight(self, lane: ChangeLane, release: LaneRelease) -> int | None:
        writer, flag = self._writer(lane, release), release.spec.flag
        if writer is None or flag is None:
            return None
        try:
            return writer.current_weight(flag)
        except Exception:  # unreadable: the caller treats None as "not known to be off"
            return None
