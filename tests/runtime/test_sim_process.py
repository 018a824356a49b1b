"""The simulated cluster in its own process, as the controller benches drive it: over
its HTTP API (the official client) and over the bench's pipe of named operations."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client, config

from controller.bench.controller_scale import deployment_doc
from controller.bench.sim_process import SimClusterError, SimProcess

NS = "bench"


def test_the_cluster_serves_http_and_answers_the_bench_from_its_own_process(
    tmp_path: Path,
) -> None:
    with SimProcess(ready_delay=0.1, emit_events=False) as sim:
        assert sim.pid is not None and sim.url.startswith("http://127.0.0.1:")
        sim.create("namespaces", [{"metadata": {"name": NS}}])
        assert sim.create("namespaces", [{"metadata": {"name": NS}}]) == 0  # exists: kept
        sim.create("deployments", [deployment_doc(0), deployment_doc(1)], namespace=NS)
        primary = deployment_doc(1)
        primary["metadata"]["name"] = "app-00001-primary"
        sim.create("deployments", [primary], namespace=NS)
        assert sim.call("count_primaries", NS) == 1
        assert sim.call("count_handed_over", NS) == 0

        sim.call("new_templates", NS, ["app-00000"], "registry.example/app:2", "0000000b")
        api = client.AppsV1Api(
            config.new_client_from_config(str(sim.write_kubeconfig(tmp_path / "kubeconfig")))
        )
        dep = api.read_namespaced_deployment("app-00000", NS)
        assert dep.spec.template.spec.containers[0].image == "registry.example/app:2"
        assert dep.metadata.generation == 2
        assert sim.call("release_names", NS) == [] and sim.call("analysis_times", NS) == {}

        with pytest.raises(SimClusterError, match=r"new_templates: .*app-99999"):
            sim.call("new_templates", NS, ["app-99999"], "x", "y")
        with pytest.raises(ValueError, match="operation 'drop_everything'"):
            sim.call("drop_everything")
        assert sim.call("count_primaries", NS) == 1  # still serving after an error
    with pytest.raises(SimClusterError, match="gone"):
        sim.call("count_primaries", NS)
