"""Object semantics: identity, resourceVersion, generation, status subresource, conflicts,
finalizers, and the Status errors bad input gets (with the store left unchanged)."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.conformance.helpers import (
    configmap,
    deployment,
    lane_release,
    raw_request,
    status_body,
    wait_until,
)


def test_create_assigns_identity_and_increasing_resource_versions(
    core: client.CoreV1Api, namespace: str
) -> None:
    first = core.create_namespaced_config_map(namespace, configmap("a", x="1"))
    second = core.create_namespaced_config_map(namespace, configmap("b", x="1"))
    assert first.metadata.uid and second.metadata.uid and first.metadata.uid != second.metadata.uid
    assert first.metadata.creation_timestamp is not None
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    updated = core.patch_namespaced_config_map("a", namespace, {"data": {"x": "2"}})
    assert int(updated.metadata.resource_version) > int(second.metadata.resource_version)
    listed = core.list_namespaced_config_map(namespace)
    assert int(listed.metadata.resource_version) >= int(updated.metadata.resource_version)


def test_create_twice_is_409_already_exists(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, configmap("dup"))
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(namespace, configmap("dup"))
    status = status_body(caught.value)
    assert caught.value.status == 409
    assert status["kind"] == "Status" and status["apiVersion"] == "v1"
    assert status["status"] == "Failure" and status["reason"] == "AlreadyExists"
    assert status["code"] == 409
    assert status["details"]["name"] == "dup" and status["details"]["kind"] == "configmaps"
    assert status["message"] == 'configmaps "dup" already exists'


def test_get_missing_is_404_not_found(apps: client.AppsV1Api, namespace: str) -> None:
    with pytest.raises(ApiException) as caught:
        apps.read_namespaced_deployment("nope", namespace)
    status = status_body(caught.value)
    assert caught.value.status == 404 and status["reason"] == "NotFound"
    assert status["message"] == 'deployments.apps "nope" not found'
    assert status["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


def test_put_with_stale_resource_version_is_409_conflict(
    core: client.CoreV1Api, namespace: str
) -> None:
    created = core.create_namespaced_config_map(namespace, configmap("cm", x="1"))
    core.patch_namespaced_config_map("cm", namespace, {"data": {"x": "2"}})
    stale = created.to_dict()
    body = {
        "metadata": {"name": "cm", "resourceVersion": created.metadata.resource_version},
        "data": {"x": "3"},
    }
    assert stale["metadata"]["resource_version"] == body["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("cm", namespace, body)
    status = status_body(caught.value)
    assert caught.value.status == 409 and status["reason"] == "Conflict"
    assert "the object has been modified" in status["message"]
    assert core.read_namespaced_config_map("cm", namespace).data == {"x": "2"}


def test_generation_bumps_on_spec_change_only(apps: client.AppsV1Api, namespace: str) -> None:
    created = apps.create_namespaced_deployment(namespace, deployment("gen"))
    assert created.metadata.generation == 1
    labelled = apps.patch_namespaced_deployment(
        "gen", namespace, {"metadata": {"labels": {"extra": "yes"}}}
    )
    assert labelled.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment("gen", namespace, {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2


def test_status_subresource_is_separate_from_spec(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    group, version, plural = "changelane.dev", "v1alpha1", "lanereleases"
    created = custom.create_namespaced_custom_object(
        group, version, namespace, plural, lane_release("rel", namespace)
    )
    assert "status" not in created or not created["status"].get("phase")
    # a status change through the main resource is ignored
    main = custom.patch_namespaced_custom_object(
        group, version, namespace, plural, "rel", {"status": {"phase": "Promoted"}}
    )
    assert (main.get("status") or {}).get("phase") != "Promoted"
    assert main["metadata"]["generation"] == 1
    # a spec change through /status is ignored; the status change lands without a new generation
    through_status = custom.patch_namespaced_custom_object_status(
        group,
        version,
        namespace,
        plural,
        "rel",
        {"spec": {"lane": "other-lane"}, "status": {"phase": "Progressing", "weight": 10}},
    )
    assert through_status["spec"]["lane"] == "docs-site"
    assert through_status["status"]["phase"] == "Progressing"
    assert through_status["metadata"]["generation"] == 1
    # and a spec change through the main resource bumps generation, status kept
    bumped = custom.patch_namespaced_custom_object(
        group, version, namespace, plural, "rel", {"spec": {"lane": "seo-metadata"}}
    )
    assert bumped["metadata"]["generation"] == 2
    assert bumped["status"]["phase"] == "Progressing"


def test_deployment_status_ignored_through_main_resource(
    apps: client.AppsV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("st", replicas=0))
    # Once the Deployment controller has written a status (it may not have right after create).
    wait_until(lambda: apps.read_namespaced_deployment("st", namespace).status is not None)
    current = apps.read_namespaced_deployment("st", namespace)
    body = current.to_dict()
    patched = apps.patch_namespaced_deployment(
        "st", namespace, {"status": {"observedGeneration": 99, "replicas": 42}}
    )
    assert patched.status.observed_generation != 99 and patched.status.replicas != 42
    assert body["metadata"]["uid"] == patched.metadata.uid


def test_delete_with_finalizer_marks_then_removes(core: client.CoreV1Api, namespace: str) -> None:
    body = configmap("fin")
    body["metadata"]["finalizers"] = ["changelane.dev/test"]
    core.create_namespaced_config_map(namespace, body)
    core.delete_namespaced_config_map("fin", namespace)
    marked = core.read_namespaced_config_map("fin", namespace)
    assert marked.metadata.deletion_timestamp is not None
    assert marked.metadata.finalizers == ["changelane.dev/test"]
    core.patch_namespaced_config_map("fin", namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("fin", namespace)
    assert caught.value.status == 404


# ---------------------------------------------------------------- bad input


def _configmaps_rv(core: client.CoreV1Api, namespace: str) -> list[tuple[str, str]]:
    return [
        (c.metadata.name, c.metadata.resource_version)
        for c in core.list_namespaced_config_map(namespace).items
    ]


def test_body_namespace_differing_from_url_is_400(core: client.CoreV1Api, namespace: str) -> None:
    body = configmap("ns-mismatch")
    body["metadata"]["namespace"] = "default"
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(namespace, body)
    assert caught.value.status == 400
    assert status_body(caught.value)["reason"] == "BadRequest"
    assert "namespace" in status_body(caught.value)["message"]
    assert _configmaps_rv(core, namespace) == []


def test_body_name_differing_from_url_is_400(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, configmap("right"))
    before = _configmaps_rv(core, namespace)
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("right", namespace, configmap("wrong"))
    assert caught.value.status == 400
    assert "does not match the name on the URL" in status_body(caught.value)["message"]
    assert _configmaps_rv(core, namespace) == before


def test_unknown_field_on_crd_is_rejected_naming_the_field(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    body = lane_release("unknown", namespace)
    body["spec"]["bogus"] = 1
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(
            "changelane.dev",
            "v1alpha1",
            namespace,
            "lanereleases",
            body,
            field_validation="Strict",
        )
    status = status_body(caught.value)
    assert caught.value.status == 400 and status["reason"] == "BadRequest"
    assert 'unknown field "spec.bogus"' in status["message"]
    listed = custom.list_namespaced_custom_object(
        "changelane.dev", "v1alpha1", namespace, "lanereleases"
    )
    assert listed["items"] == []


def test_schema_violation_on_crd_is_422_naming_the_field(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    body = lane_release("badlane", namespace)
    body["spec"]["lane"] = "Not_A_DNS_Label"
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(
            "changelane.dev", "v1alpha1", namespace, "lanereleases", body
        )
    status = status_body(caught.value)
    assert caught.value.status == 422 and status["reason"] == "Invalid"
    assert "spec.lane" in status["message"]
    assert any(c["field"] == "spec.lane" for c in status["details"]["causes"])


def test_invalid_label_selector_is_400(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(namespace, label_selector="a in (b")
    assert caught.value.status == 400
    assert status_body(caught.value)["reason"] == "BadRequest"


def test_unsupported_field_selector_is_400(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(namespace, field_selector="data.x=1")
    assert caught.value.status == 400
    assert "field label not supported" in status_body(caught.value)["message"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"metadata": {'),
        ("application/yaml", b"metadata: {name: [unclosed"),
        ("application/json", b'"just a string"'),
    ],
)
def test_malformed_bodies_are_400_and_change_nothing(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str, content_type: str, body: bytes
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    code, status = raw_request(api, "POST", path, body, content_type)
    assert code == 400
    assert status["kind"] == "Status" and status["reason"] == "BadRequest"
    assert _configmaps_rv(core, namespace) == []


def test_yaml_body_is_accepted(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    code, created = raw_request(
        api,
        "POST",
        path,
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\ndata: {k: v}\n",
        "application/yaml",
    )
    assert code == 201 and created["data"] == {"k": "v"}
    assert core.read_namespaced_config_map("y", namespace).data == {"k": "v"}


def test_invalid_name_is_422(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(namespace, configmap("Bad_Name"))
    status = status_body(caught.value)
    assert caught.value.status == 422 and status["reason"] == "Invalid"
    assert "metadata.name" in status["message"]


def test_create_in_missing_namespace_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("no-such-namespace-x", configmap("x"))
    assert caught.value.status == 404
    assert status_body(caught.value)["message"] == 'namespaces "no-such-namespace-x" not found'
