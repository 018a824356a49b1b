"""One controller replica for the fencing benchmark, as its own process (so it can be
frozen with SIGSTOP): the real ``Controller`` with leader election, its own kubeconfig
(its own token), its own durable audit log, and a judge that passes every canary whose
image tag does not contain ``bad``.

Besides the audit log it writes ``<audit-log>.appends``: one ``<monotonic> <id>`` line per
record, stamped just before the append, *inside* the fence (``time.monotonic`` is
CLOCK_MONOTONIC, shared by every process of the machine), so the benchmark can tell
whether a record was appended after another replica took the Lease. It serves
``/metrics`` (``changelane_leader``) on a free port written to ``<audit-log>.port``.

    python -m controller.bench.fencing_replica --kubeconfig K --instance a --audit-log P
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from types import FrameType

from controller.adapters.audit.anchor import DEFAULT_NAME as ANCHOR
from controller.adapters.audit.anchor import AuditAnchor
from controller.adapters.audit.log import FsyncPolicy
from controller.adapters.audit.logging import configure_logging
from controller.adapters.audit.sink import FanOutAuditSink
from controller.adapters.flags.lane_gates import LaneGates
from controller.adapters.kube.api import KubeApi
from controller.adapters.kube.client import api_client
from controller.adapters.kube.connection import KubeConnection
from controller.core.audit import AuditRecord
from controller.core.gates import GateResult
from controller.core.models import AnalysisCheck, ChangeLane, LaneRelease, Measurement, Verdict
from controller.runtime.audit_chain import AnchoredAuditLog
from controller.runtime.fence import batch_fence
from controller.runtime.health import serve_probes
from controller.runtime.manager import Controller, Settings
from controller.runtime.metrics import ControllerMetrics
from controller.runtime.shard_audit import ShardedAuditLog, shard_anchor_name


class AutonomyOn:
    def check(
        self, lane: ChangeLane, *, namespace: str, workload: str, agent: str | None = None
    ) -> GateResult:
        return GateResult("killSwitch", True, "on (benchmark)")


class ImageJudge:
    """Fails canaries whose image tag contains 'bad'; passes the others."""

    def measure(
        self, lane: ChangeLane, release: LaneRelease, check: AnalysisCheck, now: datetime
    ) -> Measurement:
        bad = any("bad" in image for image in release.spec.to_revision.images)
        value = 0.3 if bad else 0.01
        return Measurement(
            check=check.name,
            time=now,
            step=release.status.current_step,
            verdict=Verdict.FAIL if bad else Verdict.PASS,
            canary=value,
            threshold=check.threshold,
            statistic=f"value={value}",
        )


class StampedLog:
    """The durable log as `changelane run` has it (anchored in the cluster, one chain across
    leaders), noting when each append began."""

    def __init__(self, log: AnchoredAuditLog | ShardedAuditLog) -> None:
        self.log = log
        self._stamps = (log.path.parent / (log.path.name + ".appends")).open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def emit(self, record: AuditRecord) -> None:
        with self._lock:
            started = time.monotonic()
            before = self.log.appended
            self.log.emit(record)
            if self.log.appended != before:  # a record already in the chain is not re-appended
                fence = batch_fence()  # with shards: whose Lease this append was fenced by
                lease = fence.lease.rsplit("/", 1)[-1] if fence is not None else "-"
                self._stamps.write(f"{started:.6f} {record.id} {lease}\n")
                self._stamps.flush()

    def close(self) -> None:
        with self._lock:
            self.log.close()
            self._stamps.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--instance", required=True)
    parser.add_argument("--audit-log", required=True, type=Path)
    parser.add_argument("--lease-namespace", default="changelane-system")
    parser.add_argument("--lease-duration", type=int, default=4)
    parser.add_argument("--renew-deadline", type=int, default=3)
    parser.add_argument("--retry-period", type=int, default=1)
    parser.add_argument("--shards", type=int, default=1)
    args = parser.parse_args(argv)
    configure_logging(logging.INFO, stream=sys.stderr)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    metrics = ControllerMetrics()
    client = api_client(args.kubeconfig)
    fanout = FanOutAuditSink([])
    controller = Controller(
        KubeConnection(client),
        gates=LaneGates(AutonomyOn()),
        analyzer=ImageJudge(),
        sinks=[fanout],
        settings=Settings(
            instance=args.instance,
            lease_namespace=args.lease_namespace,
            resync_seconds=30,
            lease_duration=args.lease_duration,
            renew_deadline=args.renew_deadline,
            retry_period=args.retry_period,
            shards=args.shards,
        ),
        metrics=metrics,
    )
    # As in `changelane run`: the anchor's writes are fenced by the same leadership, and
    # with shards there is one chain (and anchor) per shard.
    fenced = KubeApi(client, controller.write_fence)
    chain: AnchoredAuditLog | ShardedAuditLog
    if controller.sharded is not None:
        chain = ShardedAuditLog(
            args.audit_log,
            FsyncPolicy.NEVER,
            lambda i: AuditAnchor(fenced, args.lease_namespace, shard_anchor_name(ANCHOR, i)),
            args.instance,
            controller.sharded.shards,
        )
    else:
        chain = AnchoredAuditLog(
            args.audit_log,
            FsyncPolicy.NEVER,
            AuditAnchor(fenced, args.lease_namespace),
            args.instance,
        )
    durable = StampedLog(chain)
    fanout.add(durable, required=True)
    probes = serve_probes(metrics, controller.alive, controller.ready, 0)
    controller.start()
    # Written whole, then renamed: the benchmark polls for the file and reads it at once.
    port_file = args.audit_log.parent / (args.audit_log.name + ".port")
    port_file.with_suffix(".tmp").write_text(str(probes.port))
    port_file.with_suffix(".tmp").rename(port_file)
    try:
        stop.wait()
    finally:
        controller.stop(timeout=5)
        probes.stop()
        durable.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
