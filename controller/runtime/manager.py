"""The controller process: informers feed a work queue; workers reconcile; only the leader
mutates.

Informers (the ``ClusterConnection`` port's; in production the official client's
``SharedInformer``) watch ChangeLanes, LaneReleases and Deployments, relist on 410 Gone and
reconnect after errors; their handlers only enqueue keys. Workers take keys from the
queue; a worker that is not the leader puts the key back for later instead of acting on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import structlog

from controller.adapters.audit.fenced import FencedAuditSink
from controller.adapters.audit.sink import AuditSink
from controller.core import canary as mech
from controller.core.models import ChangeLane
from controller.core.models.release import TERMINAL_PHASES
from controller.runtime.failures import FailureBackoff
from controller.runtime.fence import Fence
from controller.runtime.indexes import ReleaseIndex
from controller.runtime.instrumentation import MeasuredAnalyzer, MetricsSink, ObservedGates
from controller.runtime.lane_analysis import LaneAnalysis, LaneMetrics
from controller.runtime.lane_capacity import DEFAULT_MAX_LANE_WORKLOADS
from controller.runtime.lanes import LaneReconciler
from controller.runtime.metrics import ControllerMetrics
from controller.runtime.ports import (
    Analyzer,
    ClusterConnection,
    Elector,
    FlagRamp,
    GateEvaluator,
    JsonDict,
    NotLeaderError,
)
from controller.runtime.reconciler import Caches, Key, Reconciler
from controller.runtime.shard_wiring import ShardedWork, lease_gauges
from controller.workqueue import ShutDownError, WorkQueue

log = structlog.get_logger("changelane.manager")

LANE, RELEASE, DEPLOYMENT = "ChangeLane", "LaneRelease", "Deployment"
_TERMINAL = frozenset(phase.value for phase in TERMINAL_PHASES)


@dataclass
class Settings:
    instance: str = "changelane-0"
    lease_namespace: str = "changelane-system"
    lease_name: str = "changelane-leader"
    leader_election: bool = True
    workers: int = 2
    resync_seconds: int = 60
    watch_read_timeout: float = 90.0
    lease_duration: int = 15
    renew_deadline: int = 10
    retry_period: int = 2
    #: Workloads one lane may manage (runtime.lane_capacity).
    max_lane_workloads: int = DEFAULT_MAX_LANE_WORKLOADS
    #: Shard Leases the lanes are spread over (1: one leader Lease acts for every lane).
    shards: int = 1
    shard_prefix: str = "changelane"
    #: How long a non-leader waits before looking at a key again.
    follower_requeue_s: float = 2.0
    on_reconcile: list[Callable[[Key, float], None]] = field(default_factory=list)


def _as_float(flag: Callable[[], bool]) -> Callable[[], float]:
    return lambda: 1.0 if flag() else 0.0


def _key_of(obj: JsonDict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Controller:
    def __init__(
        self,
        connection: ClusterConnection,
        gates: GateEvaluator,
        analyzer: Analyzer,
        sinks: Sequence[AuditSink],
        flags: FlagRamp | None = None,
        settings: Settings | None = None,
        reconciler_factory: Callable[..., Reconciler] = Reconciler,
        metrics: ControllerMetrics | None = None,
        lane_metrics: LaneMetrics | None = None,
    ) -> None:
        self.settings = settings or Settings()
        s = self.settings
        # Every write and every audit append is fenced by the Lease: see runtime.fence.
        self.fence: Fence | None = None
        # With --shards N > 1 each lane's work is fenced by its shard's Lease instead.
        self.sharded = ShardedWork.build(connection, s, self) if s.leader_election else None
        if s.leader_election and self.sharded is None:
            self.fence = Fence(f"{s.lease_namespace}/{s.lease_name}", s.renew_deadline)
        self.write_fence = self.sharded.shards.router if self.sharded else self.fence
        self.api = connection.cluster(self.write_fence)
        self.queue: WorkQueue[Key] = WorkQueue()
        self.failures = FailureBackoff()
        # The server ends each watch after resync_seconds; the client gives up on a
        # connection that stays silent longer than watch_read_timeout (a dead peer).
        wt = s.watch_read_timeout
        # Metrics come from wrapping the ports: every analysis, gate evaluation and audit
        # record passes through them, so nothing in the reconciler has to remember to count.
        self.metrics = metrics or ControllerMetrics()
        observed_gates = ObservedGates(gates, self.metrics)
        sinks = [*sinks, MetricsSink(self.metrics, observed_gates)]
        if self.write_fence is not None:
            sinks = [FencedAuditSink(sink, self.write_fence.check) for sink in sinks]
        self.metrics.workqueue_depth.set_function(lambda: float(self.queue.depth()))
        self.metrics.leader.set_function(lambda: 1.0 if self.is_leader() else 0.0)
        self.metrics.shards.set(s.shards if self.sharded is not None else 1)
        for lease, acting in lease_gauges(self):
            self.metrics.lease_held.labels(lease).set_function(_as_float(acting))
        self.informers = {
            kind: connection.informer(kind, wt, s.resync_seconds)
            for kind in (LANE, RELEASE, DEPLOYMENT)
        }
        # LaneReleases by lane and by workload, each parsed once per resourceVersion.
        self.release_index = ReleaseIndex()
        caches = Caches(
            lanes=self.informers[LANE].list,
            deployment=lambda ns, name: self.informers[DEPLOYMENT].get(f"{ns}/{name}"),
            releases=self.informers[RELEASE].list,
            deployments=self.informers[DEPLOYMENT].list,
            indexed_lane_releases=self.release_index.of_lane,
            indexed_gate_releases=self.release_index.for_gates,
            indexed_workload_releases=self.release_index.of_workload,
            release=lambda ns, name: self.informers[RELEASE].get(f"{ns}/{name}"),
        )
        self.reconciler = reconciler_factory(
            api=self.api,
            caches=caches,
            gates=observed_gates,
            analyzer=MeasuredAnalyzer(analyzer, self.metrics),
            sinks=sinks,
            flags=flags,
            instance=s.instance,
        )
        adoption = getattr(self.reconciler, "adoption", None)
        if adoption is not None:
            adoption.workloads.limit = s.max_lane_workloads
        self.lane_reconciler = LaneReconciler(
            self.api,
            releases=self.informers[RELEASE].list,
            sinks=sinks,
            metrics=self.metrics,
            instance=s.instance,
            indexed_releases=self.release_index.of_lane,
        )
        # With a grouped-query metrics port, analysis runs per lane tick off the reconcile
        # path (runtime.lane_analysis); without one, each reconcile queries its release.
        self.lane_analysis: LaneAnalysis | None = None
        if lane_metrics is not None:
            self.lane_analysis = self._lane_analysis(lane_metrics)
        self.leadership: Elector | None = None
        if s.leader_election and self.sharded is None:
            self.leadership = connection.elector(
                s.lease_namespace,
                s.instance,
                name=s.lease_name,
                lease_duration=s.lease_duration,
                renew_deadline=s.renew_deadline,
                retry_period=s.retry_period,
                on_started=self._on_leading,
                fence=self.fence,
            )
        self._workers: list[threading.Thread] = []
        self._stopped = threading.Event()
        self._lane_generations: dict[str, object] = {}
        self._lane_inputs: dict[tuple[str, str], tuple[object, object]] = {}
        self._wire_handlers()
        # A flag source that breaks or comes back changes every lane's FlagSourceDegraded
        # condition: look at the lanes then, not at the next resync.
        listen = getattr(getattr(gates, "kill_switch", None), "add_listener", None)
        if callable(listen):
            listen(self.enqueue_all_lanes)

    # ------------------------------------------------------------------ wiring

    def _analysed_lanes(self) -> dict[str, ChangeLane]:
        """The valid lanes this replica acts for now (with shards: its shards' lanes)."""
        lanes = self.reconciler.lanes()
        if self.sharded is None:
            return lanes
        shards = self.sharded.shards
        return {name: lane for name, lane in lanes.items() if shards.fence_for(name) is not None}

    def _lane_analysis(self, lane_metrics: LaneMetrics) -> LaneAnalysis:
        deployments = self.informers[DEPLOYMENT]
        scheduler = LaneAnalysis(
            lane_metrics,
            lanes=self._analysed_lanes,
            releases_of_lane=self.release_index.of_lane,
            deployment=lambda ns, name: deployments.get(f"{ns}/{name}"),
            # A measurement waits in memory: its release goes before Deployment bursts.
            enqueue=lambda ns, name: self.queue.add((RELEASE, ns, name), urgent=True),
            active=self.is_leader,
            record_query=lambda lane, check, seconds, failed: self.metrics.record_analysis_query(
                lane, check, seconds, failed=failed
            ),
        )
        observer = getattr(self.reconciler, "observer", None)
        if observer is not None:
            observer.scheduled = scheduler
        return scheduler

    def _offer(self, key: Key) -> None:
        """Queue ``key`` unless it belongs to a shard another replica acts for: its owner
        has it in its own queue, and a shard that comes here brings its keys along
        (``_on_shard_gained``). The reconcile checks the shard again (the fence)."""
        if self.sharded is None or self.sharded.owns(key):
            self.queue.add(key)

    def _wire_handlers(self) -> None:
        def on_lane(obj: JsonDict) -> None:
            # Which workloads a lane selects depends on its spec only: its own status
            # writes (conditions, budget) must not re-enqueue every Deployment.
            if self._lane_spec_changed(obj):
                self.enqueue_all_deployments()
            self.enqueue_all_lanes()

        def on_release(obj: JsonDict) -> None:
            ns, name = _key_of(obj)
            self._offer((RELEASE, ns, name))
            # A release that finished (or went away) may change the lane's autonomy
            # budget and agent levels; one in flight cannot, so its status writes (one
            # per analysis tick) leave the lane be.
            lane = (obj.get("spec") or {}).get("lane") or ""
            phase = (obj.get("status") or {}).get("phase")
            gone = self.informers[RELEASE].get(f"{ns}/{name}") is None
            if lane and (phase in _TERMINAL or gone):
                self._offer((LANE, "", str(lane)))

        def on_deployment(obj: JsonDict) -> None:
            ns, name = _key_of(obj)
            if mech.is_primary(obj):
                name = name.removesuffix(mech.PRIMARY_SUFFIX)
            self._offer((DEPLOYMENT, ns, name))
            if not mech.is_primary(obj) and self._lane_membership_changed(ns, name):
                self.enqueue_all_lanes()  # its labels may overlap lanes' selectors
            # A Deployment change can complete a promotion or a rollback: look at its
            # own releases (indexed by workload), never at every release.
            for rel_ns, rel_name in self.release_index.keys_of_workload(ns, name):
                self._offer((RELEASE, rel_ns, rel_name))

        def index_release(obj: JsonDict) -> None:
            # Runs before on_release: the cache already holds this event's (lean) copy.
            ns, name = _key_of(obj)
            cached = self.informers[RELEASE].get(f"{ns}/{name}")
            if cached is None:
                self.release_index.remove(obj)
            else:
                self.release_index.upsert(cached)

        self.informers[RELEASE].on_change(index_release)
        for kind, handler in ((LANE, on_lane), (RELEASE, on_release), (DEPLOYMENT, on_deployment)):
            self.informers[kind].on_change(handler)

    def _lane_membership_changed(self, ns: str, name: str) -> bool:
        """The Deployment appeared, went away, or changed what decides its lane (labels,
        the adopting lane's annotation) since last seen. Only then can a lane's
        ``WorkloadConflict`` change; each lane reconcile scans every Deployment, so a
        template or status change (every canary start) must not run them all."""
        cached = self.informers[DEPLOYMENT].get(f"{ns}/{name}")
        if cached is None:
            return self._lane_inputs.pop((ns, name), None) is not None
        meta = cached.get("metadata") or {}
        owner = (meta.get("annotations") or {}).get(mech.LANE_ANNOTATION)
        inputs = (meta.get("labels") or {}, owner)
        if self._lane_inputs.get((ns, name)) == inputs:
            return False
        self._lane_inputs[(ns, name)] = inputs
        return True

    def _lane_spec_changed(self, obj: JsonDict) -> bool:
        """A lane appeared, went away, or its spec changed (generation), since last seen."""
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        if self.informers[LANE].get(name) is None:
            self._lane_generations.pop(name, None)
            return True
        generation = meta.get("generation")
        if generation is not None and self._lane_generations.get(name) == generation:
            return False
        self._lane_generations[name] = generation
        return True

    def enqueue_all_deployments(self) -> None:
        for obj in self.informers[DEPLOYMENT].list():
            ns, name = _key_of(obj)
            if not mech.is_primary(obj):
                self._offer((DEPLOYMENT, ns, name))

    def enqueue_all_lanes(self) -> None:
        for obj in self.informers[LANE].list():
            self._offer((LANE, "", _key_of(obj)[1]))

    def _all_keys(self) -> Iterator[Key]:
        """Every work item the caches hold: workloads, lanes, releases."""
        for obj in self.informers[DEPLOYMENT].list():
            if not mech.is_primary(obj):
                yield (DEPLOYMENT, *_key_of(obj))
        for obj in self.informers[LANE].list():
            yield (LANE, "", _key_of(obj)[1])
        for raw in self.informers[RELEASE].list():
            yield (RELEASE, *_key_of(raw))

    def _on_leading(self) -> None:
        for key in self._all_keys():
            self.queue.add(key)

    def _on_shard_gained(self, shard: int) -> None:
        """Enqueue the keys of a shard that came to this replica: its events were
        filtered out until now, and the caches hold their latest state. Only that
        shard's: the other shards' keys are queued already or are another's."""
        assert self.sharded is not None
        for key in self._all_keys():
            if self.sharded.in_shard(key, shard):
                self.queue.add(key)

    # ------------------------------------------------------------------ running

    def is_leader(self) -> bool:
        """Acts for some lanes now (the leader; with shards, the owner of any)."""
        return self.write_fence.held() if self.write_fence is not None else True

    def ready(self) -> bool:
        """Every informer has listed at least once (leadership is not required)."""
        return all(informer.has_synced() for informer in self.informers.values())

    def alive(self) -> bool:
        """The process can still do its job: informer and worker threads are running."""
        if self._stopped.is_set():
            return False
        informers_up = all(i.is_alive() for i in self.informers.values())
        if self.lane_analysis is not None and not self.lane_analysis.is_alive():
            return False
        return informers_up and bool(self._workers) and all(t.is_alive() for t in self._workers)

    def start(self) -> None:
        for informer in self.informers.values():
            informer.start()
        if self.sharded is not None:
            self.sharded.shards.start()
        elif self.leadership is not None:
            self.leadership.start()
        else:
            self._on_leading()
        for i in range(self.settings.workers):
            t = threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        if self.lane_analysis is not None:
            self.lane_analysis.start()
        log.info("controller started", instance=self.settings.instance)

    def _work(self) -> None:
        # As client-go's WaitForCacheSync: no reconcile before every informer has listed
        # once. A cache that has not listed yet answers "missing" for objects that exist,
        # and a missing canary reads as a finished rollback (a restarted controller
        # marked a release RolledBack with its canary still serving).
        while not self.ready():
            if self._stopped.wait(0.05):
                return
        while True:
            try:
                key = self.queue.get(timeout=1.0)
            except ShutDownError:
                return
            if key is None:
                continue
            try:
                if self.sharded is not None:
                    self.sharded.reconcile(key, self._reconcile)
                    continue
                if not self.is_leader():
                    self.queue.add_after(key, self.settings.follower_requeue_s)
                    continue
                if self.fence is None:
                    self._reconcile(key)
                else:
                    # One reconcile is one batch: it writes under the term it began in.
                    with self.fence.batch():
                        self._reconcile(key)
            except NotLeaderError:
                # Lost the lease mid-reconcile: the fence refused the write; a leader
                # (perhaps us again) picks the key up from the stored state.
                self.queue.add_after(key, self.settings.follower_requeue_s)
            finally:
                self.queue.done(key)

    def _reconcile(self, key: Key) -> None:
        kind, ns, name = key
        started = time.monotonic()
        try:
            if kind == DEPLOYMENT:
                requeue = self.reconciler.reconcile_deployment(ns, name)
            elif kind == RELEASE:
                requeue = self.reconciler.reconcile_release(ns, name)
            elif kind == LANE:
                requeue = self.reconciler.reconcile_lane(name)
                suspension = self.lane_reconciler.reconcile(name)
                if suspension is not None:
                    requeue = suspension if requeue is None else min(requeue, suspension)
            else:
                requeue = None
            self.failures.succeeded(key)
        except NotLeaderError:
            raise
        except Exception as exc:
            # Never let one object stop the others: log, back off, try again, slower each
            # time (a poison object must not be retried hot), with the traceback once.
            error = f"{type(exc).__name__}: {str(exc)[:500]}"
            requeue, new_error = self.failures.failed(key, error)
            fields = dict(kind=kind, namespace=ns, name=name, error=error, retry_in_s=requeue)
            if new_error:
                log.exception("reconcile failed", **fields)
            else:
                log.warning(
                    "reconcile still failing", attempts=self.failures.failures(key), **fields
                )
        finally:
            elapsed = time.monotonic() - started
            self.metrics.record_reconcile(kind, elapsed)
            for hook in self.settings.on_reconcile:
                hook(key, elapsed)
        if requeue is not None:
            self.queue.add_after(key, requeue)

    def wait_until_ready(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 20.0) -> None:
        """Graceful shutdown: stop taking work, let running reconciles finish, then give
        up the Lease. Every reconcile writes its decision before acting on it and acts
        idempotently, so whatever a reconcile that outlives ``timeout`` leaves undone is
        finished by the next leader from the stored status."""
        self._stopped.set()
        if self.lane_analysis is not None:
            self.lane_analysis.stop()
        self.queue.shut_down()
        deadline = time.monotonic() + timeout
        for t in self._workers:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        release = not any(t.is_alive() for t in self._workers)
        if self.sharded is not None:
            self.sharded.shards.stop(release=release)
        elif self.leadership is not None:
            self.leadership.stop(release=release)
        for informer in self.informers.values():
            informer.stop()
        log.info("controller stopped", instance=self.settings.instance)
