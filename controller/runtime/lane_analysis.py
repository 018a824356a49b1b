"""The per-lane analysis scheduler: every lane on its own tick, off the reconcile path.

One thread. At each lane's tick (every ``interval``, at least the minimum window) it
takes the lane's releases that are due (Progressing, a step with analysis, canary
ready), asks each check's grouped queries once for all of them
(:mod:`controller.core.lane_analysis` plans them, the metrics port runs them), judges each
release with the pure judge and leaves the measurements for the release's next reconcile,
which it enqueues. The reconcile takes them (``take``) and applies them through the core
as before: the status write, the audit record and any rollback stay where they were, and a
reconcile never waits on Prometheus.

A measurement is only applied to the release state it was judged from (same step, same
``lastAnalysisAt``); one judged from a state that has since moved on is dropped, and the
counts it saw stay in the running totals for the next tick. The running counts of
counting checks live in memory: after a restart they start afresh at the next tick and
the judge, told a shorter window, starts its differences afresh (its evidence, in the
release status, is kept).

It iterates only the lanes the runtime gives it (``lanes``), so a replica that owns some
lanes analyses only those.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import structlog

from controller.core.analysis import CheckSample, ReleaseParams, analysis_failed, judge_release
from controller.core.analysis.sample import (
    QueryResult,
    ResultKind,
    Role,
    SeriesKey,
    Track,
    params_for_window,
    plan_queries,
)
from controller.core.lane_analysis import (
    Accumulated,
    CheckTick,
    DueRelease,
    GroupAnswer,
    accumulate,
    accumulated_sample,
    accumulates,
    plan_check,
    result_for,
    windowed_sample,
)
from controller.core.models import (
    AnalysisCheck,
    ChangeLane,
    LaneRelease,
    Measurement,
    NoisePrior,
    Phase,
    parse_duration,
)
from controller.core.promql import TemplateError
from controller.runtime.objects import current_hash, native, replicas, rolled_out
from controller.runtime.ports import JsonDict

log = structlog.get_logger("changelane.analysis")

#: A lane whose last tick is further back than this many periods starts its counts afresh.
MAX_CATCH_UP_PERIODS = 4


class LaneMetrics(Protocol):
    """The metrics port the scheduler needs: grouped instant queries at a timestamp, and a
    single release's check (for templates that have no grouped form)."""

    min_window_seconds: int

    def query_groups(
        self, promql: str, labels: Mapping[str, str], at: float, what: str
    ) -> GroupAnswer | str: ...

    def fetch(self, check: AnalysisCheck, params: ReleaseParams) -> CheckSample: ...


@runtime_checkable
class NoisePriors(Protocol):
    """A metrics port that can also give a sequential check's noise prior from the
    baseline's history (the Prometheus one: ``controller.adapters.metrics.grouped``)."""

    def prefetch_priors(
        self, lane: ChangeLane, releases: list[LaneRelease], check: AnalysisCheck, now: datetime
    ) -> None: ...

    def noise_prior(
        self, lane: ChangeLane, release: LaneRelease, check: AnalysisCheck, now: datetime
    ) -> NoisePrior | None: ...


@dataclass(frozen=True)
class Pending:
    """Measurements judged at a tick, for the release state they were judged from."""

    lane: str
    step: int
    based_on: datetime | None
    measurements: tuple[Measurement, ...]


class LaneAnalysis:
    def __init__(
        self,
        metrics: LaneMetrics,
        *,
        lanes: Callable[[], Mapping[str, ChangeLane]],
        releases_of_lane: Callable[[str], list[LaneRelease]],
        deployment: Callable[[str, str], JsonDict | None],
        enqueue: Callable[[str, str], None],
        active: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
        record_query: Callable[[str, str, float, bool], None] | None = None,
    ) -> None:
        self.metrics = metrics
        # Asked once: a runtime Protocol check at every judged release adds up at 1,000.
        self.priors = metrics if isinstance(metrics, NoisePriors) else None
        self.lanes = lanes
        self.releases_of_lane = releases_of_lane
        self.deployment = deployment
        self.enqueue = enqueue
        self.active = active
        self.clock = clock
        self.record_query = record_query
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], Pending] = {}
        self._counts: dict[tuple[tuple[str, str], str], Accumulated] = {}
        self._last_tick: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Queries sent, for tests and the log.
        self.queries = 0

    # ------------------------------------------------------------------ the reconcile's side

    def take(self, lane: ChangeLane, release: LaneRelease) -> tuple[Measurement, ...]:
        """The release's measurements from its lane's last tick, once, if they were judged
        from the state the release is in now; else nothing."""
        key = (release.spec.target.namespace, release.name)
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                return ()
            fresh = (
                pending.step == release.status.current_step
                and pending.based_on == release.status.last_analysis_at
            )
            del self._pending[key]
        return pending.measurements if fresh else ()

    # ------------------------------------------------------------------ the thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lane-analysis", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = 1.0
            try:
                if self.active():
                    wait = self.run_due()
            except Exception:  # never let the scheduler die: the next round tries again
                log.exception("lane analysis round failed")
            self._stop.wait(max(0.05, min(wait, 1.0)))

    def period(self, lane: ChangeLane) -> int:
        """Seconds between a lane's ticks: its interval, at least the minimum window (a
        tick window shorter than that holds too few scrapes to count)."""
        interval = parse_duration(lane.spec.analysis.interval)
        return max(1, math.ceil(interval), self.metrics.min_window_seconds)

    def run_due(self) -> float:
        """Tick every lane whose tick is due; seconds until the next one is."""
        now = math.floor(self.clock())
        lanes = self.lanes()
        for name in set(self._last_tick) - set(lanes):
            self._forget_lane(name)
        soonest = 1.0
        for name, lane in lanes.items():
            period = self.period(lane)
            last = self._last_tick.get(name)
            if last is not None and now < last + period:
                soonest = min(soonest, last + period - now)
                continue
            window = (
                period if last is None or now - last > MAX_CATCH_UP_PERIODS * period else now - last
            )
            try:
                self.tick(lane, now, window)
            except Exception:  # one lane's failure must not stop the others
                log.exception("lane analysis tick failed", lane=name)
            self._last_tick[name] = now
        return soonest

    def _forget_lane(self, name: str) -> None:
        self._last_tick.pop(name, None)
        with self._lock:
            self._pending = {k: v for k, v in self._pending.items() if v.lane != name}

    # ------------------------------------------------------------------ one tick

    def due_releases(self, lane: ChangeLane) -> list[tuple[DueRelease, LaneRelease]]:
        out = []
        for rel in self.releases_of_lane(lane.name):
            s = rel.status
            if s.phase is not Phase.PROGRESSING or s.step_started_at is None:
                continue
            steps = lane.spec.strategy.steps
            if s.current_step >= len(steps) or not steps[s.current_step].analysis:
                continue
            if not self._canary_ready(lane, rel):
                continue
            due = DueRelease(
                namespace=rel.spec.target.namespace,
                name=rel.name,
                workload=rel.spec.target.name,
                step=s.current_step,
                step_started=s.step_started_at.timestamp(),
            )
            out.append((due, rel))
        return out

    def _canary_ready(self, lane: ChangeLane, rel: LaneRelease) -> bool:
        if lane.spec.strategy.flag_only and not native(lane):
            return True
        dep = self.deployment(rel.spec.target.namespace, rel.spec.target.name)
        if dep is None:
            return False
        if native(lane):
            on_release = current_hash(dep) == rel.spec.to_revision.pod_template_hash
            return on_release and rolled_out(dep)
        ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
        return replicas(dep) > 0 and ready >= replicas(dep)

    def tick(self, lane: ChangeLane, tick_end: int, tick_window: int) -> None:
        due = self.due_releases(lane)
        alive = {d.key for d, _ in due}
        with self._lock:
            # What is not due any more (finished, paused, canary gone) is forgotten.
            self._counts = {k: v for k, v in self._counts.items() if k[0] in alive}
            self._pending = {
                k: v for k, v in self._pending.items() if v.lane != lane.name or k in alive
            }
        if not due:
            return
        at = datetime.fromtimestamp(tick_end, tz=UTC)
        unit = self.period(lane)
        min_window = self.metrics.min_window_seconds
        measured: dict[tuple[str, str], list[Measurement]] = {}
        queries = 0
        for check in lane.spec.analysis.checks:
            if self.priors is not None:  # once per release, grouped: before its first look
                self.priors.prefetch_priors(lane, [rel for _, rel in due], check, at)
            plan = plan_check(
                check,
                [d for d, _ in due],
                tick_end=tick_end,
                tick_window=tick_window,
                unit_s=unit,
                min_window_s=min_window,
                accumulated={k[0]: v for k, v in self._counts.items() if k[1] == check.name},
            )
            samples = self._grouped_samples(lane, plan, due, tick_end, tick_window)
            queries += len(plan.queries)
            for d, window in plan.single:
                samples[d.key] = self._single_sample(lane, check, d, window)
                queries += 1
            for d, rel in due:
                sample = samples.get(d.key)
                if sample is not None:
                    measured.setdefault(d.key, []).append(self._judge(lane, rel, check, sample, at))
        by_key = {d.key: rel for d, rel in due}
        with self._lock:
            for key, measurements in measured.items():
                rel = by_key[key]
                self._pending[key] = Pending(
                    lane.name,
                    rel.status.current_step,
                    rel.status.last_analysis_at,
                    tuple(measurements),
                )
        self.queries += queries
        for namespace, name in measured:
            self.enqueue(namespace, name)
        log.info(
            "lane analysed",
            lane=lane.name,
            releases=len(due),
            measured=len(measured),
            queries=queries,
            window_s=tick_window,
        )

    def _grouped_samples(
        self,
        lane: ChangeLane,
        plan: CheckTick,
        due: list[tuple[DueRelease, LaneRelease]],
        tick_end: int,
        tick_window: int,
    ) -> dict[tuple[str, str], CheckSample]:
        if not plan.queries:
            return {}
        check = plan.check
        texts: list[str] = []
        answers: list[GroupAnswer | str] = []
        for q in plan.queries:
            text = q.render(lane.name)
            started = time.perf_counter()
            answer = self.metrics.query_groups(
                text, q.template.labels, float(tick_end), f"lane {lane.name}, check {check.name}"
            )
            if self.record_query is not None:
                elapsed = time.perf_counter() - started
                self.record_query(lane.name, check.name, elapsed, isinstance(answer, str))
            texts.append(text)
            answers.append(answer)
        min_window = self.metrics.min_window_seconds
        out: dict[tuple[str, str], CheckSample] = {}
        counting = accumulates(check)
        members = set().union(*(q.members for q in plan.queries))
        for d, rel in due:
            if d.key not in plan.windows or d.key not in members:
                continue
            if not counting:
                query_of = _release_queries(lane, check, rel, plan.windows[d.key], min_window)
                out[d.key] = windowed_sample(lane.name, plan, d, answers, query_of, min_window)
                continue
            increments: dict[tuple[Track, Role], QueryResult] = {}
            for q, text, answer in zip(plan.queries, texts, answers, strict=True):
                if d.key not in q.members:
                    continue  # another chunk's query
                for track in q.tracks:
                    increments[(track, q.role)] = result_for(answer, d, track, text)
            failed = next((r for r in increments.values() if r.kind is ResultKind.ERROR), None)
            key = (d.key, check.name)
            with self._lock:
                acc = accumulate(
                    self._counts.get(key),
                    d,
                    tick_end=tick_end,
                    tick_window=tick_window,
                    increments=increments,
                )
                if acc is None:
                    self._counts.pop(key, None)
                else:
                    self._counts[key] = acc
            span = acc.span if acc is not None else tick_window
            query_of = _release_queries(lane, check, rel, span, min_window)
            out[d.key] = accumulated_sample(lane.name, check, acc, failed, query_of, min_window)
        return out

    def _single_sample(
        self, lane: ChangeLane, check: AnalysisCheck, d: DueRelease, window: int
    ) -> CheckSample:
        rel_params = ReleaseParams(
            lane=lane.name,
            namespace=d.namespace,
            workload=d.workload,
            window_seconds=window,
            min_window_seconds=self.metrics.min_window_seconds,
        )
        return self.metrics.fetch(check, rel_params)

    def _judge(
        self,
        lane: ChangeLane,
        rel: LaneRelease,
        check: AnalysisCheck,
        sample: CheckSample,
        at: datetime,
    ) -> Measurement:
        step = rel.status.current_step
        try:
            prior = (
                self.priors.noise_prior(lane, rel, check, at) if self.priors is not None else None
            )
            return judge_release(lane, rel, check, sample, at, prior)
        except Exception as exc:  # a bug here must hold the release, never pass it
            log.exception("analysis failed", lane=lane.name, check=check.name)
            return analysis_failed(lane, check, step, at, exc)


def _release_queries(
    lane: ChangeLane, check: AnalysisCheck, rel: LaneRelease, window: int, min_window: int
) -> dict[SeriesKey, str]:
    """The release's own query for each series (what on-call pastes into Prometheus to see
    what the judge saw); empty when its template does not render for this release."""
    params = params_for_window(lane.name, rel, max(window, 1), min_window)
    try:
        return {p.key: p.query for p in plan_queries(check, params)}
    except TemplateError:
        return {}
