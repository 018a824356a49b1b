"""Benchmark of the simulated cluster: request rates, list latency, watch fan-out, memory.

Clients and server share one process (and its GIL), so the rates are lower bounds of what
the server alone sustains. Memory is the resident-set growth while the store fills with
Deployments and the ReplicaSets the Deployment controller would create for them.
"""

from __future__ import annotations

import gc
import json
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import urllib3

from controller.core.formatting import Columns
from controller.sim.cluster import SimCluster
from controller.sim.deployments import HASH_LABEL, REVISION, pod_template_hash
from controller.sim.store import Store

JsonDict = dict[str, Any]

LIST_TARGET_MS = 100.0
MEMORY_TARGET_MIB = 500.0


@dataclass
class Result:
    name: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None


def _deployment(name: str, namespace: str) -> JsonDict:
    labels = {"app": name, "team": "bench"}
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels, "annotations": {"changelane.dev/agent": "bench"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.example/app:1.0.0",
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "env": [{"name": "MODE", "value": "bench"}],
                            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                        }
                    ]
                },
            },
        },
    }


def _replicaset_for(store: Store, namespace: str, name: str) -> None:
    """The ReplicaSet the Deployment controller would create, with a rolled-out status."""
    dep = store.get_obj("deployments", namespace, name)
    template = json.loads(json.dumps(dep["spec"]["template"]))
    pod_hash = pod_template_hash(template)
    template["metadata"]["labels"][HASH_LABEL] = pod_hash
    rs = {
        "metadata": {
            "name": f"{name}-{pod_hash}",
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
            "annotations": {REVISION: "1"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": name,
                    "uid": dep["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name, HASH_LABEL: pod_hash}},
            "template": template,
        },
    }
    created = store.create("replicasets", rs).obj()
    created["status"] = {
        "replicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "fullyLabeledReplicas": 2,
        "observedGeneration": 1,
    }
    store.update("replicasets", created, subresource="status")
    dep["status"] = {
        "observedGeneration": 1,
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
    }
    store.update("deployments", dep, subresource="status")


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise RuntimeError(f"benchmark request failed: {what}")


def _rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _fill(store: Store, namespace: str, count: int) -> None:
    store.create("namespaces", {"metadata": {"name": namespace}})
    for i in range(count):
        name = f"app-{i:05d}"
        store.create("deployments", _deployment(name, namespace))
        _replicaset_for(store, namespace, name)


def measure_memory(deployments: int) -> tuple[float, float]:
    """(MiB for ``deployments`` Deployments + ReplicaSets, MiB per 1,000 Deployments)."""
    gc.collect()
    before = _rss_mib()
    store = Store(history_limit=10_000)
    _fill(store, "memory", deployments)
    gc.collect()
    grown = _rss_mib() - before
    del store
    return grown, grown * 1000 / deployments


def _rate(fn: Any, seconds: float) -> float:
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        fn()
        count += 1
    return count / (time.perf_counter() - started)


def measure_http(sim: SimCluster, seconds: float, watchers: int, events: int) -> list[Result]:
    http = urllib3.PoolManager(maxsize=watchers + 4)
    base = f"{sim.url}/apis/apps/v1/namespaces/bench/deployments"
    results: list[Result] = []

    def get() -> None:
        resp = http.request("GET", f"{base}/app-00042", retries=False)
        _expect(resp.status == 200, "get")

    results.append(Result("get deployment", _rate(get, seconds), "req/s"))

    timings: list[float] = []

    def list_all() -> None:
        started = time.perf_counter()
        resp = http.request("GET", base, retries=False)
        timings.append((time.perf_counter() - started) * 1000)
        _expect(resp.status == 200 and resp.data.count(b'"uid":') == 1000, "list of 1,000")

    rate = _rate(list_all, seconds)
    results.append(Result("list 1,000 deployments", rate, "req/s"))
    median = statistics.median(timings)
    results.append(
        Result(
            "list 1,000 deployments, median",
            median,
            "ms",
            f"< {LIST_TARGET_MS:.0f} ms",
            median < LIST_TARGET_MS,
        )
    )

    counter = iter(range(10**9))

    def patch() -> None:
        body = json.dumps({"metadata": {"labels": {"rev": str(next(counter))}}}).encode()
        resp = http.request(
            "PATCH",
            f"{base}/app-00007",
            body=body,
            headers={"Content-Type": "application/merge-patch+json"},
            retries=False,
        )
        _expect(resp.status == 200, "patch")

    results.append(Result("merge patch deployment", _rate(patch, seconds), "req/s"))
    results.append(_fan_out(sim, watchers, events))
    return results


def _fan_out(sim: SimCluster, watchers: int, events: int) -> Result:
    """``watchers`` watch streams, ``events`` writes: events delivered per second."""
    store = sim.store
    store.create("namespaces", {"metadata": {"name": "fanout"}})
    store.create("configmaps", {"metadata": {"name": "c", "namespace": "fanout"}, "data": {}})
    rv = store.resource_version
    url = f"{sim.url}/api/v1/namespaces/fanout/configmaps?watch=1&resourceVersion={rv}"
    received = [0] * watchers
    done = threading.Barrier(watchers + 1)
    ready = threading.Barrier(watchers + 1)

    def watch(index: int) -> None:
        conn = urllib3.PoolManager().request(
            "GET", url, preload_content=False, retries=False, timeout=60
        )
        ready.wait()
        for line in conn.stream(65536):
            received[index] += line.count(b"\n")
            if received[index] >= events:
                break
        conn.release_conn()
        done.wait()

    threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(watchers)]
    for thread in threads:
        thread.start()
    ready.wait()
    time.sleep(0.2)
    started = time.perf_counter()
    for i in range(events):
        store.patch("configmaps", "fanout", "c", {"data": {"n": str(i)}})
    done.wait()
    elapsed = time.perf_counter() - started
    store.drop_watches()
    return Result(
        f"watch fan-out ({watchers} watchers x {events} events)",
        watchers * events / elapsed,
        "events/s",
    )


def run(
    *, seconds: float = 2.0, memory_deployments: int = 10_000, watchers: int = 50, events: int = 200
) -> list[Result]:
    results: list[Result] = []
    total, per_thousand = measure_memory(memory_deployments)
    with SimCluster(controllers=False) as sim:
        _fill(sim.store, "bench", 1000)
        results.extend(measure_http(sim, seconds, watchers, events))
    results.append(Result("memory per 1,000 Deployments (+ReplicaSets)", per_thousand, "MiB"))
    results.append(
        Result(
            f"memory for {memory_deployments:,} Deployments (+ReplicaSets)",
            total,
            "MiB",
            f"< {MEMORY_TARGET_MIB:.0f} MiB",
            total < MEMORY_TARGET_MIB,
        )
    )
    return results


def table(results: list[Result]) -> str:
    rows = [("measure", "value", "unit", "target", "met")]
    for r in results:
        met = "" if r.ok is None else ("yes" if r.ok else "NO")
        rows.append((r.name, f"{r.value:,.1f}", r.unit, r.target, met))
    columns = Columns(rows[0], rows[1:])
    lines = [columns.line(row) for row in rows]
    lines.insert(1, columns.rule())
    return "\n".join(lines)


def write_json(results: list[Result], path: Path) -> None:
    path.write_text(
        json.dumps({"benchmark": "sim-cluster", "results": [asdict(r) for r in results]}, indent=2)
        + "\n"
    )
