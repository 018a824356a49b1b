"""The official client's higher-level machinery: informers, watches of custom objects,
Lease-based leader election, events.k8s.io events."""

from __future__ import annotations

import threading
import uuid

from kubernetes import client, config, watch
from kubernetes.informer import SharedInformer
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from tests.conformance.conftest import Target
from tests.conformance.helpers import configmap, lane_release, wait_until


def test_shared_informer_tracks_adds_updates_and_deletes(
    core: client.CoreV1Api, namespace: str
) -> None:
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(kind: str) -> object:
        def handler(obj: client.V1ConfigMap) -> None:
            with lock:
                seen.append((kind, obj.metadata.name))

        return handler

    core.create_namespaced_config_map(namespace, configmap("existing"))
    informer = SharedInformer(core.list_namespaced_config_map, namespace=namespace)
    for kind in ("ADDED", "MODIFIED", "DELETED"):
        informer.add_event_handler(kind, record(kind))
    informer.start()
    try:
        wait_until(lambda: ("ADDED", "existing") in seen)
        core.create_namespaced_config_map(namespace, configmap("new"))
        core.patch_namespaced_config_map("new", namespace, {"data": {"a": "1"}})
        core.delete_namespaced_config_map("existing", namespace)
        wait_until(lambda: ("DELETED", "existing") in seen and ("MODIFIED", "new") in seen)
        cached = sorted(o.metadata.name for o in informer.cache.list())
        assert cached == ["new"]
    finally:
        informer.stop()


def test_watch_custom_objects(custom: client.CustomObjectsApi, namespace: str) -> None:
    args = ("changelane.dev", "v1alpha1", namespace, "lanereleases")
    rv = custom.list_namespaced_custom_object(*args)["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object(*args, lane_release("w", namespace))
    for event in watch.Watch().stream(
        custom.list_namespaced_custom_object, *args, resource_version=rv, timeout_seconds=2
    ):
        assert event["type"] == "ADDED"
        assert event["object"]["metadata"]["name"] == "w"
        break
    else:
        raise AssertionError("no event for the new LaneRelease")


def test_lease_lock_leader_election(target: Target, namespace: str) -> None:
    # LeaseLock builds its own CoordinationV1Api from the default configuration
    config.load_kube_config(config_file=str(target.kubeconfig))
    identity = f"candidate-{uuid.uuid4().hex[:6]}"
    leading = threading.Event()
    lock = LeaseLock("changelane-leader", namespace, identity)
    election = leaderelection.LeaderElection(
        electionconfig.Config(
            lock,
            lease_duration=4,
            renew_deadline=3,
            retry_period=1,
            onstarted_leading=leading.set,
            onstopped_leading=lambda: None,
        )
    )
    # it renews until the namespace (and so the Lease) goes away at teardown
    threading.Thread(target=election.run, daemon=True).start()
    assert leading.wait(15), "never became leader"
    lease = client.CoordinationV1Api().read_namespaced_lease("changelane-leader", namespace)
    assert lease.spec.holder_identity == identity
    assert lease.spec.lease_duration_seconds == 4


def test_events_v1_and_core_v1_share_storage(api: client.ApiClient, namespace: str) -> None:
    events_v1 = client.EventsV1Api(api)
    core = client.CoreV1Api(api)
    created = events_v1.create_namespaced_event(
        namespace,
        {
            "metadata": {"name": "rel.1"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "changelane.dev/controller",
            "reportingInstance": "controller-0",
            "action": "Promote",
            "reason": "Promoted",
            "note": "canary promoted",
            "type": "Normal",
            "regarding": {"kind": "ConfigMap", "name": "x", "namespace": namespace},
        },
    )
    assert created.note == "canary promoted"
    as_core = core.read_namespaced_event("rel.1", namespace)
    assert as_core.message == "canary promoted"
    assert as_core.involved_object.name == "x"
    listed = core.list_namespaced_event(namespace, field_selector="involvedObject.name=x")
    assert [e.metadata.name for e in listed.items] == ["rel.1"]
