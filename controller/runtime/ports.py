"""What the runtime needs from the world, as small protocols.

- :class:`Cluster`: the Kubernetes operations a reconcile performs (reads, fenced writes).
  The official-client adapter is ``controller.adapters.kube.api.KubeApi``; an in-memory
  fake lives beside the tests (``tests/unit/runtime/fake_cluster.py``).
- :class:`ClusterConnection`: what the controller process builds from one connection:
  the ``Cluster`` (writes fenced by leadership), informers and the leader election.
  Adapter: ``controller.adapters.kube.connection.KubeConnection``.
- :class:`GateEvaluator`, :class:`Analyzer`, :class:`FlagRamp`: gates (kill switch via
  OpenFeature), analysis (Prometheus) and flag writes (flagd definitions), each with a
  real adapter and a simple one that tests and the embedded demo can use.

The errors a ``Cluster`` raises are defined here, so that the runtime can handle them
without knowing which client raised them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from controller.core.gates import GateReport
from controller.core.models import AnalysisCheck, ChangeLane, LaneRelease, Measurement
from controller.core.release_machine import FlagObservation

if TYPE_CHECKING:  # the fence raises this module's NotLeaderError
    from controller.core.lease import LeaseReading
    from controller.runtime.fence import Fence

JsonDict = dict[str, Any]


class ConflictError(Exception):
    """The object changed since we read it (HTTP 409), or already exists on create."""


class NotFoundError(Exception):
    """The object does not exist (HTTP 404)."""


class NotLeaderError(Exception):
    """A write was refused because this instance does not hold the lease right now."""


class LeaseFence(Protocol):
    """What writers check: a Lease's ``Fence``, or with sharding the router that checks
    the fence of the shard the calling work belongs to."""

    lease: str

    def check(self) -> object:
        """Raise ``NotLeaderError`` (saying why) unless this replica may act now."""
        ...

    def held(self) -> bool: ...


class Cluster(Protocol):
    """The Kubernetes operations of a reconcile, on plain dicts.

    Every write first checks leadership (:meth:`fence`): an instance that lost the lease
    raises ``NotLeaderError`` even from a reconcile already running. A write with a
    resourceVersion that is stale raises ``ConflictError``; a read of a missing object
    raises ``NotFoundError``. Transient failures are retried inside the adapter.
    """

    def fence(self) -> None:
        """Raise ``NotLeaderError`` unless this instance may write now."""
        ...

    # ---- deployments and their pods
    def get_deployment(self, namespace: str, name: str) -> JsonDict:
        """A live read, for the rare decision a stale cache must not make."""
        ...

    def create_deployment(self, namespace: str, body: JsonDict) -> JsonDict: ...

    def patch_deployment(self, namespace: str, name: str, patch: JsonDict) -> JsonDict:
        """A JSON merge patch."""
        ...

    def list_pods(self, namespace: str, selector: str) -> list[JsonDict]: ...

    def list_replica_sets(self, namespace: str, selector: str) -> list[JsonDict]:
        """Errors propagate: an empty answer must mean "none", never "could not read"."""
        ...

    # ---- lane releases and lanes
    def get_release(self, namespace: str, name: str) -> JsonDict: ...

    def create_release(self, namespace: str, body: JsonDict) -> JsonDict: ...

    def patch_release_status(
        self, namespace: str, name: str, status: JsonDict, resource_version: str | None
    ) -> JsonDict:
        """Merge ``status``; with a resourceVersion, a stale write is a ``ConflictError``."""
        ...

    def remove_release_annotation(self, namespace: str, name: str, key: str) -> JsonDict: ...

    def get_lane(self, name: str) -> JsonDict: ...

    def patch_lane_status(
        self, name: str, status: JsonDict, resource_version: str | None = None
    ) -> JsonDict:
        """Merge ``status``; with a resourceVersion, a stale write is a ``ConflictError``."""
        ...

    # ---- traffic and events
    def get_http_route(self, namespace: str, name: str) -> JsonDict: ...

    def patch_http_route(self, namespace: str, name: str, patch: JsonDict) -> JsonDict: ...

    def emit_event(
        self,
        involved: JsonDict,
        reason: str,
        message: str,
        event_type: str = "Normal",
        component: str = "changelane",
        annotations: dict[str, str] | None = None,
    ) -> None: ...


class Informer(Protocol):
    """A watched, cached collection of one kind (objects are plain dicts)."""

    def list(self) -> list[JsonDict]: ...

    def get(self, key: str) -> JsonDict | None:
        """By ``namespace/name`` (``name`` for cluster-scoped kinds)."""
        ...

    def on_change(self, handler: Callable[[JsonDict], None]) -> None:
        """Call ``handler`` with the object on every add, update and delete."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None:
        """Stop watching without waiting for a watch that is blocked in a read."""
        ...

    def has_synced(self) -> bool:
        """The first list has landed in the cache."""
        ...

    def is_alive(self) -> bool: ...


class Elector(Protocol):
    """Leader election: only the leader mutates."""

    def is_leader(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self, release: bool = True) -> None:
        """Stop campaigning; with ``release``, hand the lease back at once."""
        ...


class ClusterConnection(Protocol):
    """What the controller process builds on one connection to an API server."""

    def cluster(self, fence: LeaseFence | None) -> Cluster:
        """The operations; every write checks ``fence`` first (None: always writes)."""
        ...

    def informer(self, kind: str, watch_timeout: float, resync_seconds: int) -> Informer:
        """An informer on ``ChangeLane``, ``LaneRelease`` or ``Deployment``."""
        ...

    def elector(
        self,
        namespace: str,
        identity: str,
        name: str,
        lease_duration: int,
        renew_deadline: int,
        retry_period: int,
        on_started: Callable[[], None],
        fence: Fence | None = None,
        defer: Callable[[LeaseReading], float] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> Elector:
        """Campaigns for the Lease; grants, extends and revokes ``fence`` as it goes
        (``defer``: extra seconds a reading must stand unchanged before it is taken;
        ``annotations``: set on the Lease at every write)."""
        ...


class GateEvaluator(Protocol):
    def evaluate(
        self,
        lane: ChangeLane,
        release: LaneRelease,
        now: datetime,
        lane_releases: Sequence[LaneRelease],
        *,
        in_flight: bool = False,
    ) -> GateReport:
        """Every gate of the lane for this release; ``lane_releases`` are the lane's others.
        ``in_flight``: only the gates that stop a release already progressing."""
        ...


class Analyzer(Protocol):
    def measure(
        self, lane: ChangeLane, release: LaneRelease, check: AnalysisCheck, now: datetime
    ) -> Measurement:
        """Query and judge one check for the release's current step. Never raises: a
        failure to measure is an Error measurement."""
        ...


class FlagRamp(Protocol):
    """Ramps a release's feature flag. Writes return None when applied, else why not
    (e.g. someone else edited the flag; the writer then leaves it alone)."""

    def set_weight(self, lane: ChangeLane, release: LaneRelease, weight: int) -> str | None: ...

    def disable(self, lane: ChangeLane, release: LaneRelease) -> str | None:
        """Everyone back to the off-variant; applied even over someone else's edit."""
        ...

    def observe(self, lane: ChangeLane, release: LaneRelease) -> FlagObservation:
        """The on-weight in force and anything that stops the ramp. Never raises."""
        ...

    def weight(self, lane: ChangeLane, release: LaneRelease) -> int | None:
        """The on-weight in force now, or None when it cannot be read."""
        ...
