"""A simulated web workload whose traffic and errors depend on which release serves it.

Every tick it reads the workload's Ready pods through the Kubernetes API (the simulated
cluster's, in the demo), spreads the tick's requests over them uniformly (so traffic is
replica-weighted, as behind a Service) and counts each request's outcome by *track*:
``baseline`` for the primary's pods, ``canary`` for the canary's. An image whose tag says
``bad`` fails a quarter of its requests; others fail half a percent. The counters are
exposed on ``/metrics`` in the Prometheus format (prometheus_client), which a real
Prometheus scrapes, and kept in memory for the embedded metrics source.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from controller.adapters.kube.api import KubeApi
from controller.core.canary import TRACK_LABEL

log = structlog.get_logger("changelane.demo.workload")


@dataclass(frozen=True)
class Behaviour:
    error_rate: float
    latency_s: float


def default_behaviour(image: str) -> Behaviour:
    if "bad" in image.rsplit(":", 1)[-1]:
        return Behaviour(error_rate=0.25, latency_s=0.180)
    return Behaviour(error_rate=0.005, latency_s=0.060)


@dataclass
class Totals:
    """Cumulative counts per track, sampled over time for the embedded metrics source."""

    requests: dict[str, float] = field(default_factory=lambda: {"canary": 0.0, "baseline": 0.0})
    errors: dict[str, float] = field(default_factory=lambda: {"canary": 0.0, "baseline": 0.0})
    history: list[tuple[float, dict[str, float], dict[str, float]]] = field(default_factory=list)


class SimulatedWorkload:
    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        app: str,
        rps: float = 40.0,
        behaviour: Callable[[str], Behaviour] = default_behaviour,
        tick_s: float = 0.25,
        seed: int = 7,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.app = app
        self.rps = rps
        self.behaviour = behaviour
        self.tick_s = tick_s
        self.random = random.Random(seed)  # noqa: S311 (simulated traffic, not security)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "Requests served.",
            ["namespace", "app", "track", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Request latency.",
            ["namespace", "app", "track"],
            buckets=(0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6),
            registry=self.registry,
        )
        self.totals = Totals()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self.port: int | None = None

    # ---- serving
    def serve_metrics(self, port: int = 0) -> int:
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self._server = server
        self.port = int(server.server_address[1])
        return self.port

    def start(self) -> None:
        # Every series exists from the start, so "no data" only ever means a real gap.
        for track in ("canary", "baseline"):
            for code in ("200", "500"):
                self.requests.labels(self.namespace, self.app, track, code)
        self._thread = threading.Thread(target=self._run, name="workload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ---- traffic
    def ready_pods(self) -> list[tuple[str, str]]:
        """(track, image) of every Ready pod of the workload."""
        out = []
        for pod in self.api.list_pods(self.namespace, f"app={self.app}"):
            conditions = (pod.get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                continue
            labels = (pod.get("metadata") or {}).get("labels") or {}
            track = "baseline" if labels.get(TRACK_LABEL) == "primary" else "canary"
            containers = (pod.get("spec") or {}).get("containers") or [{}]
            out.append((track, str(containers[0].get("image", ""))))
        return out

    def _run(self) -> None:
        carry = 0.0
        while not self._stop.wait(self.tick_s):
            try:
                pods = self.ready_pods()
            except Exception as exc:  # the API hiccuped; the next tick tries again
                log.debug("workload could not list pods", error=str(exc))
                continue
            carry += self.rps * self.tick_s
            n, carry = int(carry), carry - int(carry)
            if pods:
                self._serve(pods, n)
            with self._lock:
                self.totals.history.append(
                    (time.time(), dict(self.totals.requests), dict(self.totals.errors))
                )
                del self.totals.history[:-4000]

    def _serve(self, pods: list[tuple[str, str]], n: int) -> None:
        for _ in range(n):
            track, image = pods[self.random.randrange(len(pods))]
            b = self.behaviour(image)
            failed = self.random.random() < b.error_rate
            latency = self.random.lognormvariate(0, 0.35) * b.latency_s
            self.requests.labels(self.namespace, self.app, track, "500" if failed else "200").inc()
            self.latency.labels(self.namespace, self.app, track).observe(latency)
            with self._lock:
                self.totals.requests[track] += 1
                self.totals.errors[track] += 1 if failed else 0

    def counts_since(self, since: float) -> dict[str, tuple[float, float]]:
        """(errors, requests) per track between ``since`` and now, from the history."""
        with self._lock:
            history = list(self.totals.history)
            now_req, now_err = dict(self.totals.requests), dict(self.totals.errors)
        base_req = {"canary": 0.0, "baseline": 0.0}
        base_err = {"canary": 0.0, "baseline": 0.0}
        for at, req, err in history:
            if at <= since:
                base_req, base_err = req, err
            else:
                break
        return {
            t: (now_err[t] - base_err[t], now_req[t] - base_req[t]) for t in ("canary", "baseline")
        }
