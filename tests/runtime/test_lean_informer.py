"""The controller's informer against the simulated cluster's HTTP API: relists in pages,
caches the transformed object, and a relist re-announces only objects that changed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.kube.api import KubeApi
from controller.adapters.kube.client import api_client
from controller.adapters.kube.lean_informer import LeanInformer, lean_deployment
from controller.sim.cluster import SimCluster

NS = "lean"


def _deployment(i: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"d{i:03d}",
            "namespace": NS,
            "labels": {"app": f"d{i}"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 4000 + "}",
                "keep": "me",
            },
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": f"d{i}"}},
            "template": {
                "metadata": {"labels": {"app": f"d{i}"}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            },
        },
    }


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[SimCluster, KubeApi]]:
    with SimCluster(ready_delay=0.05, emit_events=False) as cluster:
        cluster.store.create("namespaces", {"metadata": {"name": NS}})
        for i in range(25):
            cluster.store.create("deployments", _deployment(i), namespace=NS)
        api = KubeApi(api_client(str(cluster.write_kubeconfig(tmp_path / "kubeconfig"))))
        yield cluster, api


def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_relists_in_pages_transforms_and_announces_only_changes(
    sim: tuple[SimCluster, KubeApi],
) -> None:
    cluster, api = sim
    informer = LeanInformer(api.lister("Deployment"), transform=lean_deployment, page_size=4)
    seen: dict[str, list[str]] = {"ADDED": [], "MODIFIED": [], "DELETED": []}
    for kind, names in seen.items():
        informer.add_event_handler(kind, lambda obj, names=names: names.append(_name(obj)))
    with cluster.record_requests() as requests:
        informer._initial_list()
    lists = [r for r in requests if r.verb == "list"]
    assert len(lists) == 7  # 25 objects, 4 a page
    assert len(informer.cache.list()) == 25 and len(seen["ADDED"]) == 25

    cached = informer.cache.get_by_key(f"{NS}/d003")
    assert "managedFields" not in cached["metadata"]
    annotations = cached["metadata"]["annotations"]
    assert annotations["keep"] == "me"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations
    assert cached["spec"]["template"]["spec"]["containers"][0]["image"] == "app:1"
    _wait(lambda: cluster.deployment_ready(NS, "d003"))
    assert "conditions" in cluster.store.get_obj("deployments", NS, "d003")["status"]

    # Let the simulated controllers finish, then relist: only what changed is announced.
    _wait(lambda: all(cluster.deployment_ready(NS, f"d{i:03d}") for i in range(25)))
    time.sleep(0.2)
    informer._initial_list()
    seen["MODIFIED"].clear()
    dep = cluster.store.get_obj("deployments", NS, "d007")
    dep["spec"]["replicas"] = 2
    cluster.store.update("deployments", dep, namespace=NS, name="d007")
    cluster.store.delete("deployments", NS, "d010")
    informer._initial_list()
    assert "d007" in seen["MODIFIED"] and "d003" not in seen["MODIFIED"]
    assert seen["DELETED"] == ["d010"]
    after = informer.cache.get_by_key(f"{NS}/d007")
    assert set(after["status"]) <= {
        "replicas",
        "readyReplicas",
        "updatedReplicas",
        "availableReplicas",
        "observedGeneration",
    }


def test_watch_events_are_cached_transformed(sim: tuple[SimCluster, KubeApi]) -> None:
    cluster, api = sim
    informer = LeanInformer(api.lister("Deployment"), transform=lean_deployment, page_size=10)
    informer.start()
    try:
        _wait(lambda: len(informer.cache.list()) == 25)
        cluster.store.create("deployments", _deployment(99), namespace=NS)
        _wait(lambda: informer.cache.get_by_key(f"{NS}/d099") is not None)
        cached = informer.cache.get_by_key(f"{NS}/d099")
        assert "managedFields" not in cached["metadata"]
        assert (
            "kubectl.kubernetes.io/last-applied-configuration"
            not in (cached["metadata"]["annotations"])
        )
    finally:
        informer.stop()


def _rolled_out(dep: Any) -> bool:
    status = dep.get("status") or {}
    return bool(status.get("readyReplicas") == dep["spec"]["replicas"] == status.get("replicas"))


def _name(obj: Any) -> str:
    return str(obj["metadata"]["name"])


def test_a_dropped_watch_resumes_where_it_was_not_from_the_list(
    sim: tuple[SimCluster, KubeApi],
) -> None:
    """The client's Watch never advances its resourceVersion when it hands dicts over (no
    model to deserialise into): every reconnect resumed from the *list's* resourceVersion
    and replayed every change since, putting old copies back in the cache."""
    cluster, api = sim
    informer = LeanInformer(api.lister("Deployment"), transform=lean_deployment)
    modified: list[int] = []  # resourceVersions, in the order delivered
    informer.add_event_handler(
        "MODIFIED", lambda obj: modified.append(int(obj["metadata"]["resourceVersion"]))
    )
    informer.start()
    try:
        _wait(lambda: informer._watch is not None and len(informer.cache.list()) == 25)
        listed_at = informer._resource_version
        for replicas in (2, 3):
            cluster.store.patch("deployments", NS, "d001", {"spec": {"replicas": replicas}})
        _wait(lambda: informer.cache.get_by_key(f"{NS}/d001")["spec"]["replicas"] == 3)
        seen = len(modified)
        newest = max(modified)
        assert cluster.faults.drop_watches() >= 1
        cluster.store.patch("deployments", NS, "d002", {"spec": {"replicas": 4}})
        _wait(lambda: informer.cache.get_by_key(f"{NS}/d002")["spec"]["replicas"] == 4)
        assert [rv for rv in modified[seen:] if rv <= newest] == []  # no replay
        assert informer.cache.get_by_key(f"{NS}/d001")["spec"]["replicas"] == 3
        assert int(informer._watch.resource_version) > int(listed_at)
    finally:
        informer.stop()


def test_an_event_that_changed_nothing_cached_wakes_nobody(
    sim: tuple[SimCluster, KubeApi],
) -> None:
    cluster, api = sim
    informer = LeanInformer(api.lister("Deployment"), transform=lean_deployment)
    modified: list[str] = []
    informer.add_event_handler("MODIFIED", lambda obj: modified.append(_name(obj)))
    informer.start()
    try:
        _wait(lambda: informer._watch is not None and len(informer.cache.list()) == 25)
        _wait(lambda: all(_rolled_out(d) for d in informer.cache.list()))
        time.sleep(0.3)  # the simulated Deployment controller's last status writes
        del modified[:]
        # Only a condition (dropped by the transform) changes: the cache takes the new
        # resourceVersion, no handler runs.
        condition = {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
        stored = cluster.store.patch(
            "deployments", NS, "d003", {"status": {"conditions": [condition]}},
            subresource="status",
        )  # fmt: skip
        _wait(
            lambda: (
                int(informer.cache.get_by_key(f"{NS}/d003")["metadata"]["resourceVersion"])
                >= stored.rv
            )
        )
        cluster.store.patch("deployments", NS, "d004", {"spec": {"replicas": 5}})
        _wait(lambda: "d004" in modified)
        assert "d003" not in modified
    finally:
        informer.stop()
