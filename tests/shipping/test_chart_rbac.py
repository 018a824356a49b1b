"""RBAC is exactly what the controller uses: no wildcards, no Secrets, Lease only at home.

EXPECTED is the runtime contract. The chart's templates/rbac.yaml is the one place that
grants it; when the controller needs a new verb, both change together.
"""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from tests.shipping.chartlib import NAMESPACE, RELEASE, Rendered, only, render
from tests.shipping.variants import VARIANTS

EXPECTED_CLUSTER: dict[tuple[str, str], set[str]] = {
    ("changelane.dev", "changelanes"): {"get", "list", "watch"},
    ("changelane.dev", "changelanes/status"): {"get", "patch", "update"},
    ("changelane.dev", "lanereleases"): {"get", "list", "watch", "create", "patch", "update"},
    ("changelane.dev", "lanereleases/status"): {"get", "patch", "update"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "update"},
    ("apps", "replicasets"): {"get", "list", "watch"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "services"): {"get", "list", "watch"},
    ("", "configmaps"): {"get", "list", "watch", "patch", "update"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("gateway.networking.k8s.io", "httproutes"): {"get", "list", "watch", "patch", "update"},
    ("core.openfeature.dev", "featureflags"): {"get", "list", "watch", "patch", "update"},
}
LEASE_NAME = "changelane-leader"


def _grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs; each pair may appear in one rule only."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) not in out, f"{group}/{resource} granted twice"
                out[(group, resource)] = set(rule["verbs"])
    return out


def _rbac(objs: list[Rendered]) -> list[dict[str, Any]]:
    return [r.obj for r in objs if r.obj["apiVersion"].startswith("rbac.authorization.k8s.io/")]


@pytest.fixture(scope="module")
def objs(chart: helm_python.Chart) -> list[Rendered]:
    return render(chart)


def test_cluster_role_is_exactly_the_contract(objs: list[Rendered]) -> None:
    role = only(objs, "ClusterRole")
    assert _grants(role["rules"]) == EXPECTED_CLUSTER
    assert all(set(rule) == {"apiGroups", "resources", "verbs"} for rule in role["rules"])
    assert "aggregationRule" not in role


def test_leases_only_in_the_release_namespace_and_by_name(objs: list[Rendered]) -> None:
    role = only(objs, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    named = [r for r in role["rules"] if r.get("resourceNames")]
    unnamed = [r for r in role["rules"] if not r.get("resourceNames")]
    assert all(r["apiGroups"] == ["coordination.k8s.io"] for r in role["rules"])
    assert all(r["resources"] == ["leases"] for r in role["rules"])
    # create cannot be restricted by name in Kubernetes; get and update are.
    assert [set(r["verbs"]) for r in unnamed] == [{"create"}]
    assert [(set(r["verbs"]), r["resourceNames"]) for r in named] == [
        ({"get", "update"}, [LEASE_NAME])
    ]
    cluster = only(objs, "ClusterRole")
    assert not any("coordination.k8s.io" in rule["apiGroups"] for rule in cluster["rules"])


def test_lease_name_follows_values(chart: helm_python.Chart) -> None:
    objs = render(chart, {"leaderElection": {"leaseName": "lanes-leader"}})
    named = [r for r in only(objs, "Role")["rules"] if r.get("resourceNames")]
    assert named[0]["resourceNames"] == ["lanes-leader"]
    args = only(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--lease-name=lanes-leader" in args


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_wildcards_no_secrets_anywhere(chart: helm_python.Chart, variant: str) -> None:
    for obj in _rbac(render(chart, VARIANTS[variant])):
        for rule in obj.get("rules", []):
            for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert "*" not in rule.get(key, []), f"{obj['kind']} wildcard in {key}: {rule}"
            assert "secrets" not in rule.get("resources", []), rule
            assert not {"escalate", "bind", "impersonate", "delete", "deletecollection"} & set(
                rule["verbs"]
            ), rule


def test_bindings_grant_the_roles_to_the_controller_only(objs: list[Rendered]) -> None:
    account = only(objs, "ServiceAccount")["metadata"]["name"]
    subject = {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    cluster_binding = only(objs, "ClusterRoleBinding")
    binding = only(objs, "RoleBinding")
    assert cluster_binding["subjects"] == [subject] and binding["subjects"] == [subject]
    assert cluster_binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": only(objs, "ClusterRole")["metadata"]["name"],
    }
    assert binding["roleRef"]["kind"] == "Role"
    assert binding["roleRef"]["name"] == only(objs, "Role")["metadata"]["name"]
    pod = only(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account == f"{RELEASE}-changelane"


def test_rbac_can_be_left_to_the_platform(chart: helm_python.Chart) -> None:
    assert _rbac(render(chart, VARIANTS["bring-your-own-service-account"])) == []
