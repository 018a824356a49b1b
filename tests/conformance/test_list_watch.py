"""Lists (label and field selectors, paging) and watches (resume, bookmarks, timeout, 410)."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from controller.sim.cluster import SimCluster
from tests.conformance.helpers import configmap


def _names(items: list[client.V1ConfigMap]) -> list[str]:
    return sorted(i.metadata.name for i in items)


@pytest.fixture
def labelled(core: client.CoreV1Api, namespace: str) -> str:
    for name, labels in {
        "a": {"app": "web", "tier": "front"},
        "b": {"app": "web", "tier": "back"},
        "c": {"app": "db"},
        "d": {},
    }.items():
        core.create_namespaced_config_map(namespace, configmap(name, labels))
    return namespace


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web,tier=front", ["a"]),
        ("app!=web", ["c", "d"]),
        ("app in (web,db)", ["a", "b", "c"]),
        ("tier notin (front)", ["b", "c", "d"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c", "d"]),
        ("app=web,!tier", []),
    ],
)
def test_label_selectors(
    core: client.CoreV1Api, labelled: str, selector: str, expected: list[str]
) -> None:
    items = core.list_namespaced_config_map(labelled, label_selector=selector).items
    assert _names(items) == expected


def test_field_selectors_on_name_and_namespace(core: client.CoreV1Api, labelled: str) -> None:
    by_name = core.list_namespaced_config_map(labelled, field_selector="metadata.name=b").items
    assert _names(by_name) == ["b"]
    not_b = core.list_namespaced_config_map(labelled, field_selector="metadata.name!=b").items
    assert _names(not_b) == ["a", "c", "d"]
    across = core.list_config_map_for_all_namespaces(
        field_selector=f"metadata.namespace={labelled}"
    ).items
    assert _names(across) == ["a", "b", "c", "d"]


def test_limit_and_continue_page_through_everything(core: client.CoreV1Api, labelled: str) -> None:
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = core.list_namespaced_config_map(labelled, limit=3, _continue=token)
        seen.extend(i.metadata.name for i in page.items)
        pages += 1
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count is None or page.metadata.remaining_item_count > 0
    assert pages == 2
    assert sorted(seen) == ["a", "b", "c", "d"] and len(seen) == 4


def test_watch_from_resource_version_sees_only_later_events(
    core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, configmap("before"))
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, configmap("after"))
    core.patch_namespaced_config_map("after", namespace, {"data": {"k": "v"}})
    core.delete_namespaced_config_map("after", namespace)
    events = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=1
    ):
        events.append((event["type"], event["object"].metadata.name))
        if len(events) == 3:
            break
    assert events == [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")]


def test_watch_without_resource_version_starts_with_current_state(
    core: client.CoreV1Api, labelled: str
) -> None:
    events = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map, labelled, label_selector="app=web", timeout_seconds=1
    ):
        events.append((event["type"], event["object"].metadata.name))
        if len(events) == 2:
            break
    assert sorted(events) == [("ADDED", "a"), ("ADDED", "b")]


def test_watch_with_label_selector_filters_and_reports_leaving_as_deleted(
    core: client.CoreV1Api, labelled: str
) -> None:
    rv = core.list_namespaced_config_map(labelled).metadata.resource_version
    core.patch_namespaced_config_map("c", labelled, {"data": {"x": "1"}})  # not selected
    core.patch_namespaced_config_map("a", labelled, {"metadata": {"labels": {"app": "gone"}}})
    events = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map,
        labelled,
        label_selector="app=web",
        resource_version=rv,
        timeout_seconds=1,
    ):
        events.append((event["type"], event["object"].metadata.name))
        if events:
            break
    assert events == [("DELETED", "a")]


def test_watch_timeout_seconds_ends_the_stream(core: client.CoreV1Api, namespace: str) -> None:
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    finished = threading.Event()

    def consume() -> None:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=1
        ):
            pass
        finished.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    assert finished.wait(10), "a watch with timeoutSeconds=1 kept streaming"


def test_watch_bookmarks_carry_the_current_resource_version(
    sim: SimCluster, core: client.CoreV1Api, namespace: str
) -> None:
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=5,
    )
    for event in stream:
        assert event["type"] == "BOOKMARK"
        assert int(event["raw_object"]["metadata"]["resourceVersion"]) >= int(rv)
        break
    else:
        pytest.fail("no bookmark arrived")


def test_watch_from_compacted_resource_version_is_410(
    target_rv_too_old: str, core: client.CoreV1Api, namespace: str
) -> None:
    with pytest.raises(ApiException) as caught:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=target_rv_too_old,
            timeout_seconds=2,
        ):
            pass
    assert caught.value.status == 410


@pytest.fixture
def target_rv_too_old(
    core: client.CoreV1Api, namespace: str, request: pytest.FixtureRequest
) -> str:
    """A resourceVersion the cluster no longer has history for."""
    from tests.conformance.conftest import Target

    target: Target = request.getfixturevalue("target")
    core.create_namespaced_config_map(namespace, configmap("old"))
    if target.sim is not None:
        old = core.read_namespaced_config_map("old", namespace).metadata.resource_version
        core.patch_namespaced_config_map("old", namespace, {"data": {"k": "v"}})
        target.sim.faults.compact()
        return str(int(old) - 1)
    return "1"  # a real cluster compacts its early history within minutes of start
