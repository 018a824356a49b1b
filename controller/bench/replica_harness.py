"""What the fencing and sharding benches share: replicas of ``fencing_replica`` against a
simulated cluster that records every request and every commit of the Leases, the lane and
Deployment they ship, and the rule that tells a Lease takeover from a late write.

Both benches judge one claim, "a replica that does not hold the Lease never writes", from
the same evidence: the API's arrival time and user of every request, and every commit of a
Lease with its holder. ``fencing`` has one leader Lease and two replicas; ``sharding`` has
one Lease per shard and three or four replicas.
"""

from __future__ import annotations

import bisect
import json
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.sim.cluster import SimCluster
from controller.sim.request_audit import ApiRequest
from controller.sim.store import StoreEvent

JsonDict = dict[str, Any]
Commits = list[tuple[float, str | None]]
Requests = list[tuple[float, ApiRequest]]

LEASE_NS = "changelane-system"
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 4, 3, 1
MUTATING = frozenset({"create", "update", "patch", "delete", "deletecollection"})
BENCH_AGENT = {
    "changelane.dev/agent": "claude-code",
    "changelane.dev/model": "claude-opus-4",
    "changelane.dev/change": "abc1234",
}


def user_of(replica: str) -> str:
    return f"system:serviceaccount:{LEASE_NS}:{replica}"


class Recorder:
    """Arrival time and user of every API request; every commit of the Leases
    ``tracks`` names, with its holder."""

    def __init__(self, tracks: Callable[[str], bool]) -> None:
        self._tracks = tracks
        self._lock = threading.Lock()
        self.requests: Requests = []
        self.leases: dict[str, Commits] = defaultdict(list)

    def on_request(self, request: ApiRequest) -> None:
        with self._lock:
            self.requests.append((time.monotonic(), request))

    def on_commit(self, event: StoreEvent) -> None:
        if event.type_key.split(".")[0] != "leases" or not self._tracks(event.obj.name):
            return
        spec = json.loads(event.obj.raw).get("spec") or {}
        with self._lock:
            self.leases[event.obj.name].append(
                (time.monotonic(), spec.get("holderIdentity") or None)
            )

    def snapshot(self) -> tuple[Requests, dict[str, Commits]]:
        with self._lock:
            return list(self.requests), {k: list(v) for k, v in self.leases.items()}


def holder_at(commits: Commits, t: float) -> tuple[str | None, float]:
    """The Lease's holder at ``t`` and when the Lease was last written before it."""
    i = bisect.bisect_right([at for at, _ in commits], t)
    return (commits[i - 1][1], commits[i - 1][0]) if i else (None, 0.0)


def is_takeover(replica: str, lease: str, at: float, requests: Requests, commits: Commits) -> bool:
    """Was ``replica``'s write of ``lease`` at ``at`` decided on a read that showed an
    expired Lease?

    A follower writes the Lease only after its last read showed a record unchanged for a
    lease duration; the holder may still renew between that read and the write (the
    compare-and-swap then refuses the write). A renewal by a replica that lost the Lease
    shows up as a write whose last read showed a live Lease or its own."""
    reads = [
        t
        for t, r in requests
        if t < at
        and r.user == user_of(replica)
        and r.resource == "leases"
        and r.name == lease
        and r.verb == "get"
    ]
    if not reads:
        return False
    seen, written = holder_at(commits, reads[-1])
    # The read's arrival, not its answer: allow for the time it took to be served.
    return seen != replica and reads[-1] - written >= LEASE_DURATION - 0.5


def appended(workdir: Path, replica: str) -> list[list[str]]:
    """The replica's audit appends: ``time id [lease]`` per line, split."""
    stamps = workdir / f"{replica}.audit.jsonl.appends"
    lines = stamps.read_text().split("\n") if stamps.exists() else []
    return [line.split(" ") for line in lines if line]


def lane_doc(name: str, selector: JsonDict, step_s: int, deadline_s: int) -> JsonDict:
    """A lane of two short steps with a one-second analysis tick, five releases at once."""
    return {
        "apiVersion": "changelane.dev/v1alpha1",
        "kind": "ChangeLane",
        "metadata": {"name": name},
        "spec": {
            "selector": selector,
            "agents": [{"id": "claude-code"}],
            "provenance": {"required": ["agent", "model", "change"]},
            "strategy": {
                "steps": [
                    {"weight": 50, "minDuration": f"{step_s}s"},
                    {"weight": 100, "minDuration": f"{step_s}s"},
                ],
                "progressDeadline": f"{deadline_s}s",
            },
            "gates": {
                "maxConcurrentReleases": 5,
                "maxReleasesPerDay": 10000,
                "autonomyBudget": {"maxChangeFailureRate": 1.0},
            },
            "analysis": {
                "interval": "1s",
                "checks": [
                    {"name": "errors", "kind": "threshold", "query": "x", "threshold": 0.05}
                ],
            },
        },
    }


def deployment_doc(
    name: str, namespace: str, labels: dict[str, str], image: str, annotations: dict[str, str]
) -> JsonDict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


class ReplicaHarness:
    """The simulated cluster (recording), the ``fencing_replica`` processes and the
    background threads of one bench run."""

    def __init__(
        self, workdir: Path, seed: int, tracks: Callable[[str], bool], poll: float = 0.05
    ) -> None:
        self.workdir = workdir
        self.poll = poll
        self.sim = SimCluster(ready_delay=0.2, fault_seed=seed)
        self.recorder = Recorder(tracks)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start_cluster(self, namespaces: list[str], objects: list[tuple[str, JsonDict]]) -> None:
        """Start the cluster with ``namespaces`` and ``objects`` (resource, body), then
        record from here on."""
        sim = self.sim.start()
        for ns in namespaces:
            sim.store.create(
                "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            )
        for resource, body in objects:
            sim.store.create(resource, body)
        sim.add_request_hook(self.recorder.on_request)
        sim.store.add_listener(self.recorder.on_commit)

    def launch(self, replica: str, extra_args: list[str] | None = None) -> None:
        """A ``fencing_replica`` with its own token, kubeconfig, log and audit log."""
        self.sim.add_user(user_of(replica))
        kubeconfig = self.sim.write_kubeconfig(
            self.workdir / f"{replica}.kubeconfig", user=user_of(replica)
        )
        log = (self.workdir / f"{replica}.log").open("wb")
        self._logs.append(log)
        self.procs[replica] = subprocess.Popen(
            [
                sys.executable, "-m", "controller.bench.fencing_replica",
                "--kubeconfig", str(kubeconfig),
                "--instance", replica,
                "--audit-log", str(self.workdir / f"{replica}.audit.jsonl"),
                "--lease-namespace", LEASE_NS,
                "--lease-duration", str(LEASE_DURATION),
                "--renew-deadline", str(RENEW_DEADLINE),
                "--retry-period", str(RETRY_PERIOD),
                *(extra_args or []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def in_background(self, loop: Callable[[], None]) -> None:
        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        self._threads.append(thread)

    def every(self, seconds: float) -> bool:
        """For a background loop: wait ``seconds``; False once the run is stopping."""
        return not self._stop.wait(seconds)

    def ship(self, namespace: str, name: str, image: str, provenance: dict[str, str]) -> None:
        """A new pod template (a release), as a pipeline pushes one; a conflict with the
        controller is the next one's problem."""
        try:
            dep = self.sim.store.get_obj("deployments", namespace, name)
            template = dep["spec"]["template"]
            template["spec"]["containers"][0]["image"] = image
            template["metadata"]["annotations"].update(provenance)
            self.sim.store.update("deployments", dep, namespace=namespace, name=name)
        except Exception:  # noqa: S110 (a conflict with the controller: the next one)
            pass

    def wait(self, predicate: Any, timeout: float, what: str) -> float:
        """When ``predicate`` became true (polled every ``poll`` s); else TimeoutError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return time.monotonic()
            time.sleep(self.poll)
        raise TimeoutError(f"timed out waiting for: {what}")

    def next_lease_update(self, replica: str, lease: str, after: float) -> float:
        """When ``replica``'s first update of ``lease`` after ``after`` reached the API."""

        def sent() -> float | None:
            requests, _ = self.recorder.snapshot()
            for at, req in reversed(requests):
                if at <= after:
                    return None
                if req.user == user_of(replica) and req.name == lease and req.verb == "update":
                    return at
            return None

        self.wait(lambda: sent() is not None, 10 * LEASE_DURATION, f"{replica} renews {lease}")
        return sent() or after

    def stop(self) -> None:
        """Stop the threads, wake and stop every replica (a frozen one too), then the cluster."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()
        self.sim.stop()
