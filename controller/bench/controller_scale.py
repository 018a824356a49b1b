"""``changelane bench controller``: ``changelane run`` at scale on the simulated cluster.

The simulated cluster and a Prometheus stand-in each run in a process of their own
(``sim_process``), and the controller is ``changelane run`` in its own process, so its RSS
and CPU are its own and the cluster does not share a GIL with the bench. One world per
Deployment count: N lane Deployments are created before the controller starts (adoption is
timed from its start), the idle phase is measured, then M of them get a new pod template
(M live releases) and the busy phase is measured in the same process (the (10k, 1k) run's
peak RSS therefore includes the adoption of the 10k).

What each figure is:

- ``rss_steady_mib``: median RSS over the measured window; ``rss_peak_mib``: the
  kernel's high-water mark (VmHWM) at its end.
- ``cpu_idle_pct``: CPU of the controller over the window, in % of one core (with no
  releases this is its idle cost: watches, relists, resyncs).
- ``adoption_s``: controller start to every Deployment adopted (its ``-primary`` exists).
- ``reconcile_p50_ms``/``p99``: from the controller's own
  ``changelane_reconcile_duration_seconds`` histogram, over the window (bucket-interpolated,
  as ``histogram_quantile`` does).
- ``analysis_lag_p99_ratio``: per release, the longest time between two measurements
  (``status.lastAnalysisAt`` changes; the gap still open at the window's end counts too)
  over the lane's interval; the p99 over releases. The window opens once every release
  has been measured once (the time that took, its canary's start and the first tick, is
  the table's ``1st s``, not a gap), so it measures the cadence of releases in flight.
- ``queries_per_tick``: PromQL queries the stand-in answered in the window, per interval.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from controller.bench.controller_replicas import (
    ProbeGroup,
    ProcessGroup,
    controller_processes,
    lane_names,
)
from controller.bench.sim_process import SimProcess
from controller.core.release_machine import MEASUREMENT_HISTORY

JsonDict = dict[str, Any]
NS = "bench"
LANE = "bench-lane"
CHECKS = 2
MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")

#: The issue's targets for (10k, 1k) on one replica.
TARGETS = {
    "rss_peak_mib": 300.0,
    "analysis_lag_p99_ratio": 1.2,
    "reconcile_p99_ms": 50.0,
    "cpu_idle_pct": 5.0,
}


@dataclass
class Plan:
    """One world: ``deployments`` adopted, then each of ``releases`` measured."""

    deployments: int
    releases: tuple[int, ...]
    interval_s: int = 30
    window_s: float = 120.0
    adopt_timeout_s: float = 900.0
    #: ``changelane run`` processes sharing the lanes (``--shards replicas``), and lanes
    #: (one is bench-lane; more are picked one per shard, Deployments spread over them).
    replicas: int = 1
    lanes: int = 1
    #: After the last releases' window: fill every release's measurement history to the
    #: most the status keeps (as an hour in) and measure one more window.
    full_histories: bool = False


@dataclass
class Run:
    deployments: int
    releases: int
    lanes: int
    rss_steady_mib: float
    rss_peak_mib: float
    cpu_idle_pct: float
    adoption_s: float | None
    reconcile_p50_ms: float | None
    reconcile_p99_ms: float | None
    analysis_lag_p99_ratio: float | None
    queries_per_tick: float
    checks_per_lane: int
    replicas: int = 1
    # Not in the JSON shape: context for the table.
    queue_depth_max: float = field(default=0.0, repr=False)
    releases_measured: int = field(default=0, repr=False)
    #: Measurements each release's history was filled to before the window (0: as
    #: written during the run, a few minutes' worth).
    history: int = field(default=0, repr=False)
    #: CPU of the simulated cluster's process over the window, % of one core.
    sim_cpu_pct: float = field(default=0.0, repr=False)
    #: p99 over releases of the seconds from the new template to the first measurement
    #: (canary start and the first tick); the window opens after it.
    first_analysis_p99_s: float | None = field(default=None, repr=False)

    def json(self) -> JsonDict:
        data = asdict(self)
        for context in (
            "queue_depth_max",
            "releases_measured",
            "sim_cpu_pct",
            "first_analysis_p99_s",
        ):
            data.pop(context)
        if not self.history:
            data.pop("history")
        if self.replicas == 1:
            data.pop("replicas")  # the shape; a --replicas run says how many
        return data


# ---------------------------------------------------------------------- the world


def lane_doc(interval_s: int, name: str = LANE) -> JsonDict:
    """One lane, 1-hour steps, two checks (a sequential error-rate test and a latency
    threshold): five queries per release and tick when asked one release at a time."""
    sel = 'namespace="{{ namespace }}", app="{{ workload }}", track="{{ track }}"'
    return {
        "apiVersion": "changelane.dev/v1alpha1",
        "kind": "ChangeLane",
        "metadata": {"name": name},
        "spec": {
            "selector": {"namespaces": [NS], "matchLabels": {"changelane.dev/lane": name}},
            "agents": [{"id": "bench-agent"}],
            "provenance": {"required": ["agent", "model", "change"]},
            "gates": {"maxConcurrentReleases": 100_000, "maxReleasesPerDay": 100_000},
            "strategy": {
                "steps": [
                    {"weight": 10, "minDuration": "1h"},
                    {"weight": 100, "minDuration": "1h"},
                ],
                "progressDeadline": "3h",
            },
            "analysis": {
                "interval": f"{interval_s}s",
                "checks": [
                    {
                        "name": "error-rate",
                        "kind": "sequential",
                        "errorsQuery": "sum(increase(http_requests_total{"
                        + sel
                        + ', code=~"5.."}[{{ window }}]))',
                        "totalQuery": "sum(increase(http_requests_total{"
                        + sel
                        + "}[{{ window }}]))",
                        "minSamples": 50,
                        "inconclusiveLimit": 1_000_000,
                    },
                    {
                        "name": "latency",
                        "kind": "threshold",
                        "query": "histogram_quantile(0.95, sum by (le) (rate("
                        "http_request_duration_seconds_bucket{" + sel + "}[{{ window }}])))",
                        "threshold": 0.5,
                        "inconclusiveLimit": 1_000_000,
                    },
                ],
            },
        },
    }


def deployment_doc(index: int, image: str = "app:1", lane: str = LANE) -> JsonDict:
    """A lane Deployment as a real API server returns one: with managedFields."""
    name = f"app-{index:05d}"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"changelane.dev/lane": lane, "app": name, "team": "bench"},
            "managedFields": [
                {
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": "apps/v1",
                    "time": "2026-01-01T00:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}, "f:team": {}}},
                        "f:spec": {
                            "f:replicas": {},
                            "f:selector": {},
                            "f:template": {
                                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                                "f:spec": {"f:containers": {'k:{"name":"app"}': {}}},
                            },
                        },
                    },
                }
            ],
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {
                        "changelane.dev/agent": "bench-agent",
                        "changelane.dev/model": "bench-model",
                        "changelane.dev/change": "0000000a",
                        "changelane.dev/images": f"registry.example/{image}",
                    },
                },
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"registry.example/{image}",
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "env": [{"name": "MODE", "value": "bench"}],
                            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                        }
                    ]
                },
            },
        },
    }


# ---------------------------------------------------------------------- Prometheus stand-in


class PromStandIn:
    """Answers every instant query with healthy data (no errors, 1,000 requests, 50 ms)
    and counts them. A query grouped ``by`` labels gets one series per value that its
    ``=~`` matchers list, so grouped and single queries both get an answer."""

    def __init__(self, port: int = 0, counter: Any = None) -> None:
        self.counter = counter
        self.count = 0
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                self._answer((query.get("query") or [""])[0])

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                self._answer((form.get("query") or [""])[0])

            def _answer(self, promql: str) -> None:
                with stand_in.lock:
                    stand_in.count += 1
                if stand_in.counter is not None:
                    with stand_in.counter.get_lock():
                        stand_in.counter.value += 1
                body = json.dumps({"status": "success", "data": stand_in.result(promql)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def value_for(promql: str) -> str:
        if '"5.."' in promql:
            return "0"
        if "histogram_quantile" in promql:
            return "0.05"
        return "1000"

    def result(self, promql: str) -> JsonDict:
        from controller.bench.grouped_answers import grouped_series

        value = [time.time(), self.value_for(promql)]
        series = grouped_series(promql)
        if series is None:
            return {"resultType": "vector", "result": [{"metric": {}, "value": value}]}
        return {
            "resultType": "vector",
            "result": [{"metric": labels, "value": value} for labels in series],
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _serve_stand_in(port: int, counter: Any) -> None:
    PromStandIn(port, counter).server.serve_forever()


class PromStandInProcess:
    """The stand-in in its own process, so answering queries does not compete for the
    GIL with the simulated API server that the controller also waits on."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.port = _free_port()
        self.counter = ctx.Value("q", 0)
        self.process = ctx.Process(
            target=_serve_stand_in, args=(self.port, self.counter), daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def count(self) -> int:
        return int(self.counter.value)

    def start(self) -> None:
        self.process.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.1)
        raise RuntimeError("the Prometheus stand-in did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(timeout=10)


# ---------------------------------------------------------------------- the process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sample:
    at: float
    rss: int
    cpu_s: float
    queue: float


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    parts = stat[stat.rindex(")") + 2 :].split()
    return (int(parts[11]) + int(parts[12])) / TICKS  # utime + stime


class Probe:
    """Samples the controller process (RSS, CPU) and its queue depth once a second."""

    def __init__(self, pid: int, metrics_port: int) -> None:
        self.pid, self.port = pid, metrics_port
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def rss(self) -> tuple[int, int]:
        """Current and peak RSS in bytes (VmRSS, VmHWM)."""
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
        return fields.get("VmRSS", 0), fields.get("VmHWM", 0)

    def cpu_s(self) -> float:
        return cpu_seconds(self.pid)

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
        return out

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                depth = sum(v for _, v in self.metrics().get("changelane_workqueue_depth", []))
                self.samples.append(Sample(time.monotonic(), self.rss()[0], self.cpu_s(), depth))
            except (OSError, ValueError):
                continue

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def reconcile_buckets(probe: Probe) -> dict[float, float]:
    """Cumulative bucket counts of every reconcile kind, by upper bound."""
    out: dict[float, float] = {}
    for labels, value in probe.metrics().get("changelane_reconcile_duration_seconds_bucket", []):
        le = float(labels["le"])
        out[le] = out.get(le, 0.0) + value
    return out


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """``histogram_quantile`` over the increase between two scrapes; NaN if none."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            span = count - lower_count
            fraction = (rank - lower_count) / span if span > 0 else 1.0
            return lower_bound + (bound - lower_bound) * fraction
        lower_bound, lower_count = bound, count
    return bounds[-2] if len(bounds) > 1 else math.nan


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 1)


# ---------------------------------------------------------------------- measuring


def _analysis_times(sim: SimProcess) -> dict[str, float]:
    """Each release's ``status.lastAnalysisAt``, read in the cluster's process."""
    return dict(sim.call("analysis_times", NS))


def lag_ratios(
    history: dict[str, list[float]], window_end: float, interval_s: float
) -> list[float]:
    """Per release: the longest gap between its measurements, the open one included."""
    ratios = []
    for stamps in history.values():
        points = sorted(set(stamps))
        gaps = [b - a for a, b in itertools.pairwise(points)]
        gaps.append(window_end - points[-1])
        ratios.append(max(gaps) / interval_s)
    return ratios


def p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)], 2)


@contextmanager
def controller_process(
    sim: SimProcess, prometheus: PromStandInProcess, workdir: Path, extra: list[str]
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")
    flags = workdir / "flags.json"
    flags.write_text(
        json.dumps(
            {
                "flags": {
                    f"changelane.lane.{LANE}.autonomy": {
                        "state": "ENABLED",
                        "variants": {"on": True, "off": False},
                        "defaultVariant": "on",
                    }
                }
            }
        )
    )
    port = _free_port()
    log = (workdir / "controller.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "controller", "run",
            "--kubeconfig", str(kubeconfig),
            "--no-leader-election",
            "--instance", "bench-0",
            "--metrics-port", str(port), "--metrics-address", "127.0.0.1",
            "--prometheus-url", prometheus.url,
            "--flag-provider", "file", "--flag-file", str(flags),
            "--log-level", "warning",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield proc, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait(predicate: Any, timeout: float, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the controller exited ({proc.returncode}) while {what}")
        if predicate():
            return
        time.sleep(1.0)
    raise TimeoutError(f"timed out after {timeout:.0f}s {what}")


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def measure_window(
    sim: SimProcess,
    probe: Probe,
    prometheus: PromStandInProcess,
    plan: Plan,
    deployments: int,
    releases: int,
    adoption_s: float | None,
) -> Run:
    before = reconcile_buckets(probe)
    queries_before = prometheus.count
    started = time.monotonic()
    wall_started = time.time()
    cpu_before = probe.cpu_s()
    sim_cpu_before = cpu_seconds(sim.pid)
    history: dict[str, list[float]] = {}
    if releases:
        for name, at in _analysis_times(sim).items():
            history.setdefault(name, []).append(at)
        # A release not measured yet when the window opens waits from its start: its
        # first measurement in the window is a gap like any other.
        for name in set(sim.call("release_names", NS)) - set(history):
            history[name] = [wall_started]
    while time.monotonic() - started < plan.window_s:
        time.sleep(min(2.0, plan.window_s - (time.monotonic() - started)))
        if releases:
            for name, at in _analysis_times(sim).items():
                history.setdefault(name, []).append(at)
    elapsed = time.monotonic() - started
    cpu = probe.cpu_s() - cpu_before
    sim_cpu = cpu_seconds(sim.pid) - sim_cpu_before
    queries = prometheus.count - queries_before
    after = reconcile_buckets(probe)
    window = [s for s in probe.samples if s.at >= started]
    rss_now, rss_peak = probe.rss()
    # Releases that appeared during the window and were never measured count from its start.
    for name in set(sim.call("release_names", NS)) - set(history):
        history[name] = [wall_started]
    ratios = lag_ratios(history, time.time(), plan.interval_s) if releases else []
    return Run(
        deployments=deployments,
        releases=releases,
        lanes=plan.lanes,
        replicas=plan.replicas,
        rss_steady_mib=round(statistics.median([s.rss for s in window] or [rss_now]) / MIB, 1),
        rss_peak_mib=round(rss_peak / MIB, 1),
        cpu_idle_pct=round(100 * cpu / elapsed, 1),
        adoption_s=adoption_s,
        reconcile_p50_ms=_ms(histogram_quantile(0.5, before, after)),
        reconcile_p99_ms=_ms(histogram_quantile(0.99, before, after)),
        analysis_lag_p99_ratio=p99(ratios),
        queries_per_tick=round(queries * plan.interval_s / elapsed, 1),
        checks_per_lane=CHECKS,
        queue_depth_max=max((s.queue for s in window), default=0.0),
        releases_measured=sum(1 for v in history.values() if max(v) > wall_started),
        sim_cpu_pct=round(100 * sim_cpu / elapsed, 1),
    )


def run_plan(
    plan: Plan,
    extra_args: list[str] | None = None,
    echo: Any = print,
    into: list[Run] | None = None,
) -> list[Run]:
    runs: list[Run] = [] if into is None else into
    prometheus = PromStandInProcess()
    prometheus.start()  # before the simulated cluster's threads exist
    with (
        tempfile.TemporaryDirectory(prefix="changelane-bench-") as tmp,
        SimProcess(ready_delay=0.5, history_limit=500_000, emit_events=False) as sim,
    ):
        workdir = Path(tmp)
        try:
            sim.create("namespaces", [{"metadata": {"name": NS}}])
            lanes = [LANE] if plan.lanes == 1 else lane_names(plan.lanes, plan.lanes)
            sim.create("changelanes", [lane_doc(plan.interval_s, lane) for lane in lanes])
            for first in range(0, plan.deployments, 1000):
                indexes = range(first, min(plan.deployments, first + 1000))
                docs = [deployment_doc(i, lane=lanes[i % len(lanes)]) for i in indexes]
                sim.create("deployments", docs, namespace=NS)
            echo(f"  {plan.deployments} Deployments created; starting changelane run")
            # The stand-in has no scrapes: a range as short as the interval is fine (the full
            # run's 30 s interval is the default minimum window anyway).
            args = [*(extra_args or []), "--min-window", str(min(plan.interval_s, 30))]
            with _controllers(sim, prometheus, workdir, plan, lanes, args) as (proc, ports):
                started = time.monotonic()
                for port in ports:
                    _wait(lambda p=port: _ready(p), 300, proc, "waiting for /readyz")
                probe = _probe(proc, ports)
                probe.start()
                _wait(
                    lambda: sim.call("count_primaries", NS) >= plan.deployments,
                    plan.adopt_timeout_s,
                    proc,
                    f"adopting {plan.deployments} Deployments",
                )
                adoption_s = round(time.monotonic() - started, 1)
                echo(f"  adopted in {adoption_s}s")
                time.sleep(min(10.0, plan.window_s / 4))  # let the adoption writes settle
                # A primary existing is not the end of adoption: the hand-over (original
                # scaled to zero) follows. The idle window opens once the queue is drained.
                settled = _settle(sim, probe, plan.deployments, plan.adopt_timeout_s)
                echo(
                    f"  queue drained after {settled}s more"
                    if settled is not None
                    else "  queue never drained; measuring anyway"
                )
                for releases in plan.releases:
                    first_p99 = None
                    if releases:
                        first_p99 = _start_releases(sim, releases, plan, proc)
                        echo(f"  {releases} releases progressing and measured once")
                    run = measure_window(
                        sim, probe, prometheus, plan, plan.deployments, releases, adoption_s
                    )
                    run.first_analysis_p99_s = first_p99
                    echo(f"  measured {run.deployments}/{run.releases}")
                    runs.append(run)
                if plan.full_histories and plan.releases[-1]:
                    runs.append(
                        _with_full_histories(sim, probe, prometheus, plan, adoption_s, echo)
                    )
                probe.stop()
        finally:
            prometheus.stop()
    return runs


def _with_full_histories(
    sim: SimProcess,
    probe: Any,
    prometheus: PromStandInProcess,
    plan: Plan,
    adoption_s: float | None,
    echo: Any,
) -> Run:
    """The last world again once every release's history is as long as the status keeps."""
    filled = sim.call("fill_histories", NS, MEASUREMENT_HISTORY)
    echo(f"  {filled} measurement histories filled to {MEASUREMENT_HISTORY}")
    time.sleep(plan.interval_s)  # the controller takes the filled releases in, and ticks
    releases = plan.releases[-1]
    run = measure_window(sim, probe, prometheus, plan, plan.deployments, releases, adoption_s)
    run.history = MEASUREMENT_HISTORY
    echo(f"  measured {run.deployments}/{run.releases}, {filled} histories filled beforehand")
    return run


def _settle(sim: SimProcess, probe: Any, deployments: int, timeout: float) -> float | None:
    """Seconds until every original handed over to its primary (scaled to zero) and the
    work queue then stayed (nearly) empty for five samples in a row."""
    started = time.monotonic()
    quiet = max(1.0, deployments / 100)
    while time.monotonic() - started < timeout:
        if sim.call("count_handed_over", NS) >= deployments:
            recent = [s for s in probe.samples if s.at >= started][-5:]
            if len(recent) == 5 and all(s.queue <= quiet for s in recent):
                return round(time.monotonic() - started, 1)
        time.sleep(2.0)
    return None


@contextmanager
def _controllers(
    sim: SimProcess,
    prometheus: PromStandInProcess,
    workdir: Path,
    plan: Plan,
    lanes: list[str],
    extra_args: list[str] | None,
) -> Iterator[tuple[Any, list[int]]]:
    """One ``changelane run`` (as always), or with several lanes or replicas the group of
    ``controller_replicas``, seen as one process."""
    if plan.replicas == 1 and plan.lanes == 1:
        with controller_process(sim, prometheus, workdir, extra_args or []) as (proc, port):
            yield proc, [port]
        return
    ports = [_free_port() for _ in range(plan.replicas)]
    with controller_processes(
        sim, prometheus.url, workdir, lanes, plan.replicas, ports, extra_args
    ) as ps:
        yield ProcessGroup(ps), ports


def _probe(proc: Any, ports: list[int]) -> Any:
    if isinstance(proc, ProcessGroup):
        return ProbeGroup([Probe(p.pid, port) for p, port in zip(proc.procs, ports, strict=True)])
    return Probe(proc.pid, ports[0])


def _start_releases(sim: SimProcess, count: int, plan: Plan, proc: Any) -> float | None:
    """Start ``count`` releases and wait until each has been measured once; the p99 over
    releases of the seconds from its new template to its first measurement (None if none
    was measured before the wait gave up)."""
    names = [f"app-{i:05d}" for i in range(count)]
    started = time.time()
    for first in range(0, count, 500):
        batch = names[first : first + 500]
        sim.call("new_templates", NS, batch, "registry.example/app:2", "0000000b")

    def phases() -> Counter[str]:
        return Counter(sim.call("release_phases", NS))

    try:
        _wait(
            lambda: phases()["Progressing"] >= count,
            max(120.0, count * 1.0),
            proc,
            f"starting {count} releases",
        )
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; releases by phase: {dict(phases())}") from exc
    # The window measures the cadence of releases in flight, so it opens once every
    # release has been measured once: "Progressing" comes before the canary is ready
    # and the first look (a fixed wait of one interval left up to two thirds of a lane
    # unmeasured at 10k/3,000, and their canaries' start counted as a gap). How long
    # that first look took is reported beside the lag, not hidden in it. If some are
    # never measured, the window opens anyway and they count from its start.
    with contextlib.suppress(TimeoutError):
        _wait(
            lambda: len(_analysis_times(sim)) >= count,
            max(120.0, 10.0 * plan.interval_s),
            proc,
            f"waiting for the first measurement of {count} releases",
        )
    return first_analysis_p99(_analysis_times(sim), started, count, now=time.time())


def first_analysis_p99(
    first_times: dict[str, float], started: float, expected: int = 0, now: float = 0.0
) -> float | None:
    """The p99 over releases of the seconds from ``started`` to their first measurement.

    A release not measured yet (fewer than ``expected`` times) counts as waiting until
    ``now``, a lower bound, so a wait that gave up does not read shorter than it was."""
    waits = [at - started for at in first_times.values()]
    waits += [now - started] * max(expected - len(first_times), 0)
    value = p99(waits)
    return None if value is None else round(value, 1)


# ---------------------------------------------------------------------- plans and output


def full_plans() -> list[Plan]:
    return [
        Plan(deployments=1_000, releases=(0,), window_s=90.0),
        Plan(deployments=10_000, releases=(0, 1_000), window_s=150.0, full_histories=True),
    ]


def quick_plans() -> list[Plan]:
    return [Plan(deployments=40, releases=(0, 10), interval_s=2, window_s=8.0, full_histories=True)]


@dataclass(frozen=True)
class Size:
    """A world's size for ``--replicas``: Deployments, releases per replica, lane interval
    and measured window (a smaller world fits the machine where 10k/3k does not)."""

    deployments: int = 10_000
    releases: int = 1_000
    interval_s: int = 30
    window_s: float = 150.0


QUICK_SIZE = Size(deployments=60, releases=10, interval_s=2, window_s=8.0)


def replica_plans(replicas: int, quick: bool = False, size: Size | None = None) -> list[Plan]:
    """The same lanes and Deployments on one replica and on ``replicas``, the latter with
    ``replicas`` times the releases (the same releases per replica): is the per-release
    lag the same?"""
    size = size or (QUICK_SIZE if quick else Size())
    one, many = (size.releases,), (size.releases * replicas,)
    shape = (size.deployments, size.interval_s, size.window_s)
    return [
        Plan(shape[0], one, shape[1], shape[2], lanes=replicas),
        Plan(shape[0], many, shape[1], shape[2], replicas=replicas, lanes=replicas),
    ]


def table(runs: list[Run]) -> str:
    head = (
        f"{'repl':>4} {'deploys':>8} {'releases':>8} {'RSS MiB':>8} {'peak':>7} {'CPU %':>6} "
        f"{'adopt s':>8} {'rec p50':>8} {'rec p99':>8} {'lag p99':>8} {'q/tick':>7} "
        f"{'checks':>6} {'queue':>6} {'measured':>8} {'sim CPU':>7} {'hist':>4} {'1st s':>6}"
    )
    lines = [head, "-" * len(head)]

    def f(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    for r in runs:
        lines.append(
            f"{r.replicas:>4} {r.deployments:>8} {r.releases:>8} {r.rss_steady_mib:>8g} "
            f"{r.rss_peak_mib:>7g} "
            f"{r.cpu_idle_pct:>6g} {f(r.adoption_s):>8} {f(r.reconcile_p50_ms):>8} "
            f"{f(r.reconcile_p99_ms):>8} {f(r.analysis_lag_p99_ratio):>8} "
            f"{r.queries_per_tick:>7g} {r.checks_per_lane:>6} {r.queue_depth_max:>6g} "
            f"{r.releases_measured:>8} {r.sim_cpu_pct:>7g} {r.history or '-':>4} "
            f"{f(r.first_analysis_p99_s):>6}"
        )
    lines.append(
        "RSS/CPU of the controller process; CPU in % of one core over the window; rec = "
        "reconcile ms; lag = p99 over releases of (longest gap between measurements / "
        "interval); queue = max work-queue depth; measured = releases measured at least "
        "once in the window; "
        "sim CPU = the simulated cluster's process, % of one core; hist = every "
        "release's measurement history filled to this many before the window; 1st s = "
        "p99 seconds from a release's new template to its first measurement (the window "
        "opens once every release was measured once). "
        "repl > 1: replicas sharing the lanes (RSS of the largest, CPU and queue summed)."
    )
    return "\n".join(lines)


def run(
    quick: bool = False, echo: Any = print, replicas: int = 1, size: Size | None = None
) -> tuple[list[Run], list[str]]:
    """The runs measured, and what failed (a world that failed keeps the runs it
    measured before failing; the next world still runs)."""
    runs: list[Run] = []
    failures: list[str] = []
    plans = quick_plans() if quick else full_plans()
    if replicas > 1:
        plans = replica_plans(replicas, quick, size)
    for plan in plans:
        echo(f"world of {plan.deployments} Deployments, releases {list(plan.releases)}")
        try:
            run_plan(plan, echo=echo, into=runs)
        except (RuntimeError, TimeoutError, OSError) as exc:
            failures.append(f"world of {plan.deployments} Deployments: {exc}")
            echo(f"  FAILED: {exc}")
    return runs, failures


def write_json(runs: list[Run], path: Path) -> None:
    path.write_text(json.dumps({"runs": [r.json() for r in runs]}, indent=2) + "\n")
