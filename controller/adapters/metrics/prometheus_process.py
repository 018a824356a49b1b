"""A real Prometheus on loopback, and synthetic workloads for it to scrape.

A small library for the integration tests and the demo::

    with SyntheticWorkload(rps=100, error_ratio=0.01) as canary, \\
         PrometheusProcess(scrape_targets=[ScrapeTarget(canary.address, {"track": "canary"})],
                           scrape_interval="1s") as prom:
        ...  # prom.url, prom.queries_received()

Prometheus is Debian's binary (``/usr/bin/prometheus``); it starts on a free 127.0.0.1
port with a temporary config and storage directory, both removed on exit. The query log
is switched on so a test can assert on the exact query Prometheus received.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self
from wsgiref.simple_server import WSGIServer

import requests
import yaml
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

LOOPBACK = "127.0.0.1"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class PrometheusUnavailableError(RuntimeError):
    """The prometheus binary is missing or would not become ready."""


def prometheus_binary() -> str | None:
    """Path of the prometheus binary, or None when it is not installed."""
    found = shutil.which("prometheus")
    if found:
        return found
    return "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class ScrapeTarget:
    address: str  # host:port on loopback
    labels: dict[str, str] = field(default_factory=dict)
    job: str = "workload"


class PrometheusProcess:
    """A Prometheus server process; a context manager exposing ``url``."""

    def __init__(
        self,
        scrape_targets: Sequence[ScrapeTarget | str] = (),
        *,
        scrape_interval: str = "1s",
        binary: str | None = None,
        ready_timeout_s: float = 20.0,
        blocks: Path | None = None,
        retention: str = "1h",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.scrape_targets = [
            t if isinstance(t, ScrapeTarget) else ScrapeTarget(t) for t in scrape_targets
        ]
        self.scrape_interval = scrape_interval
        self.binary = binary or prometheus_binary()
        self.ready_timeout_s = ready_timeout_s
        # History to serve: TSDB blocks (e.g. from promtool tsdb create-blocks-from), copied
        # in before the first start; the retention must reach back to their timestamps.
        self.blocks = blocks
        self.retention = retention
        self.extra_args = tuple(extra_args)
        self.port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def query_log(self) -> Path:
        assert self._dir is not None, "not started"
        return self._dir / "queries.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _config(self) -> dict[str, object]:
        jobs: dict[str, list[dict[str, object]]] = {}
        for t in self.scrape_targets:
            jobs.setdefault(t.job, []).append({"targets": [t.address], "labels": t.labels})
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
                "query_log_file": str(self.query_log),
            },
            "scrape_configs": [
                {"job_name": job, "scrape_interval": self.scrape_interval, "static_configs": cfgs}
                for job, cfgs in jobs.items()
            ],
        }

    def start(self) -> Self:
        if self.binary is None:
            raise PrometheusUnavailableError("the prometheus binary is not installed")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="changelane-prometheus-"))
            (self._dir / "prometheus.yml").write_text(yaml.safe_dump(self._config()))
            if self.blocks is not None:
                shutil.copytree(self.blocks, self._dir / "data")
        self.port = free_port()
        log = (self._dir / "prometheus.log").open("ab")
        self._proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self._dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                f"--storage.tsdb.retention.time={self.retention}",
                "--log.level=warn",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise PrometheusUnavailableError(f"prometheus exited early: {self._log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise PrometheusUnavailableError(
            f"prometheus not ready after {self.ready_timeout_s}s: {self._log_tail()}"
        )

    def _log_tail(self) -> str:
        if self._dir is None:
            return ""
        path = self._dir / "prometheus.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        """Stop the server; data and config stay until the context exits (restartable)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None

    def close(self) -> None:
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def wait_for_samples(self, promql: str, timeout_s: float = 15.0, minimum: float = 0) -> float:
        """Block until ``promql`` returns one sample > ``minimum``; returns its value."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException, KeyError, ValueError):
                body = requests.get(
                    f"{self.url}/api/v1/query", params={"query": promql}, timeout=2
                ).json()
                result = body["data"]["result"]
                if result:
                    value = float(result[0]["value"][1])
                    if value > minimum:
                        return value
            time.sleep(0.2)
        raise TimeoutError(f"no sample > {minimum} for {promql} within {timeout_s}s")

    def queries_received(self) -> list[str]:
        """Every query Prometheus executed so far, from its query log."""
        if not self.query_log.exists():
            return []
        queries: list[str] = []
        for line in self.query_log.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError):
                queries.append(json.loads(line)["params"]["query"])
        return queries

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyntheticWorkload:
    """One track of a synthetic HTTP service: ``/metrics`` on a loopback port, with request
    rate, error ratio and latency that the caller controls while it runs.

    Requests are generated by a background thread every ``tick_s``, deterministically (an
    accumulator carries fractions over), so a test knows the exact ratios Prometheus sees.
    Metrics: ``http_requests_total{code}`` and ``http_request_duration_seconds``.
    """

    def __init__(
        self,
        *,
        rps: float = 50.0,
        error_ratio: float = 0.0,
        latency_s: float = 0.05,
        tick_s: float = 0.1,
    ) -> None:
        self.rps = rps
        self.error_ratio = error_ratio
        self.latency_s = latency_s
        self.tick_s = tick_s
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "http_requests", "Requests served.", ["code"], registry=self.registry
        )
        self._latency = Histogram(
            "http_request_duration_seconds",
            "Request latency.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: WSGIServer | None = None
        self._threads: list[threading.Thread] = []
        self._carry_requests = 0.0
        self._carry_errors = 0.0

    @property
    def address(self) -> str:
        assert self._server is not None, "not started"
        return f"{LOOPBACK}:{self._server.server_port}"

    def set(
        self,
        *,
        rps: float | None = None,
        error_ratio: float | None = None,
        latency_s: float | None = None,
    ) -> None:
        with self._lock:
            self.rps = self.rps if rps is None else rps
            self.error_ratio = self.error_ratio if error_ratio is None else error_ratio
            self.latency_s = self.latency_s if latency_s is None else latency_s

    def _tick(self) -> None:
        with self._lock:
            self._carry_requests += self.rps * self.tick_s
            n = math.floor(self._carry_requests)
            self._carry_requests -= n
            self._carry_errors += n * self.error_ratio
            errors = min(n, math.floor(self._carry_errors))
            self._carry_errors -= errors
            latency = self.latency_s
        if errors:
            self._requests.labels(code="500").inc(errors)
        if n - errors:
            self._requests.labels(code="200").inc(n - errors)
        for _ in range(n):
            self._latency.observe(latency)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            self._tick()

    def start(self) -> Self:
        server, thread = start_http_server(0, addr=LOOPBACK, registry=self.registry)
        self._server = server
        generator = threading.Thread(target=self._run, name="synthetic-workload", daemon=True)
        generator.start()
        self._threads = [thread, generator]
        return self

    def stop(self) -> None:
        """Stop serving: the target goes down and its series disappear from Prometheus."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
