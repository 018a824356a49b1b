"""The controller's /metrics, scraped over HTTP while it gates, rolls back and promotes
releases on the simulated cluster; a follower reports itself as not leading."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from controller.adapters.flags.lane_gates import LaneGates
from controller.adapters.kube.client import api_client
from controller.adapters.kube.connection import KubeConnection
from controller.core.gates import GateResult
from controller.core.models import ChangeLane
from controller.runtime.manager import Controller, Settings
from controller.runtime.metrics import serve_metrics
from tests.runtime.harness import NS, Env, ImageJudge, deployment_doc, running, wait
from tests.runtime.test_control import release_name

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Switch:
    """A kill switch a test flips."""

    def __init__(self, on: bool) -> None:
        self.on = threading.Event()
        if on:
            self.on.set()

    def check(
        self, lane: ChangeLane, *, namespace: str, workload: str, agent: str | None = None
    ) -> GateResult:
        on = self.on.is_set()
        return GateResult("killSwitch", on, "on (test)" if on else "off (test)")


def controller(env: Env, instance: str, switch: Switch) -> Controller:
    c = Controller(
        KubeConnection(api_client(str(env.kubeconfig))),
        gates=LaneGates(switch),
        analyzer=ImageJudge(),
        sinks=[env.sink],
        settings=Settings(
            instance=instance,
            lease_namespace=NS,
            lease_duration=4,
            renew_deadline=3,
            retry_period=1,
        ),
    )
    env.controllers.append(c)
    c.start()
    return c


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_follow_a_gated_then_rolled_back_release(tmp_path: Path) -> None:
    switch = Switch(on=False)
    with running(tmp_path, start=False) as env:
        leader = controller(env, "c-0", switch)
        server = serve_metrics(leader.metrics)
        try:
            wait(leader.is_leader)
            follower = controller(env, "c-1", switch)
            follower_server = serve_metrics(follower.metrics)
            try:
                wait(follower.ready)
                assert value(scrape(follower_server.port), "changelane_leader") == 0
            finally:
                follower_server.stop()

            env.sim.store.create("deployments", deployment_doc())
            wait(lambda: env.sim.deployment_ready(NS, "web-primary"))
            env.set_image("web:2-bad")
            bad = release_name(env)
            env.wait_phase(["Gated"], name=bad)
            lane = {"lane": "web-lane"}
            wait(
                lambda: value(scrape(server.port), "changelane_lane_autonomy_enabled", **lane) == 0
            )
            gated = {"gate": "killSwitch", **lane}
            # The status is written before the records are flushed: wait for the record.
            wait(
                lambda: value(scrape(server.port), "changelane_releases_gated_total", **gated) == 1
            )

            switch.on.set()  # autonomy on: the bad canary starts, fails its check, rolls back
            env.wait_phase(["RolledBack"], name=bad)
            wait(
                lambda: (
                    value(
                        scrape(server.port),
                        "changelane_releases_total",
                        outcome="RolledBack",
                        **lane,
                    )
                    == 1
                )
            )
            m = scrape(server.port)
            assert value(m, "changelane_leader") == 1
            assert value(m, "changelane_lane_autonomy_enabled", **lane) == 1
            assert value(m, "changelane_rollbacks_total", reason="analysis_failed", **lane) == 1
            # Onset (the step start) to the rollback decision: one, and quick.
            assert value(m, "changelane_regression_detection_seconds_count", **lane) == 1
            detection = value(m, "changelane_regression_detection_seconds_sum", **lane)
            assert detection is not None and 0 <= detection < 10
            check = {"lane": "web-lane", "check": "errors"}
            queries = value(m, "changelane_analysis_query_duration_seconds_count", **check)
            assert queries is not None and queries >= 1
            assert value(m, "changelane_analysis_query_errors_total", **check) is None
            for kind in ("Deployment", "LaneRelease", "ChangeLane"):
                count = value(m, "changelane_reconcile_duration_seconds_count", kind=kind)
                assert count is not None and count >= 1, kind
            assert value(m, "changelane_workqueue_depth") is not None
            assert value(m, "changelane_lane_change_failure_rate", **lane) == 1.0
            assert value(m, "changelane_lane_provenance_coverage", **lane) == 0.0  # no tests
            assert value(m, "changelane_lane_suspended", **lane) == 0
            assert value(m, "changelane_releases_gated_total", **gated) == 1  # once, not per look
        finally:
            server.stop()
