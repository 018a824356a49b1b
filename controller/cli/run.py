"""``changelane run``: the long-running controller (what the Helm chart's pod runs).

Wires the adapters into the runtime: the Kubernetes client (``--kubeconfig``, else the
in-cluster service account, else the default kubeconfig), the kill switch on the chosen
OpenFeature provider, the Prometheus analyzer, the audit sinks (JSON logs, the durable
hash-chained log, the controller's metrics) and the probes/metrics port. SIGTERM or
SIGINT stops it gracefully: no new work, in-flight reconciles finish, the Lease is handed
back.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType

import click
import structlog

from controller.adapters.audit.anchor import DEFAULT_NAME as DEFAULT_ANCHOR
from controller.adapters.audit.anchor import AuditAnchor
from controller.adapters.audit.log import FsyncPolicy
from controller.adapters.audit.logging import configure_logging
from controller.adapters.audit.sink import AuditSink, build_audit_sink
from controller.adapters.flags.flag_ramp import FlagWriterRamp
from controller.adapters.flags.kill_switch import KillSwitch
from controller.adapters.flags.lane_gates import LaneGates
from controller.adapters.flags.provider_config import FlagProviderConfig, build_provider
from controller.adapters.kube.api import KubeApi
from controller.adapters.kube.client import api_client
from controller.adapters.kube.connection import KubeConnection
from controller.core.analysis.sample import DEFAULT_MIN_WINDOW_SECONDS
from controller.core.models import AnalysisCheck, ChangeLane, LaneRelease, Measurement, Verdict
from controller.core.models.common import parse_duration
from controller.core.retention import RetentionPolicy
from controller.dashboard.app import controller_dashboard
from controller.runtime.audit_chain import AnchoredAuditLog
from controller.runtime.health import PortInUseError, serve_probes
from controller.runtime.lane_analysis import LaneMetrics
from controller.runtime.lane_capacity import DEFAULT_MAX_LANE_WORKLOADS
from controller.runtime.manager import Controller, Settings
from controller.runtime.metrics import ControllerMetrics
from controller.runtime.notifications import NotificationConfigError, attach_notifier, load_defaults
from controller.runtime.ports import Analyzer
from controller.runtime.retention import ReleaseRetention
from controller.runtime.shard_audit import ShardedAuditLog, shard_anchor_name
from controller.runtime.shard_wiring import lane_batch

log = structlog.get_logger("changelane.run")

RETENTION_EVERY_S = 60.0
FLAG_PROVIDERS = ("flagd", "flagd-in-process", "file", "entry-point", "none")


class NoMetricsAnalyzer:
    """Without a metrics backend nothing can pass: every measurement is an Error, so
    releases hold (and the lane's error limits decide), never promote."""

    def measure(
        self, lane: ChangeLane, release: LaneRelease, check: AnalysisCheck, now: datetime
    ) -> Measurement:
        return Measurement(
            check=check.name,
            time=now,
            step=release.status.current_step,
            verdict=Verdict.ERROR,
            message=f"lane {lane.name}, check {check.name}: no metrics backend configured "
            "(changelane run --prometheus-url)",
        )


def build_analyzer(
    prometheus_url: str | None, min_window_s: int = DEFAULT_MIN_WINDOW_SECONDS
) -> tuple[Analyzer, LaneMetrics | None]:
    """The per-release analyzer, and the per-lane tick's grouped-query port (None without
    Prometheus: then every reconcile reports the missing backend itself)."""
    if not prometheus_url:
        log.warning("no --prometheus-url: every measurement is an Error; nothing promotes")
        return NoMetricsAnalyzer(), None
    from controller.adapters.metrics.analyzer import PrometheusAnalyzer
    from controller.adapters.metrics.grouped import PrometheusLaneMetrics
    from controller.adapters.metrics.prometheus import PrometheusMetrics

    metrics = PrometheusMetrics(prometheus_url, min_window_seconds=min_window_s)
    return PrometheusAnalyzer(metrics), PrometheusLaneMetrics(metrics)


def provider_config(
    kind: str,
    flagd_host: str,
    flagd_port: int | None,
    flag_file: Path | None,
    entry_point: str | None,
) -> FlagProviderConfig | None:
    if kind == "none":
        return None
    if kind == "file":
        if flag_file is None:
            raise click.BadParameter(
                "--flag-provider file needs --flag-file", param_hint="--flag-file"
            )
        return FlagProviderConfig(kind="flagd-file", path=str(flag_file))
    if kind == "entry-point":
        return FlagProviderConfig(kind="entry-point", entry_point=entry_point)
    return FlagProviderConfig(
        kind="flagd-rpc" if kind == "flagd" else "flagd-in-process",
        host=flagd_host,
        port=flagd_port,
    )


@click.command("run")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Kubeconfig file (default: in-cluster service account, else ~/.kube/config).",
)
@click.option("--context", default=None, help="Kubeconfig context.")
@click.option(
    "--namespace-lease",
    envvar="POD_NAMESPACE",
    default="changelane-system",
    show_default=True,
    help="Namespace of the leader-election Lease.",
)
@click.option("--lease-name", default="changelane-leader", show_default=True)
@click.option("--lease-duration", default=15, show_default=True, help="Seconds.")
@click.option(
    "--renew-deadline",
    default=10,
    show_default=True,
    help="Seconds: a leader that has not renewed for this long stops writing.",
)
@click.option(
    "--shards",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Spread the lanes over this many shard Leases (<lease-prefix>-shard-<i>), each "
    "owned and fenced separately; replicas share them. 1: one leader Lease "
    "(--lease-name) acts for every lane. The chart sets it to replicaCount.",
)
@click.option(
    "--shard-lease-prefix",
    default="changelane",
    show_default=True,
    help="Shard Leases are <prefix>-shard-<i>; each replica's member Lease "
    "<prefix>-member-<identity>.",
)
@click.option(
    "--no-leader-election",
    is_flag=True,
    help="Act without a Lease (one replica only, e.g. on a laptop).",
)
@click.option(
    "--instance",
    envvar="POD_NAME",
    default=None,
    help="This replica's identity in the Lease (default: $POD_NAME, else hostname).",
)
@click.option(
    "--metrics-port",
    default=8080,
    show_default=True,
    help="Serves /metrics, /healthz and /readyz (0: any free port).",
)
@click.option(
    "--metrics-address",
    default="0.0.0.0",  # noqa: S104 (the kubelet probes and Prometheus scrapes the pod IP)
    show_default=True,
    help="Address the metrics/probes port binds.",
)
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The durable hash-chained audit log (JSON lines).",
)
@click.option(
    "--audit-anchor",
    default=DEFAULT_ANCHOR,
    show_default=True,
    help="ConfigMap (in the Lease's namespace) holding the chain's anchored head.",
)
@click.option(
    "--audit-fsync",
    type=click.Choice([p.value for p in FsyncPolicy]),
    default=FsyncPolicy.ALWAYS.value,
    show_default=True,
)
@click.option(
    "--prometheus-url",
    default=None,
    help="Where the lanes' checks are queried. Without it nothing can pass.",
)
@click.option(
    "--flag-provider",
    type=click.Choice(FLAG_PROVIDERS),
    default="flagd",
    show_default=True,
    help="Where lane kill switches are read; 'none' keeps every lane's autonomy off.",
)
@click.option("--flagd-host", default="127.0.0.1", show_default=True)
@click.option(
    "--flagd-port", type=int, default=None, help="Default 8013 (rpc) / 8015 (in-process)."
)
@click.option(
    "--flag-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="flagd definitions file (--flag-provider file).",
)
@click.option(
    "--flag-entry-point",
    default=None,
    help="Provider registered under changelane.flag_providers (--flag-provider entry-point).",
)
@click.option(
    "--notifications",
    "notifications_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Controller-wide notification destinations (YAML shaped like a lane's "
    "spec.notifications); lanes add their own.",
)
@click.option(
    "--notification-secrets",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the mounted notification Secret: one file per secretKey, holding a URL.",
)
@click.option(
    "--dashboard-url",
    default=None,
    help="Where people reach the dashboard (notifications link to it).",
)
@click.option(
    "--keep-releases",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="Finished LaneReleases kept per workload (0: keep all; the newest is always kept).",
)
@click.option(
    "--release-ttl",
    default=None,
    metavar="DURATION",
    help="Delete finished LaneReleases older than this (e.g. 720h; default: no age limit).",
)
@click.option(
    "--flag-source-grace",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="Seconds a broken or missing flag source keeps the last good definitions before "
    "autonomy is switched off (docs/fail-closed.md).",
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--resync",
    default=3600,
    show_default=True,
    help="Seconds between informer relists (a safety net: watches resume from their "
    "resourceVersion and a 410 relists anyway; docs/scale.md).",
)
@click.option(
    "--max-lane-workloads",
    default=DEFAULT_MAX_LANE_WORKLOADS,
    show_default=True,
    type=click.IntRange(1),
    help="Workloads one lane may manage; the rest of what its selector matches is left "
    "alone and the lane's WorkloadLimit condition says so.",
)
@click.option(
    "--min-window",
    default=DEFAULT_MIN_WINDOW_SECONDS,
    show_default=True,
    type=click.IntRange(1, 3600),
    help="Shortest PromQL range window in seconds (at least two scrape intervals); a lane "
    "whose interval is shorter is analysed every --min-window seconds.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def run(
    kubeconfig: str | None,
    context: str | None,
    namespace_lease: str,
    lease_name: str,
    lease_duration: int,
    renew_deadline: int,
    shards: int,
    shard_lease_prefix: str,
    no_leader_election: bool,
    instance: str | None,
    metrics_port: int,
    metrics_address: str,
    audit_log: Path | None,
    audit_anchor: str,
    audit_fsync: str,
    prometheus_url: str | None,
    flag_provider: str,
    flagd_host: str,
    flagd_port: int | None,
    flag_file: Path | None,
    flag_entry_point: str | None,
    notifications_file: Path | None,
    notification_secrets: Path | None,
    dashboard_url: str | None,
    keep_releases: int,
    release_ttl: str | None,
    flag_source_grace: float,
    workers: int,
    resync: int,
    max_lane_workloads: int,
    min_window: int,
    log_level: str,
) -> None:
    """Run the controller until SIGTERM/SIGINT."""
    configure_logging(getattr(logging, log_level.upper()))
    if renew_deadline >= lease_duration:
        raise click.BadParameter(
            f"{renew_deadline} must be shorter than --lease-duration {lease_duration}",
            param_hint="--renew-deadline",
        )
    try:
        ttl = timedelta(seconds=parse_duration(release_ttl)) if release_ttl else None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--release-ttl") from None
    policy = RetentionPolicy(keep_last=keep_releases or None, ttl=ttl)
    identity = instance or socket.gethostname()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    config = provider_config(flag_provider, flagd_host, flagd_port, flag_file, flag_entry_point)
    kill_switch = (
        KillSwitch(build_provider(config), grace_s=flag_source_grace)
        if config is not None
        else None
    )
    if kill_switch is not None:
        kill_switch.start()
    metrics = ControllerMetrics()
    sink, _ = build_audit_sink()  # the Controller feeds ``metrics`` from its own sink
    sinks: list[AuditSink] = [sink]
    client = api_client(kubeconfig, context)
    analyzer, lane_metrics = build_analyzer(prometheus_url, min_window)
    controller = Controller(
        KubeConnection(client),
        gates=LaneGates(kill_switch),
        analyzer=analyzer,
        lane_metrics=lane_metrics,  # analysis per lane tick, grouped queries
        sinks=sinks,
        flags=FlagWriterRamp(client),
        settings=Settings(
            instance=identity,
            lease_namespace=namespace_lease,
            lease_name=lease_name,
            leader_election=not no_leader_election,
            workers=workers,
            resync_seconds=resync,
            max_lane_workloads=max_lane_workloads,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=max(1, renew_deadline // 5),
            shards=shards,
            shard_prefix=shard_lease_prefix,
        ),
        metrics=metrics,  # reconcile, queue depth, leader, analysis, gates, outcomes
    )
    # The audit anchor and retention use more of the API than the Cluster port offers: the
    # Kubernetes adapter itself, its writes fenced by the same leadership.
    fenced = KubeApi(client, controller.write_fence)
    durable: AnchoredAuditLog | ShardedAuditLog | None = None
    if audit_log is not None:
        # The anchor's writes are fenced by leadership like every other write.
        if controller.sharded is not None:  # one chain per shard
            durable = ShardedAuditLog(
                audit_log,
                FsyncPolicy(audit_fsync),
                lambda i: AuditAnchor(fenced, namespace_lease, shard_anchor_name(audit_anchor, i)),
                identity,
                controller.sharded.shards,
            )
        else:
            anchor = AuditAnchor(fenced, namespace_lease, audit_anchor)
            durable = AnchoredAuditLog(audit_log, FsyncPolicy(audit_fsync), anchor, identity)
        sink.add(durable, required=True)
    try:
        defaults = load_defaults(notifications_file) if notifications_file else None
    except NotificationConfigError as err:
        raise click.BadParameter(str(err), param_hint="--notifications") from None
    notifier = attach_notifier(
        controller, defaults=defaults, secret_dir=notification_secrets, dashboard_url=dashboard_url
    )
    sink.add(notifier)  # a subscriber of the decision records; delivery is off-thread
    try:
        probes = serve_probes(
            metrics,
            controller.alive,
            controller.ready,
            metrics_port,
            metrics_address,
            # read-only pages beside /metrics
            fallback=controller_dashboard(controller, KubeApi(client)),
        )
    except PortInUseError as err:
        notifier.close(wait=False)
        if kill_switch is not None:
            kill_switch.close()
        raise click.ClickException(str(err)) from None
    log.info("serving probes", port=probes.port, address=metrics_address, instance=identity)
    retention = ReleaseRetention(
        fenced,
        controller.informers["LaneRelease"].list,
        policy,
        lane_batch=lambda lane: lane_batch(controller, lane),
    )
    controller.start()
    next_sweep = time.monotonic() + RETENTION_EVERY_S
    try:
        while not stop.wait(1.0):
            if isinstance(durable, ShardedAuditLog):
                durable.close_unheld()  # hand each lost shard's log to its new owner
            elif durable is not None and not controller.is_leader():
                durable.close()  # hand the log's lock to whoever leads now
            if controller.is_leader() and time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + RETENTION_EVERY_S
                try:
                    retention.sweep()
                except Exception as err:  # a failed sweep waits for the next one
                    log.warning("retention sweep failed", error=str(err)[:300])
    finally:
        controller.stop()
        notifier.close(wait=False)
        probes.stop()
        if durable is not None:
            durable.close()
        if kill_switch is not None:
            kill_switch.close()
        log.info("stopped", instance=identity)
