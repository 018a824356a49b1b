"""kubectl's other commands: names that resolve (the CRD category), `kubectl explain` from
the OpenAPI documents, and `kubectl auth can-i` / `auth whoami` answered from RBAC."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from controller.sim.cluster import SimCluster
from controller.sim.rbac import RbacAuthorizer
from tests.conformance.conftest import Kubectl

LANE = {
    "apiVersion": "changelane.dev/v1alpha1",
    "kind": "ChangeLane",
    "metadata": {"name": "docs-demo"},
    "spec": {
        "selector": {"namespaces": ["docs"], "matchLabels": {"app": "docs"}},
        "agents": [{"id": "claude-code"}],
        "strategy": {"steps": [{"weight": 100}]},
        "analysis": {
            "checks": [{"name": "up", "kind": "threshold", "query": "up", "threshold": 1}]
        },
    },
}


def test_get_and_describe_one_changelane_by_its_singular_name(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=json.dumps(LANE))
    try:
        got = kubectl("get", "changelane", "docs-demo", "-o", "json").stdout
        assert json.loads(got)["metadata"]["name"] == "docs-demo"
        assert "Name:" in kubectl("describe", "changelane", "docs-demo").stdout
        # the category still lists every changelane kind
        listed = kubectl("get", "changelane-all", "-A").stdout
        assert "docs-demo" in listed
    finally:
        kubectl("delete", "changelane", "docs-demo")


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("changelane.spec.strategy.steps", "FIELD: steps <[]Object>"),
        ("lanerelease.status", "KIND:       LaneRelease"),
        ("deployment.spec.replicas", "Number of desired pods"),
        ("deploy.spec.template.spec.containers", "<[]Container>"),
        ("changelane.metadata.labels", "Map of string keys and values"),
    ],
)
def test_explain(kubectl: Kubectl, field: str, expected: str) -> None:
    out = kubectl("explain", field).stdout
    assert expected in out, out


def test_explain_recursive_lists_nested_fields(kubectl: Kubectl) -> None:
    out = kubectl("explain", "changelane.spec.strategy", "--recursive").stdout
    assert "steps" in out and "weight" in out


def test_openapi_v2_serves_every_kind(sim: SimCluster) -> None:
    with urllib.request.urlopen(f"{sim.url}/openapi/v2", timeout=10) as response:
        doc = json.load(response)
    assert doc["swagger"] == "2.0"
    kinds = {
        gvk["kind"]
        for schema in doc["definitions"].values()
        for gvk in schema.get("x-kubernetes-group-version-kind", [])
    }
    assert {"Deployment", "Pod", "ChangeLane", "LaneRelease", "Lease"} <= kinds
    refs = json.dumps(doc["definitions"])
    assert "#/components/" not in refs  # v2 references point into definitions


@pytest.fixture
def rbac(sim: SimCluster) -> Iterator[None]:
    """RBAC as a cluster has it: the controller's ServiceAccount may patch Deployments in
    `shop` only; kubectl (anonymous over plain HTTP) may impersonate, as an admin can."""
    sa = {"kind": "ServiceAccount", "name": "changelane", "namespace": "changelane-system"}
    objects = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "deployer", "namespace": "shop"},
            "rules": [
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "deployer", "namespace": "shop"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "deployer",
            },
            "subjects": [sa],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "impersonator"},
            "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "impersonator"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "impersonator",
            },
            "subjects": [{"kind": "User", "name": "system:anonymous"}],
        },
    ]
    sim.set_authorizer(RbacAuthorizer(objects))
    try:
        yield
    finally:
        sim.set_authorizer(None)


SA = "system:serviceaccount:changelane-system:changelane"


def test_auth_can_i_answers_from_rbac(kubectl: Kubectl, rbac: None) -> None:
    def can_i(*args: str) -> str:
        return kubectl("auth", "can-i", *args, "--as", SA, check=False).stdout.strip()

    assert can_i("patch", "deployments", "-n", "shop") == "yes"
    assert can_i("patch", "deployments", "-n", "other") == "no"
    assert can_i("delete", "deployments", "-n", "shop") == "no"
    assert can_i("get", "deployments.apps/web", "-n", "shop") == "yes"
    listed = kubectl("auth", "can-i", "--list", "-n", "shop", "--as", SA).stdout
    row = next(line for line in listed.splitlines() if line.startswith("deployments.apps"))
    assert "[get patch]" in row
    assert "selfsubjectaccessreviews.authorization.k8s.io" in listed
    elsewhere = kubectl("auth", "can-i", "--list", "-n", "other", "--as", SA).stdout
    assert "deployments.apps" not in elsewhere


def test_impersonation_needs_rbac(kubectl: Kubectl, sim: SimCluster) -> None:
    sim.set_authorizer(RbacAuthorizer([]))
    try:
        refused = kubectl("get", "deployments", "-n", "shop", "--as", SA, check=False)
        assert refused.returncode != 0
        assert (
            f'users "{SA}" is forbidden: User "system:anonymous" cannot impersonate resource '
            '"users" in API group "" at the cluster scope'
        ) in refused.stderr
    finally:
        sim.set_authorizer(None)


def test_auth_whoami(kubectl: Kubectl, rbac: None) -> None:
    out = kubectl("auth", "whoami", "--as", SA, "-o", "json").stdout
    info = json.loads(out)["status"]["userInfo"]
    assert info["username"] == SA
    assert "system:serviceaccounts:changelane-system" in info["groups"]
    assert "system:authenticated" in info["groups"]


def test_without_an_authorizer_everything_is_allowed(kubectl: Kubectl, sim: SimCluster) -> None:
    assert kubectl("auth", "can-i", "delete", "pods", "-A").stdout.strip() == "yes"
    assert "anonymous" in kubectl("auth", "whoami").stdout
