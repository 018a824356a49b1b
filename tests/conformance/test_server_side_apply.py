"""Server-side apply as the API server does it: managedFields per field manager, the 409
that lists the conflicting fields, co-ownership of equal values, --force-conflicts, fields
an applier stops stating being removed, and `kubectl diff --server-side`."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.conformance.conftest import Kubectl
from tests.conformance.helpers import wait_until

APPLY = "application/apply-patch+yaml"


def manifest(namespace: str, image: str = "web:1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": image, "ports": [{"containerPort": 8080}]}
                    ]
                },
            },
            **spec,
        },
    }


def apply(
    api: client.ApiClient, body: dict[str, Any], manager: str, force: bool = False
) -> dict[str, Any]:
    """PATCH application/apply-patch+yaml, as an applier (Argo CD, Flux) sends it."""
    meta = body["metadata"]
    applied = client.AppsV1Api(api).patch_namespaced_deployment(
        meta["name"],
        meta["namespace"],
        body,
        field_manager=manager,
        force=force or None,
        _content_type=APPLY,
    )
    return api.sanitize_for_serialization(applied)  # type: ignore[no-any-return]


def managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (e["manager"], e["operation"]): e["fieldsV1"]
        for e in obj["metadata"].get("managedFields") or []
    }


def test_apply_creates_and_records_what_the_applier_stated(
    api: client.ApiClient, namespace: str
) -> None:
    created = apply(api, manifest(namespace), "git")
    owned = managers(created)[("git", "Apply")]
    container = owned["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"app"}']
    assert "." in container and "f:image" in container
    assert 'k:{"containerPort":8080,"protocol":"TCP"}' in container["f:ports"]
    # defaulted fields are nobody's: the applier did not state them
    assert "f:replicas" not in owned["f:spec"]
    assert "f:strategy" not in owned["f:spec"]
    assert "f:status" not in owned


def test_a_changed_field_owned_by_another_manager_is_a_409_naming_it(
    api: client.ApiClient, apps: client.AppsV1Api, namespace: str
) -> None:
    apply(api, manifest(namespace, replicas=2), "git")
    apps.patch_namespaced_deployment(
        "web", namespace, {"spec": {"replicas": 0}}, field_manager="changelane"
    )
    with pytest.raises(ApiException) as caught:
        apply(api, manifest(namespace, replicas=2), "git")
    assert caught.value.status == 409
    status = json.loads(caught.value.body)
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Apply failed with 1 conflict: conflict with "changelane" using apps/v1: .spec.replicas'
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "changelane" using apps/v1',
            "field": ".spec.replicas",
        }
    ]
    # the failed apply changed nothing
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 0


def test_equal_values_are_shared_and_force_takes_the_field(
    api: client.ApiClient, apps: client.AppsV1Api, namespace: str
) -> None:
    apply(api, manifest(namespace, replicas=2), "git")
    apps.patch_namespaced_deployment(
        "web", namespace, {"spec": {"replicas": 3}}, field_manager="hpa"
    )
    # the same value as live: no conflict, both own it
    shared = apply(api, manifest(namespace, replicas=3), "git")
    assert "f:replicas" in managers(shared)[("git", "Apply")]["f:spec"]
    assert "f:replicas" in managers(shared)[("hpa", "Update")]["f:spec"]
    forced = apply(api, manifest(namespace, replicas=5), "git", force=True)
    assert forced["spec"]["replicas"] == 5
    assert ("hpa", "Update") not in managers(forced)


def test_a_field_the_applier_stops_stating_is_removed_unless_another_owns_it(
    api: client.ApiClient, apps: client.AppsV1Api, namespace: str
) -> None:
    with_labels = manifest(namespace)
    with_labels["metadata"]["labels"].update({"tier": "web", "team": "docs"})
    apply(api, with_labels, "git")
    apps.patch_namespaced_deployment(
        "web", namespace, {"metadata": {"labels": {"team": "platform"}}}, field_manager="ops"
    )
    after = apply(api, manifest(namespace), "git")
    labels = after["metadata"]["labels"]
    assert "tier" not in labels  # only git owned it: gone
    assert labels["team"] == "platform"  # ops owns it now: kept


def test_a_no_op_apply_writes_nothing(
    api: client.ApiClient, apps: client.AppsV1Api, namespace: str
) -> None:
    apply(api, manifest(namespace), "git")

    def settled() -> bool:
        status = apps.read_namespaced_deployment("web", namespace).status
        # No status at all until the simulated controller first writes one.
        return bool(status and status.ready_replicas == 1 and status.updated_replicas == 1)

    wait_until(settled, timeout=30)
    live = api.sanitize_for_serialization(apps.read_namespaced_deployment("web", namespace))
    again = apply(api, manifest(namespace), "git")
    assert again["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
    assert again["metadata"]["managedFields"] == live["metadata"]["managedFields"]


def test_apply_needs_a_field_manager(api: client.ApiClient, namespace: str) -> None:
    with pytest.raises(ApiException) as caught:
        client.AppsV1Api(api).patch_namespaced_deployment(
            "web", namespace, manifest(namespace), _content_type=APPLY
        )
    assert caught.value.status == 422
    assert "fieldManager" in json.loads(caught.value.body)["message"]


def test_kubectl_apply_and_diff_server_side(kubectl: Kubectl, namespace: str) -> None:
    doc = yaml.safe_dump(manifest(namespace, replicas=2))
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", "-", stdin=doc).stdout
    assert kubectl("diff", "--server-side", "-f", "-", stdin=doc).returncode == 0
    changed = yaml.safe_dump(manifest(namespace, image="web:2", replicas=2))
    diff = kubectl("diff", "--server-side", "-f", "-", stdin=changed, check=False)
    assert diff.returncode == 1 and "+      - image: web:2" in diff.stdout, diff.stderr

    kubectl("scale", "deploy/web", "-n", namespace, "--replicas=0")
    refused = kubectl("apply", "--server-side", "-f", "-", stdin=doc, check=False)
    assert refused.returncode != 0
    assert 'conflict with "kubectl" with subresource "scale" using apps/v1' in refused.stderr
    assert ".spec.replicas" in refused.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=doc)
    live = yaml.safe_load(kubectl("get", "deploy", "web", "-n", namespace, "-o", "yaml").stdout)
    assert live["spec"]["replicas"] == 2
