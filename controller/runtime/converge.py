"""Converge: bring the world to what a release's status says (replicas, route weights,
flag exposure, the primary's template). Every step is idempotent: it compares before it
writes, so converging twice, or again after a crash, changes nothing more."""

from __future__ import annotations

import structlog

from controller.core import canary as mech
from controller.core.gates.policy import shadow_mode
from controller.core.models import ChangeLane, LaneRelease, LaneReleaseStatus, Phase, TrafficMode
from controller.core.replica_plan import (
    ReplicaSplit,
    availability_safe,
    ready_replicas,
    split_for,
)
from controller.runtime.deployment_writes import DeploymentWrites
from controller.runtime.notices import Notices
from controller.runtime.objects import (
    current_hash,
    meta,
    replicas,
    spec,
    template_hash_of,
    total_replicas,
)
from controller.runtime.ports import Cluster, FlagRamp, JsonDict, NotFoundError

log = structlog.get_logger("changelane.reconciler")

#: Where the canary takes traffic (replicas > 0) for each phase; elsewhere it has none.
CANARY_SERVES = frozenset({Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING})


def ramps_flag(flags: FlagRamp | None, lane: ChangeLane, rel: LaneRelease) -> bool:
    """The controller ramps this release's feature flag."""
    return (
        flags is not None
        and rel.spec.flag is not None
        and lane.spec.strategy.flag_ramp is not None
        and not shadow_mode(lane)
    )


class Converger:
    def __init__(
        self,
        api: Cluster,
        flags: FlagRamp | None,
        notices: Notices,
        writes: DeploymentWrites,
    ) -> None:
        self.api = api
        self.flags = flags
        self.notices = notices
        #: Each Deployment write is remembered until the cache shows it (the cached copies
        #: are the informer's and are never edited here: runtime.deployment_writes).
        self.writes = writes

    def patch_deployment(self, namespace: str, name: str, patch: JsonDict) -> None:
        self.writes.wrote(self.api.patch_deployment(namespace, name, patch))

    def converge(
        self,
        lane: ChangeLane,
        rel: LaneRelease,
        status: LaneReleaseStatus,
        dep: JsonDict,
        primary: JsonDict,
    ) -> None:
        """An adopted workload: flag, primary template, canary replicas and route."""
        self.api.fence()  # flag writes go through their own client: fence them here
        serving = status.phase in CANARY_SERVES
        weight = status.weight if serving else 0
        # Flag first on the way down: it is the fastest lever and needs no pod. (A lane
        # may ask for replicas first with rollback.flagOffFirst: false.)
        flag_last = weight == 0 and not lane.spec.rollback.flag_off_first
        if not flag_last:
            self.converge_flag(lane, rel, status)
        if status.phase is Phase.PROMOTING or status.phase is Phase.PROMOTED:
            self.promote(rel, dep, primary)
        if not lane.spec.strategy.flag_only:
            promoted = status.phase is Phase.PROMOTED
            if lane.spec.strategy.traffic.mode is TrafficMode.GATEWAY_API:
                wanted = 0 if promoted else mech.canary_replicas(total_replicas(primary), weight)
                self.route_weights(lane, dep, 0 if promoted else weight)
                self.scale(dep, wanted)
            else:
                promoting = status.phase in (Phase.PROMOTING, Phase.PROMOTED)
                self.move_pods(lane, dep, primary, weight, promoting=promoting)
        if flag_last:
            self.converge_flag(lane, rel, status)

    def converge_flag(self, lane: ChangeLane, rel: LaneRelease, status: LaneReleaseStatus) -> None:
        """The release's flag to the weight its status says. Paused holds it where it is;
        a release that never started never touches it."""
        if self.flags is None or not ramps_flag(self.flags, lane, rel):
            return
        phase = status.phase
        if phase is Phase.PROGRESSING:
            refused = self.flags.set_weight(lane, rel, status.weight)
        elif phase in (Phase.PROMOTING, Phase.PROMOTED):
            refused = self.flags.set_weight(lane, rel, 100)
        elif phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK):
            refused = self.flags.disable(lane, rel)
        else:
            return
        if refused:
            # Not fought: the next observation pauses the release with this reason.
            log.warning("flag write not applied", release=rel.name, reason=refused[:500])

    def promote(self, rel: LaneRelease, dep: JsonDict, primary: JsonDict) -> None:
        """The primary takes the canary's template, if that is the template judged."""
        to_hash = current_hash(dep)
        if to_hash != rel.spec.to_revision.pod_template_hash:
            return  # the canary now runs another template: never promote what was not judged
        if template_hash_of(primary) == to_hash:
            return
        primary_meta = meta(primary)
        self.patch_deployment(
            primary_meta["namespace"],
            primary_meta["name"],
            {
                "metadata": {"annotations": {mech.TEMPLATE_HASH_ANNOTATION: to_hash}},
                "spec": {"template": mech.promoted_template(primary, spec(dep)["template"])},
            },
        )

    def route_weights(self, lane: ChangeLane, dep: JsonDict, weight: int) -> None:
        """The lane's HTTPRoute: ``weight`` to the canary Service, the rest to the primary."""
        dep_meta = meta(dep)
        route = lane.spec.strategy.traffic.http_route
        if route is None:
            return
        name = dep_meta["name"]
        try:
            current = self.api.get_http_route(dep_meta["namespace"], route)
        except NotFoundError:
            self.notices.warn_once(
                ("route-missing", f"{dep_meta['namespace']}/{route}"),
                "HTTPRoute not found",
                route=route,
            )
            return
        rules = spec(current).get("rules") or [{}]
        # Keep the port the route's author gave its backend (the Services' port).
        port = next((r.get("port") for r in rules[0].get("backendRefs") or [] if r.get("port")), 80)
        refs = [
            {"name": mech.primary_name(name), "port": port, "weight": 100 - weight},
            {"name": f"{name}-canary", "port": port, "weight": weight},
        ]
        if (rules[0].get("backendRefs") or []) != refs:
            rules = [{**rules[0], "backendRefs": refs}, *rules[1:]]
            self.api.patch_http_route(dep_meta["namespace"], route, {"spec": {"rules": rules}})

    def dark(self, lane: ChangeLane, dep: JsonDict, primary: JsonDict | None = None) -> None:
        """No traffic to the canary: route weights back to the primary, no replicas (in
        replica mode, the primary first grows back to every replica)."""
        if lane.spec.strategy.traffic.mode is TrafficMode.GATEWAY_API or primary is None:
            if lane.spec.strategy.traffic.mode is TrafficMode.GATEWAY_API:
                self.route_weights(lane, dep, 0)
            self.scale(dep, 0)
            return
        self.move_pods(lane, dep, primary, 0, promoting=False)

    def move_pods(
        self, lane: ChangeLane, dep: JsonDict, primary: JsonDict, weight: int, *, promoting: bool
    ) -> None:
        """Replica mode: the primary and the canary share the workload's replicas by
        ``weight`` (docs/traffic-shares.md), moving pods without the ready pods of both
        falling below the lane's minimum. Promoting, the primary (now on the canary's
        template) grows back to every replica before the canary lets go."""
        total = total_replicas(primary)
        traffic = lane.spec.strategy.traffic
        target = split_for(
            total, weight, surge=traffic.surge, keep_baseline=lane.compares_to_baseline
        )
        if promoting:
            target = ReplicaSplit(total, target.canary if weight else 0)
        safe = availability_safe(
            target,
            total=total,
            max_unavailable=traffic.max_unavailable,
            primary_ready=ready_replicas(primary),
            canary_ready=ready_replicas(dep),
        )
        # Grow first, then shrink: whichever copy grows is asked before the other shrinks.
        if safe.primary > replicas(primary):
            self.scale(primary, safe.primary)
            self.scale_canary(dep, safe.canary)
        else:
            self.scale_canary(dep, safe.canary)
            self.scale(primary, safe.primary)

    def scale_canary(self, dep: JsonDict, wanted: int) -> None:
        """Scale the canary; its pods get the ``track: canary`` label on the way up."""
        labels = (spec(dep).get("template", {}).get("metadata") or {}).get("labels") or {}
        if wanted == 0 or labels.get(mech.METRICS_TRACK_LABEL) == mech.CANARY_TRACK:
            self.scale(dep, wanted)
            return
        dep_meta = meta(dep)
        patch = {
            "spec": {
                "replicas": wanted,
                "template": {"metadata": {"labels": {mech.METRICS_TRACK_LABEL: mech.CANARY_TRACK}}},
            }
        }
        self.patch_deployment(dep_meta["namespace"], dep_meta["name"], patch)

    def scale(self, dep: JsonDict, wanted: int) -> None:
        if replicas(dep) == wanted:
            return
        dep_meta = meta(dep)
        self.patch_deployment(
            dep_meta["namespace"], dep_meta["name"], {"spec": {"replicas": wanted}}
        )
