"""Fault injection of the simulated cluster, from Python and through its admin endpoint."""

from __future__ import annotations

import json
import threading
import time

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from controller.sim.cluster import SimCluster
from tests.conformance.helpers import configmap, status_body


@pytest.fixture(autouse=True)
def _clear_faults(sim: SimCluster) -> object:
    yield None
    sim.faults.clear()


def test_error_share_answers_500_with_status(
    sim: SimCluster, core: client.CoreV1Api, namespace: str
) -> None:
    sim.faults.fail(500, share=1.0, verbs=["list"], path="/configmaps")
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(namespace)
    assert caught.value.status == 500
    assert status_body(caught.value)["reason"] == "InternalError"
    # other verbs and paths are untouched
    core.create_namespaced_config_map(namespace, configmap("ok"))
    core.list_namespaced_pod(namespace)


def test_partial_share_fails_some_requests_only(
    sim: SimCluster, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, configmap("x"))
    rule = sim.faults.fail(429, share=0.5, verbs=["get"])
    # raw HTTP without retries: urllib3 (under the official client) retries 429s that carry
    # Retry-After on its own
    http = urllib3.PoolManager()
    url = f"{sim.url}/api/v1/namespaces/{namespace}/configmaps/x"
    codes = []
    for _ in range(40):
        resp = http.request("GET", url, retries=False)
        codes.append(resp.status)
        if resp.status == 429:
            assert resp.headers.get("Retry-After") == "1"
            assert json.loads(resp.data)["reason"] == "TooManyRequests"
    assert set(codes) == {200, 429}
    assert 8 <= codes.count(429) <= 32
    assert rule.hits == codes.count(429)


def test_times_limits_a_rule(sim: SimCluster, core: client.CoreV1Api, namespace: str) -> None:
    sim.faults.fail(500, verbs=["list"], times=2)
    failures = 0
    for _ in range(4):
        try:
            core.list_namespaced_config_map(namespace)
        except ApiException:
            failures += 1
    assert failures == 2


def test_delay(sim: SimCluster, core: client.CoreV1Api, namespace: str) -> None:
    sim.faults.delay(0.3, verbs=["list"])
    started = time.monotonic()
    core.list_namespaced_config_map(namespace)
    assert time.monotonic() - started >= 0.3


def test_drop_watches_ends_open_streams(
    sim: SimCluster, core: client.CoreV1Api, namespace: str
) -> None:
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    ended = threading.Event()

    def consume() -> None:
        w = watch.Watch()
        # timeout_seconds disables the client's own reconnect, so the stream really ends
        for _ in w.stream(
            core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=30
        ):
            pass
        ended.set()

    before = sim.store.watcher_count()
    threading.Thread(target=consume, daemon=True).start()
    assert sim.wait_for(lambda: sim.store.watcher_count() > before, timeout=5)
    assert sim.faults.drop_watches() >= 1
    assert ended.wait(5), "the watch kept streaming after drop_watches"


def test_admin_endpoint_configures_faults(
    sim: SimCluster, core: client.CoreV1Api, namespace: str
) -> None:
    http = urllib3.PoolManager()
    resp = http.request(
        "POST",
        f"{sim.url}/_sim/faults",
        body=json.dumps({"kind": "error", "status": 503, "verbs": ["list"], "times": 1}),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 201
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(namespace)
    assert caught.value.status == 503
    snapshot = json.loads(http.request("GET", f"{sim.url}/_sim/faults").data)
    assert snapshot["rules"][0]["hits"] == 1
    assert http.request("DELETE", f"{sim.url}/_sim/faults").status == 200
    compacted = json.loads(http.request("POST", f"{sim.url}/_sim/compact").data)
    assert compacted["compactedResourceVersion"] == sim.store.resource_version
    bad = http.request("POST", f"{sim.url}/_sim/faults", body=b'{"kind": "explode"}')
    assert bad.status == 400


def test_watch_lifetime_ends_streams_periodically(
    sim: SimCluster, core: client.CoreV1Api, namespace: str
) -> None:
    sim.faults.watch_lifetime_seconds = 0.5
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    started = time.monotonic()
    for _ in watch.Watch().stream(
        core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=30
    ):
        pass
    assert time.monotonic() - started < 5
