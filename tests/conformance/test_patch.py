"""Merge, JSON and strategic-merge patches, and patches that do not apply."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.conformance.helpers import configmap, deployment, lane_release, status_body


def _containers(apps: client.AppsV1Api, namespace: str, name: str) -> list[dict[str, object]]:
    dep = apps.read_namespaced_deployment(name, namespace)
    return [c.to_dict() for c in dep.spec.template.spec.containers]


@pytest.fixture
def web(apps: client.AppsV1Api, namespace: str) -> str:
    body = deployment("web", replicas=0)
    body["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox:1"})
    apps.create_namespaced_deployment(namespace, body)
    return namespace


def test_json_merge_patch_merges_maps_and_null_deletes(
    core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, configmap("m", a="1", b="2"))
    patched = core.patch_namespaced_config_map(
        "m",
        namespace,
        {"data": {"b": None, "c": "3"}},
        _content_type="application/merge-patch+json",
    )
    assert patched.data == {"a": "1", "c": "3"}


def test_json_patch_including_test(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, configmap("j", a="1"))
    patched = core.patch_namespaced_config_map(
        "j",
        namespace,
        [
            {"op": "test", "path": "/data/a", "value": "1"},
            {"op": "add", "path": "/data/b", "value": "2"},
            {"op": "remove", "path": "/data/a"},
        ],
    )
    assert patched.data == {"b": "2"}


def test_json_patch_whose_test_fails_is_422_and_changes_nothing(
    core: client.CoreV1Api, namespace: str
) -> None:
    created = core.create_namespaced_config_map(namespace, configmap("t", a="1"))
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map(
            "t",
            namespace,
            [
                {"op": "test", "path": "/data/a", "value": "2"},
                {"op": "replace", "path": "/data/a", "value": "3"},
            ],
        )
    assert caught.value.status == 422
    assert status_body(caught.value)["kind"] == "Status"
    after = core.read_namespaced_config_map("t", namespace)
    assert after.data == {"a": "1"}
    assert after.metadata.resource_version == created.metadata.resource_version


def test_json_patch_on_missing_path_is_422(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, configmap("p", a="1"))
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map(
            "p", namespace, [{"op": "replace", "path": "/data/missing/deeper", "value": "x"}]
        )
    assert caught.value.status == 422


def test_strategic_merge_patch_merges_containers_and_env_by_name(
    apps: client.AppsV1Api, web: str
) -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginx:1.26",
                            "env": [{"name": "EXTRA", "value": "1"}],
                            "ports": [{"containerPort": 80, "name": "http"}],
                        }
                    ]
                }
            }
        }
    }
    apps.patch_namespaced_deployment("web", web, patch)  # the client sends strategic merge
    containers = {c["name"]: c for c in _containers(apps, web, "web")}
    assert set(containers) == {"app", "side"}
    assert containers["app"]["image"] == "nginx:1.26"
    assert [e["name"] for e in containers["app"]["env"]] == ["MODE", "EXTRA"]
    assert [(p["container_port"], p["name"]) for p in containers["app"]["ports"]] == [(80, "http")]
    assert containers["side"]["image"] == "busybox:1"


def test_strategic_merge_patch_delete_and_replace_directives(
    apps: client.AppsV1Api, web: str
) -> None:
    apps.patch_namespaced_deployment(
        "web",
        web,
        {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}},
    )
    assert [c["name"] for c in _containers(apps, web, "web")] == ["app"]
    apps.patch_namespaced_deployment(
        "web",
        web,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "env": [{"name": "ONLY", "value": "x"}, {"$patch": "replace"}],
                            }
                        ]
                    }
                }
            }
        },
    )
    (app,) = _containers(apps, web, "web")
    assert [e["name"] for e in app["env"]] == ["ONLY"]
    assert app["image"] == "nginx:1.25"


def test_strategic_merge_patch_on_custom_resource_is_415(
    api: client.ApiClient, custom: client.CustomObjectsApi, namespace: str
) -> None:
    custom.create_namespaced_custom_object(
        "changelane.dev", "v1alpha1", namespace, "lanereleases", lane_release("r", namespace)
    )
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            "changelane.dev",
            "v1alpha1",
            namespace,
            "lanereleases",
            "r",
            {"spec": {"lane": "seo-metadata"}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert caught.value.status == 415


def test_patch_with_stale_resource_version_is_409(core: client.CoreV1Api, namespace: str) -> None:
    created = core.create_namespaced_config_map(namespace, configmap("s", a="1"))
    core.patch_namespaced_config_map("s", namespace, {"data": {"a": "2"}})
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map(
            "s",
            namespace,
            {
                "metadata": {"resourceVersion": created.metadata.resource_version},
                "data": {"a": "3"},
            },
        )
    assert caught.value.status == 409
    assert core.read_namespaced_config_map("s", namespace).data == {"a": "2"}
