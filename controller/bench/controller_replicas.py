"""``changelane bench controller --replicas R``: R ``changelane run`` processes share the
lanes over R shard Leases (``--shards R``), measured as one controller.

The lanes are picked so that each shard has one (lanes are what shards divide); the
Deployments are spread over the lanes evenly, so each replica owns about 1/R of them.
What the table reports for a group: CPU and reconcile histograms summed over the
processes, RSS the largest of them (per replica, as the targets are), queue depth summed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controller.bench.sim_process import SimProcess
from controller.core.sharding import shard_of

LEASE_NS = "changelane-system"


def lane_names(lanes: int, shards: int, prefix: str = "bench-lane") -> list[str]:
    """``lanes`` names whose shards (of ``shards``) are spread as evenly as can be."""
    per: dict[int, list[str]] = {s: [] for s in range(shards)}
    want = -(-lanes // shards)
    i = 0
    while sum(len(v) for v in per.values()) < lanes:
        name = f"{prefix}-{i}"
        shard = shard_of(name, shards)
        if len(per[shard]) < want:
            per[shard].append(name)
        i += 1
    return sorted(n for names in per.values() for n in names)[:lanes]


class ProcessGroup:
    """The replicas as one process for ``_wait``: it has exited when any of them has."""

    def __init__(self, procs: list[subprocess.Popen[bytes]]) -> None:
        self.procs = procs
        self.pid = procs[0].pid

    def poll(self) -> int | None:
        for proc in self.procs:
            code = proc.poll()
            if code is not None:
                return code
        return None

    @property
    def returncode(self) -> int | None:
        return self.poll()


class ProbeGroup:
    """Several probes read as one: CPU and metrics summed, RSS the largest process's."""

    def __init__(self, probes: list[Any]) -> None:
        self.probes = probes

    @property
    def samples(self) -> list[Any]:
        first, *others = self.probes
        merged = []
        for sample in first.samples:
            same = [
                min(p.samples, key=lambda s: abs(s.at - sample.at), default=None) for p in others
            ]
            peers = [s for s in same if s is not None]
            merged.append(
                type(sample)(
                    sample.at,
                    max([sample.rss, *(s.rss for s in peers)]),
                    sample.cpu_s + sum(s.cpu_s for s in peers),
                    sample.queue + sum(s.queue for s in peers),
                )
            )
        return merged

    def rss(self) -> tuple[int, int]:
        both = [p.rss() for p in self.probes]
        return max(now for now, _ in both), max(peak for _, peak in both)

    def cpu_s(self) -> float:
        return float(sum(p.cpu_s() for p in self.probes))

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for probe in self.probes:
            for name, samples in probe.metrics().items():
                out.setdefault(name, []).extend(samples)
        return out

    def start(self) -> None:
        for probe in self.probes:
            probe.start()

    def stop(self) -> None:
        for probe in self.probes:
            probe.stop()


@contextmanager
def controller_processes(
    sim: SimProcess,
    prometheus_url: str,
    workdir: Path,
    lanes: list[str],
    replicas: int,
    ports: list[int],
    extra_args: list[str] | None = None,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``replicas`` ``changelane run`` processes; with more than one, sharded over
    ``replicas`` shard Leases (each with leader election, its own identity)."""
    sim.create("namespaces", [{"metadata": {"name": LEASE_NS}}])
    kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")
    flags = workdir / "flags.json"
    on = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}
    flags.write_text(json.dumps({"flags": {f"changelane.lane.{n}.autonomy": on for n in lanes}}))
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for i, port in enumerate(ports[:replicas]):
            election = (
                ["--no-leader-election"]
                if replicas == 1
                else ["--shards", str(replicas), "--namespace-lease", LEASE_NS]
            )
            log = (workdir / f"controller-{i}.log").open("wb")
            logs.append(log)
            command = [
                sys.executable, "-m", "controller", "run",
                "--kubeconfig", str(kubeconfig),
                *election,
                "--instance", f"bench-{i}",
                "--metrics-port", str(port), "--metrics-address", "127.0.0.1",
                "--prometheus-url", prometheus_url,
                "--flag-provider", "file", "--flag-file", str(flags),
                "--log-level", "warning",
                *(extra_args or []),
            ]  # fmt: skip
            procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
