"""The controller's side of sharding: which shard a work item belongs to, and running it
under that shard's fence (``runtime.shards`` owns the Leases).

A key whose lane's shard this replica does not act for never enters its queue
(``owns``, asked by the event handlers) and is dropped if it got there before the shard
left (``reconcile``): the shard's owner has it in its own queue. When a shard comes to
this replica, that shard's keys are enqueued from the caches (``in_shard``), which
already hold every event the handlers filtered out.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from controller.core.models import ChangeLane
from controller.core.sharding import SHARDS_ANNOTATION, other_scheme
from controller.runtime.indexes import ParseCache, parse_lane_or_none
from controller.runtime.objects import Key, parse_lane
from controller.runtime.shards import ShardSet, ShardSettings, lane_of_key

if TYPE_CHECKING:
    from controller.runtime.manager import Controller, Settings
    from controller.runtime.ports import ClusterConnection


class ShardedWork:
    def __init__(self, shards: ShardSet, controller: Controller) -> None:
        self.shards = shards
        self._controller = controller
        self._lanes: ParseCache[ChangeLane | ValidationError] = ParseCache(
            parse_lane_or_none(parse_lane)
        )

    @classmethod
    def build(
        cls, connection: ClusterConnection, s: Settings, controller: Controller
    ) -> ShardedWork | None:
        """Sharded work for ``--shards`` > 1; None keeps the single leader Lease."""
        if s.shards <= 1:
            return None
        members = getattr(connection, "members", None)
        if members is None:
            raise ValueError("--shards needs a connection that can list member Leases")

        def elector(name: str, fence: Any, on_gained: Callable[[], None], defer: Any) -> Any:
            return connection.elector(
                s.lease_namespace,
                s.instance,
                name=name,
                lease_duration=s.lease_duration,
                renew_deadline=s.renew_deadline,
                retry_period=s.retry_period,
                on_started=on_gained,
                fence=fence,
                defer=defer,
                annotations={SHARDS_ANNOTATION: str(s.shards)},
            )

        def scheme(lease: str, holder: str, annotations: dict[str, str]) -> bool:
            return other_scheme(
                lease, holder, annotations, s.shards, s.shard_prefix, s.lease_name, s.instance
            )

        settings = ShardSettings(
            shards=s.shards,
            identity=s.instance,
            namespace=s.lease_namespace,
            prefix=s.shard_prefix,
            lease_duration=s.lease_duration,
            renew_deadline=s.renew_deadline,
            retry_period=s.retry_period,
            leader_lease=s.lease_name,
        )
        shards = ShardSet(
            settings,
            elector,
            members(s.lease_namespace, s.instance, s.shard_prefix, s.lease_duration, scheme),
            on_gained=controller._on_shard_gained,
        )
        return cls(shards, controller)

    def lane_of(self, key: Key) -> str | None:
        kind, ns, name = key
        informers = self._controller.informers
        return lane_of_key(
            kind,
            ns,
            name,
            release=informers["LaneRelease"].get,
            deployment=informers["Deployment"].get,
            lanes=self._valid_lanes,
        )

    def owns(self, key: Key) -> bool:
        """This replica acts for ``key``'s lane's shard now (a key of no lane: no)."""
        lane = self.lane_of(key)
        return lane is not None and self.shards.fence_for(lane) is not None

    def in_shard(self, key: Key, shard: int) -> bool:
        """``key`` acts for a lane of ``shard`` (whoever owns it)."""
        lane = self.lane_of(key)
        return lane is not None and self.shards.shard_of(lane) == shard

    def reconcile(self, key: Key, run: Callable[[Key], None]) -> None:
        """Run ``key``'s reconcile in its lane's shard's batch, if this replica acts for
        that shard now; otherwise leave it to the shard's owner."""
        lane = self.lane_of(key)
        if lane is None:
            return
        fence = self.shards.fence_for(lane)
        if fence is None:
            return
        with fence.batch():  # one reconcile writes under the shard term it began in
            run(key)

    def lane_batch(self, lane: str) -> AbstractContextManager[object]:
        return self.shards.lane_batch(lane)

    def _valid_lanes(self) -> list[ChangeLane]:
        out = []
        for raw in self._controller.informers["ChangeLane"].list():
            parsed = self._lanes.parse(raw)
            if isinstance(parsed, ChangeLane):
                out.append(parsed)
        return out


def lane_batch(controller: Controller, lane: str) -> AbstractContextManager[object]:
    """The context for work on ``lane`` outside a reconcile: its shard's batch when lanes
    are sharded (raises ``NotLeaderError`` when this replica does not act for it), else
    nothing (the single fence checks every write by itself)."""
    sharded = controller.sharded
    return sharded.lane_batch(lane) if sharded is not None else nullcontext()


def lease_gauges(controller: Controller) -> list[tuple[str, Callable[[], bool]]]:
    """Each Lease this replica can act under, and whether it does now (for metrics)."""
    sharded = controller.sharded
    if sharded is not None:
        shards = sharded.shards

        def acting(shard: int) -> Callable[[], bool]:
            return lambda: shard in shards.acting()

        return [
            (fence.lease.rsplit("/", 1)[-1], acting(i)) for i, fence in enumerate(shards.fences)
        ]
    fence = controller.fence
    if fence is None:
        return [("(no leader election)", lambda: True)]
    return [(fence.lease.rsplit("/", 1)[-1], fence.held)]
