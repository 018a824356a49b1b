"""``changelane demo``: the whole product on one machine, with nothing else running.

It starts the simulated cluster, a simulated workload whose errors depend on the release
serving it, a metrics backend (the real Prometheus binary when it is on PATH, scraping the
workload on loopback; otherwise the embedded source), and the controller itself (the real
adapters over HTTP, with leader election). It declares a lane, ships agent-authored
releases, shows their progress live and ends with the audit trail. Everything it started
is stopped on the way out, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import structlog

from controller.adapters.audit.log import AuditLog
from controller.adapters.audit.sink import FanOutAuditSink
from controller.adapters.flags.flag_ramp import FlagWriterRamp
from controller.adapters.flags.kill_switch import KillSwitch
from controller.adapters.flags.lane_gates import LaneGates
from controller.adapters.flags.provider_config import FlagProviderConfig, build_provider
from controller.adapters.kube.api import ConflictError, KubeApi
from controller.adapters.kube.client import api_client
from controller.adapters.kube.connection import KubeConnection
from controller.adapters.metrics.analyzer import PrometheusAnalyzer
from controller.adapters.metrics.prometheus import PrometheusMetrics
from controller.adapters.metrics.prometheus_process import (
    PrometheusProcess,
    ScrapeTarget,
    prometheus_binary,
)
from controller.adapters.notify.transports import redact
from controller.core import labels
from controller.core.audit import AuditRecord, Decision
from controller.core.canary import primary_name, template_hash
from controller.core.models import Phase
from controller.core.models.release import TERMINAL_PHASES
from controller.dashboard.app import controller_dashboard, serve
from controller.demo import scenario
from controller.demo.embedded_metrics import EmbeddedMetrics
from controller.demo.scenario import DemoRelease
from controller.demo.workload import SimulatedWorkload
from controller.runtime.manager import Controller, Settings
from controller.runtime.notifications import attach_notifier, webhook_defaults
from controller.sim.cluster import SimCluster

TERMINAL = TERMINAL_PHASES
#: Phases a release may end the demo in without being terminal (it is held by a gate).
HELD = frozenset({Phase.GATED, Phase.PAUSED})
#: The phase each scenario's ``expected`` names.
EXPECTED_PHASE = {
    "promote": Phase.PROMOTED,
    "rollback": Phase.ROLLED_BACK,
    "reject": Phase.REJECTED,
    "gate": Phase.GATED,
    "await-promotion": Phase.PAUSED,
}


@dataclass
class ReleaseOutcome:
    name: str
    expected: str
    outcome: str
    canary_max_weight: int
    decision_seconds: float | None
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "expected": self.expected,
            "outcome": self.outcome,
            "canary_max_weight": self.canary_max_weight,
            "decision_seconds": self.decision_seconds,
            **self.extra,
        }


@dataclass
class DemoResult:
    metrics_backend: str
    releases: list[ReleaseOutcome]
    records: list[AuditRecord]

    def as_json(self) -> dict[str, Any]:
        return {
            "metrics_backend": self.metrics_backend,
            "releases": [r.as_json() for r in self.releases],
        }

    @property
    def as_expected(self) -> bool:
        return all(_matches(r.expected, r.outcome) for r in self.releases)


@dataclass
class DemoOptions:
    #: A name in :data:`scenario.SCENARIOS`: the lane, the releases and the flags.
    scenario: str = "default"
    #: Releases to ship instead of the scenario's.
    releases: Sequence[DemoRelease] | None = None
    audit_log: Path | None = None
    keep: bool = False
    use_prometheus: bool | None = None  # None: when the binary is on PATH
    release_timeout_s: float = 90.0
    out: TextIO | None = None
    #: Send the demo's notifications (CloudEvents JSON) to this URL.
    webhook: str | None = None
    on_ready: Callable[[SimCluster, Path], None] | None = None
    #: With ``keep``: the dashboard's port (0: any free one), and instead of waiting for
    #: Ctrl-C, call this with the dashboard's URL and return when it does.
    dashboard_port: int = 0
    on_kept: Callable[[str], None] | None = None


class _Memory:
    def __init__(self) -> None:
        self.records: list[AuditRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: AuditRecord) -> None:
        with self._lock:
            if all(r.id != record.id for r in self.records):
                self.records.append(record)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the demo like Ctrl-C does, so the same cleanup runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _quiet_logs(log_file: Path) -> Iterator[None]:
    """The controller's JSON logs go to a file while the demo runs; the console shows the
    demo's story. The previous logging setup is restored afterwards."""
    previous = structlog.get_config()
    levels = {
        name: logging.getLogger(name).level for name in ("kubernetes", "leaderelection", "urllib3")
    }
    stream = log_file.open("a", encoding="utf-8")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    for name in levels:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        structlog.configure(**previous)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        stream.close()


def run_demo(options: DemoOptions | None = None) -> DemoResult:
    opts = options or DemoOptions()
    chosen = scenario.SCENARIOS[opts.scenario]
    releases = opts.releases if opts.releases is not None else chosen.releases
    say = _printer(opts.out)
    workdir = Path(tempfile.mkdtemp(prefix="changelane-demo-"))
    with ExitStack() as stack, _terminate_as_interrupt():
        stack.enter_context(_quiet_logs(workdir / "controller.log"))
        sim = stack.enter_context(SimCluster(ready_delay=1.0))
        kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")
        say(f"simulated cluster   {sim.url}  (kubeconfig {kubeconfig})")
        api = api_client(str(kubeconfig))
        kube = KubeApi(api)
        _create(
            kube.create_namespace,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": scenario.NAMESPACE}},
        )

        workload = SimulatedWorkload(kube, scenario.NAMESPACE, scenario.WORKLOAD, rps=60.0)
        port = workload.serve_metrics()
        workload.start()
        stack.callback(workload.stop)
        say(f"simulated workload  http://127.0.0.1:{port}/metrics  (60 req/s)")

        backend, analyzer = _metrics_backend(opts, stack, workload, port, say)

        flag_file = workdir / "flags.json"
        flag_file.write_text(
            json.dumps(_autonomy_flags(scenario.LANE, on=chosen.autonomy_on)), encoding="utf-8"
        )
        kill_switch = KillSwitch(
            build_provider(
                FlagProviderConfig(kind="flagd-file", path=str(flag_file), poll_interval_ms=500)
            ),
            domain=f"changelane.demo.{id(workdir)}",
        )
        kill_switch.start()
        stack.callback(kill_switch.close)
        say(
            f"kill switch         OpenFeature flagd FILE provider on {flag_file} "
            f"(autonomy {'on' if chosen.autonomy_on else 'OFF'})"
        )
        if chosen.flags is not None:
            _create(
                kube.create_config_map,
                scenario.NAMESPACE,
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": scenario.FLAG_CONFIGMAP, "namespace": scenario.NAMESPACE},
                    "data": {"flags.flagd.json": json.dumps(chosen.flags, indent=2)},
                },
            )
            say(
                f"feature flags       ConfigMap {scenario.NAMESPACE}/{scenario.FLAG_CONFIGMAP} "
                "(flagd definitions the controller ramps)"
            )

        memory = _Memory()
        audit_path = opts.audit_log or workdir / "audit.jsonl"
        audit_log = AuditLog(audit_path)
        stack.callback(audit_log.close)
        sink = FanOutAuditSink([memory, audit_log], required=[audit_log])
        controller = Controller(
            KubeConnection(api),
            gates=LaneGates(kill_switch),
            analyzer=analyzer,
            sinks=[sink],
            flags=FlagWriterRamp(api),
            settings=Settings(
                instance="demo-controller",
                lease_namespace=scenario.NAMESPACE,
                lease_duration=6,
                renew_deadline=4,
                retry_period=1,
            ),
        )
        if opts.webhook:
            notifier = attach_notifier(controller, defaults=webhook_defaults(opts.webhook))
            sink.add(notifier)
            stack.callback(notifier.close)
            say(f"notifications       CloudEvents JSON to {redact(opts.webhook)} (every event)")
        controller.start()
        stack.callback(controller.stop)
        say(
            f"controller          leader election on Lease {scenario.NAMESPACE}/changelane-leader"
            f"; audit log {audit_path}"
        )

        _create(kube.create_lane, chosen.lane_doc())
        steps = " -> ".join(f"{s['weight']}%" for s in chosen.lane["spec"]["strategy"]["steps"])
        say(
            f"lane                {scenario.LANE}: steps {steps}, "
            "sequential error-rate test (alpha 0.01)"
        )
        say(f"scenario            {chosen.name}: {chosen.description}")
        _create(kube.create_deployment, scenario.NAMESPACE, scenario.deployment())
        _wait(
            # adopted: the primary is ready and the original has handed over to it
            lambda: (
                sim.deployment_ready(scenario.NAMESPACE, primary_name(scenario.WORKLOAD))
                and sim.store.get_obj("deployments", scenario.NAMESPACE, scenario.WORKLOAD)["spec"][
                    "replicas"
                ]
                == 0
            ),
            60,
            "the lane to adopt the workload",
        )
        say(
            f"adopted             {scenario.NAMESPACE}/{scenario.WORKLOAD}: "
            f"{primary_name(scenario.WORKLOAD)} serves, the canary waits at zero\n"
        )
        if opts.on_ready is not None:
            opts.on_ready(sim, kubeconfig)

        outcomes: list[ReleaseOutcome] = []
        for release in releases:
            # No pause after a rollback: no analysis window reaches before a release's
            # step started, so the rolled-back canary's errors cannot count against it.
            outcomes.append(_ship(kube, sim, release, opts.release_timeout_s, say))
        if not opts.keep:
            controller.stop()
        # Let the last records reach the sinks before the audit trail is printed.
        time.sleep(0.2)
        result = DemoResult(backend, outcomes, list(memory.records))
        _print_trail(result, say)
        say(f"\naudit log: {audit_path} (verify: changelane audit verify {audit_path})")
        if opts.keep:
            # The controller keeps running (a release shipped now is handled) and serves
            # the dashboard, as it does in a cluster.
            dashboard = controller_dashboard(controller, KubeApi(api))
            server, _ = serve(dashboard, "127.0.0.1", opts.dashboard_port)
            stack.callback(server.server_close)
            stack.callback(server.shutdown)
            url = f"http://127.0.0.1:{server.server_port}/"
            say(
                f"\n--keep: the cluster, the controller and the dashboard stay up. Look around:\n"
                f"  kubectl --kubeconfig {kubeconfig} get lanereleases -A\n"
                f"  kubectl --kubeconfig {kubeconfig} describe deployment -n "
                f"{scenario.NAMESPACE} {scenario.WORKLOAD}\n"
                f"  changelane status --kubeconfig {kubeconfig}\n"
                "dashboard:"
            )
            say(url)
            say("Ctrl-C ends it.")
            if opts.on_kept is not None:
                opts.on_kept(url)
            else:
                try:
                    while True:
                        time.sleep(1)
                except KeyboardInterrupt:
                    say("stopping")
        return result


def _metrics_backend(
    opts: DemoOptions,
    stack: ExitStack,
    workload: SimulatedWorkload,
    port: int,
    say: Callable[[str], None],
) -> tuple[str, PrometheusAnalyzer]:
    use = opts.use_prometheus if opts.use_prometheus is not None else bool(prometheus_binary())
    if use:
        prom = PrometheusProcess([ScrapeTarget(f"127.0.0.1:{port}")], scrape_interval="1s")
        prom.start()
        stack.callback(prom.stop)
        metrics = PrometheusMetrics(prom.url, min_window_seconds=3)
        stack.callback(metrics.close)
        say(f"metrics backend     prometheus ({prom.binary}) at {prom.url}, scraping every 1s")
        return "prometheus", PrometheusAnalyzer(metrics)
    say(
        "metrics backend     embedded (no prometheus binary on PATH; "
        "`apt-get install prometheus` for the real one)"
    )
    return "embedded", PrometheusAnalyzer(EmbeddedMetrics(workload))


def _autonomy_flags(lane: str, *, on: bool) -> dict[str, Any]:
    return {
        "flags": {
            f"changelane.lane.{lane}.autonomy": {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "on" if on else "off",
            }
        }
    }


def _create(fn: Callable[..., Any], *args: Any) -> None:
    with contextlib.suppress(ConflictError):  # already there (a re-run against a kept cluster)
        fn(*args)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: S110 (the object may not exist yet)
            pass
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def _ship(
    kube: KubeApi,
    sim: SimCluster,
    release: scenario.DemoRelease,
    timeout: float,
    say: Callable[[str], None],
) -> ReleaseOutcome:
    dep = kube.get_deployment(scenario.NAMESPACE, scenario.WORKLOAD)
    template = dep["spec"]["template"]
    template["spec"]["containers"][0]["image"] = release.image
    template.setdefault("metadata", {})["annotations"] = dict(release.annotations)
    name = f"{scenario.WORKLOAD}-{template_hash(template)}"
    say(
        f"release {name}  ({release.label})\n  image {release.image}, "
        f"agent {release.annotations.get('changelane.dev/agent', '-')} / "
        f"{release.annotations.get('changelane.dev/model', '-')}, "
        f"change {release.annotations.get('changelane.dev/change', '-')}"
    )
    shipped = time.monotonic()
    kube.patch_deployment(scenario.NAMESPACE, scenario.WORKLOAD, {"spec": {"template": template}})
    seen: tuple[Any, ...] = ()
    shown_measurements = 0
    status: dict[str, Any] = {}
    deadline = shipped + timeout
    while time.monotonic() < deadline:
        rel = _release(sim, name)
        status = (rel or {}).get("status") or {}
        phase = status.get("phase", "Pending")
        key = (phase, status.get("currentStep"), status.get("weight"))
        if rel is not None and key != seen:
            seen = key
            step = status.get("step") or str(status.get("currentStep", 0) + 1)
            say(
                f"  {time.monotonic() - shipped:5.1f}s  {phase:<12} step {step}"
                f"  canary weight {status.get('weight', 0)}%"
                + (f"  ({status.get('message')})" if status.get("message") else "")
            )
        measurements = status.get("measurements") or []
        for m in measurements[shown_measurements:]:
            say(f"           measured {m.get('check')}: {m.get('verdict')}  {m.get('message', '')}")
        shown_measurements = max(shown_measurements, len(measurements))
        if phase in TERMINAL or (
            phase in HELD and _matches(release.expected, phase) and time.monotonic() - shipped > 5
        ):
            break
        time.sleep(0.2)
    phase = status.get("phase", "Pending")
    decided = time.monotonic() - shipped
    verdict = "as expected" if _matches(release.expected, phase) else "NOT as expected"
    say(f"  => {phase} after {decided:.1f}s ({verdict})\n")
    extra: dict[str, Any] = {}
    if release.annotations.get(labels.FLAG):
        extra["flag_weights"] = list(status.get("flagWeights") or [])
    if phase in HELD:
        extra["gate_reason"] = status.get("gateReason")
    return ReleaseOutcome(
        name=name,
        expected=release.expected,
        outcome=phase,
        canary_max_weight=int(status.get("maxWeightReached") or 0),
        decision_seconds=round(decided, 2) if phase in TERMINAL else None,
        label=release.label,
        extra=extra,
    )


def _matches(expected: str, phase: str) -> bool:
    return EXPECTED_PHASE.get(expected) == phase


def _release(sim: SimCluster, name: str) -> dict[str, Any] | None:
    try:
        return sim.store.get_obj("lanereleases", scenario.NAMESPACE, name)
    except Exception:
        return None


def _print_trail(result: DemoResult, say: Callable[[str], None]) -> None:
    say("audit trail")
    names = {r.name for r in result.releases}
    for record in result.records:
        lane_wide = record.release is None and record.decision is Decision.AUTONOMY_CHANGED
        if (record.release not in names and not lane_wide) or (
            record.decision is Decision.MEASUREMENT
        ):
            continue
        when = (
            record.time.astimezone().strftime("%H:%M:%S")
            if isinstance(record.time, datetime)
            else str(record.time)
        )
        evidence = ""
        if record.evidence:
            e = record.evidence[0]
            evidence = f"  [{e.check}: {e.verdict}; {e.statistic or ''}]"
        who = record.release or f"lane {record.lane}"
        say(f"  {when}  {who}  {record.decision.value:<14} {record.reason}{evidence}")


def _printer(out: TextIO | None) -> Callable[[str], None]:
    def say(text: str) -> None:
        print(text, file=out, flush=True)

    return say
