"""Lanes sharded over replicas: one Lease (and one :class:`Fence`) per shard.

With ``--shards N`` (N > 1) each replica campaigns for every shard Lease
``<prefix>-shard-<i>`` with the single-leader rules of ``adapters.kube.leader``, steered by
the balanced assignment of ``core.sharding``: it takes a free shard at once only when
the assignment gives it that shard, and hands over (stop acting, wait for its work under
that shard's fence to finish, release the Lease) a shard the assignment gives to another
live member. The assignment reads the live members from their member Leases
(``adapters.kube.members``).

The rest of the runtime asks one question, :meth:`ShardSet.fence_for`: the fence of the
lane's shard when this replica acts for it now, else None. A reconcile runs inside that
fence's batch, so every write, audit append and transport check it makes is held to its
lane's shard's Lease. :class:`ShardRouter` is the fence the cluster adapter and the audit
sinks see: it checks whichever shard's batch the calling thread is in, and refuses
outside one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import structlog

from controller.core import canary as mech
from controller.core.lease import LeaseReading
from controller.core.models import ChangeLane
from controller.core.sharding import assignment, extra_wait, shard_of, to_hand_over
from controller.runtime.fence import Fence, Term, batch_fence
from controller.runtime.ports import JsonDict, NotLeaderError

log = structlog.get_logger("changelane.shards")


class ShardElector(Protocol):
    def is_leader(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self, release: bool = True) -> None: ...

    def hand_over(self, why: str) -> None: ...


class MemberView(Protocol):
    live: set[str]
    foreign: list[str]
    sent_at: float


class Members(Protocol):
    def beat(self) -> None: ...

    def observe(self) -> MemberView: ...

    def leave(self) -> None: ...


#: Makes the elector of one shard: (lease name, fence, on gained, defer rule) -> elector.
ElectorFactory = Callable[
    [str, Fence, Callable[[], None], Callable[[LeaseReading], float]], ShardElector
]


def shard_lease_name(prefix: str, shard: int) -> str:
    return f"{prefix}-shard-{shard}"


@dataclass
class ShardSettings:
    shards: int
    identity: str
    namespace: str
    prefix: str = "changelane"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    #: The single-leader Lease (``--shards 1``): its holder acts for every lane.
    leader_lease: str = "changelane-leader"


class ShardRouter:
    """The fence every shard's writes and audit appends go through: the fence of the
    batch the calling thread runs in (its lane's shard). Outside any batch nothing is
    written: a write that does not know its shard has no owner to answer for it."""

    def __init__(self, namespace: str, prefix: str, shards: ShardSet) -> None:
        self.lease = f"{namespace}/{prefix}-shards"
        self._shards = shards

    def check(self) -> Term:
        fence = batch_fence()
        if fence is None:
            raise NotLeaderError(
                f"not acting for any shard here ({self.lease}): a write outside a shard's "
                "work has no owner"
            )
        return fence.check()

    def held(self) -> bool:
        return self._shards.any_held()


class ShardSet:
    def __init__(
        self,
        settings: ShardSettings,
        elector: ElectorFactory,
        members: Members,
        on_gained: Callable[[int], None],
    ) -> None:
        if settings.shards < 1:
            raise ValueError(f"shards is {settings.shards}; expected >= 1")
        self.settings = s = settings
        self.members = members
        self.fences = [
            Fence(f"{s.namespace}/{shard_lease_name(s.prefix, i)}", s.renew_deadline)
            for i in range(s.shards)
        ]
        self._owners: dict[int, str] = {}
        self._live: set[str] = {s.identity}
        self._lock = threading.Lock()
        # Since when (monotonic) each shard has been assigned to someone else while held.
        self._elsewhere_since: dict[int, float] = {}
        # Scheme guard: when each shard was won (monotonic, after the winning write), and
        # whether a Lease list sent after that showed no live Lease of another scheme.
        self._won_at: dict[int, tuple[float, Term]] = {}
        self._cleared: dict[int, Term] = {}
        self._foreign: list[str] = []
        self._on_gained = on_gained
        self._shard_of_lane: dict[str, int] = {}  # hashing a name per event adds up
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.electors = [
            elector(shard_lease_name(s.prefix, i), fence, self._won(i), self._defer(i))
            for i, fence in enumerate(self.fences)
        ]
        self.router = ShardRouter(s.namespace, s.prefix, self)

    # ---- the question the runtime asks
    def shard_of(self, lane: str) -> int:
        shard = self._shard_of_lane.get(lane)
        if shard is None:
            if len(self._shard_of_lane) > 10_000:  # lane names are few; bound it anyway
                self._shard_of_lane.clear()
            shard = self._shard_of_lane[lane] = shard_of(lane, self.settings.shards)
        return shard

    def fence_for(self, lane: str) -> Fence | None:
        """The fence of ``lane``'s shard while this replica acts for it, else None."""
        shard = self.shard_of(lane)
        fence = self.fences[shard]
        with self._lock:
            cleared = self._cleared.get(shard)
        try:
            return fence if cleared is not None and fence.check() == cleared else None
        except NotLeaderError:
            return None

    @contextmanager
    def lane_batch(self, lane: str) -> Iterator[Term]:
        """Work for ``lane`` outside a reconcile (notifications, retention): pinned to its
        shard's term; ``NotLeaderError`` when this replica does not act for it."""
        with self.fences[self.shard_of(lane)].batch() as term:
            yield term

    def held(self) -> list[int]:
        return [i for i, fence in enumerate(self.fences) if fence.held()]

    def acting(self) -> list[int]:
        """The shards this replica acts for now (held, and clear of other schemes)."""
        return [i for i, fence in enumerate(self.fences) if self._acting(i, fence)]

    def _acting(self, shard: int, fence: Fence) -> bool:
        with self._lock:
            cleared = self._cleared.get(shard)
        try:
            return cleared is not None and fence.check() == cleared
        except NotLeaderError:
            return False

    def any_held(self) -> bool:
        return bool(self.acting())

    def shard_index(self, fence: Fence | None) -> int | None:
        for i, mine in enumerate(self.fences):
            if mine is fence:
                return i
        return None

    def owners(self) -> dict[int, str]:
        """The assignment this replica last computed (shard -> preferred member)."""
        with self._lock:
            return dict(self._owners)

    # ---- running
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shards", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.retry_period + 5)
        for elector in self.electors:
            elector.stop(release=release)
        self.members.leave()

    def _run(self) -> None:
        # Announce ourselves and look at the members twice before campaigning, so that
        # replicas starting together do not all grab every shard and hand them over.
        self._balance_once()
        if self._stop.wait(self.settings.retry_period):
            return
        self._balance_once()
        for elector in self.electors:
            elector.start()
        while not self._stop.wait(self.settings.retry_period):
            self._balance_once()

    def _balance_once(self) -> None:
        try:
            self._balance()
        except Exception as exc:  # balance is best effort; the Leases stay safe
            log.warning("shard balancing failed", error=str(exc)[:300])

    def _balance(self) -> None:
        s = self.settings
        self.members.beat()
        view = self.members.observe()
        live = view.live
        self._guard(view)
        owners = assignment(s.shards, live)
        with self._lock:
            if owners != self._owners:
                log.info(
                    "shard assignment",
                    identity=s.identity,
                    members=sorted(live),
                    mine=sorted(i for i, o in owners.items() if o == s.identity),
                )
            self._owners, self._live = owners, live
        now = time.monotonic()
        leaving = set(to_hand_over(self.held(), owners, s.identity, live))
        for shard in list(self._elsewhere_since):
            if shard not in leaving:
                del self._elsewhere_since[shard]
        for shard in leaving:
            since = self._elsewhere_since.setdefault(shard, now)
            # Two looks a retry period apart agree: not a member list caught mid-change.
            if now - since >= s.retry_period:
                del self._elsewhere_since[shard]
                self.electors[shard].hand_over(f"shard {shard} handed over to {owners[shard]}")

    def _guard(self, view: MemberView) -> None:
        """Act for a newly won shard only once a Lease list sent after it was won shows
        no live Lease of another scheme. Two replicas of different schemes each write
        their Lease, then list: at least one of them sees the other's (the API server is
        linearizable), so they never both act. A replica acting for nothing while another
        scheme is alive gives its Leases back and does not campaign (see _defer)."""
        newly: list[int] = []
        # A single leader never looks for shard Leases, so it is the shards that yield to
        # it, even those already acting (going from N shards to one; see the docs).
        prefix = f"{self.settings.leader_lease} "
        leader = next((f for f in view.foreign if f.startswith(prefix)), None)
        with self._lock:
            changed = view.foreign != self._foreign
            self._foreign = list(view.foreign)
            if leader is not None:
                self._cleared.clear()
            for shard in list(self._cleared):
                if not self.fences[shard].held():
                    del self._cleared[shard]
            if not view.foreign:
                for shard, (won, term) in self._won_at.items():
                    fresh = self._cleared.get(shard) != term and won < view.sent_at
                    if fresh and self.fences[shard].held():
                        self._cleared[shard] = term
                        newly.append(shard)
            blocked = bool(view.foreign) and not self._cleared
        if leader is not None:
            for fence in self.fences:
                fence.revoke(f"a single leader acts for every lane: {leader}")
        if view.foreign and changed:  # said once per distinct set, not every retry period
            log.warning(
                "not acting for newly won shards: a Lease of another sharding scheme is live",
                identity=self.settings.identity,
                leases=view.foreign[:5],
            )
        if blocked:
            for shard in self.held():
                self.electors[shard].hand_over(
                    f"another sharding scheme is live ({view.foreign[0]})"
                )
        for shard in newly:
            self._on_gained(shard)  # its keys were dropped until now: look at them all

    def _won(self, shard: int) -> Callable[[], None]:
        def won() -> None:
            try:
                term = self.fences[shard].check()
            except NotLeaderError:
                return  # lost again already
            with self._lock:
                self._won_at[shard] = (time.monotonic(), term)
                self._cleared.pop(shard, None)

        return won

    def _defer(self, shard: int) -> Callable[[LeaseReading], float]:
        def defer(reading: LeaseReading) -> float:
            with self._lock:
                preferred = self._owners.get(shard) in (None, self.settings.identity)
                if self._foreign and not self._cleared:
                    return float("inf")  # another scheme acts: wait until it is gone
            return extra_wait(reading, preferred, self.settings.lease_duration)

        return defer


def lane_of_key(
    kind: str,
    namespace: str,
    name: str,
    release: Callable[[str], JsonDict | None],
    deployment: Callable[[str], JsonDict | None],
    lanes: Callable[[], list[ChangeLane]],
) -> str | None:
    """The lane a work-queue key acts for (its shard's owner reconciles it), or None when
    it acts for none (a Deployment no lane selects, a release already gone): no writes."""
    if kind == "ChangeLane":
        return name
    if kind == "LaneRelease":
        raw = release(f"{namespace}/{name}")
        if raw is None:
            return None
        # An unreadable spec still needs an owner to report it: "" hashes like any name.
        return str((raw.get("spec") or {}).get("lane") or "")
    if kind == "Deployment":
        dep = deployment(f"{namespace}/{name}")
        if dep is None:
            return None
        dep_meta = dep.get("metadata") or {}
        adopted = (dep_meta.get("annotations") or {}).get(mech.LANE_ANNOTATION)
        if adopted:
            return str(adopted)
        matching = mech.lanes_for(lanes(), namespace, dep_meta.get("labels") or {})
        return matching[0].name if matching else None  # sorted: every replica agrees
    return None
