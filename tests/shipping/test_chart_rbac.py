"""RBAC is exactly what the controller uses: no wildcards, no Secrets, Lease only at home.

EXPECTED_* is the contract, as test_rbac_matches_behaviour.py measured it: the controller
(and the on-call commands) run a whole life against the simulated cluster with the chart's
roles enforced, and every grant is shown to be used. templates/rbac.yaml and
templates/rbac-humans.yaml grant it; when the code needs a new verb, all three change.
"""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from tests.shipping.chartlib import NAMESPACE, RELEASE, Rendered, only, render
from tests.shipping.variants import VARIANTS

EXPECTED_CLUSTER: dict[tuple[str, str], set[str]] = {
    ("changelane.dev", "changelanes"): {"get", "list", "watch"},
    ("changelane.dev", "changelanes/status"): {"patch"},
    ("changelane.dev", "lanereleases"): {"get", "list", "watch", "create", "patch", "delete"},
    ("changelane.dev", "lanereleases/status"): {"patch"},
    ("apps", "deployments"): {"list", "watch", "create", "patch"},
    ("apps", "replicasets"): {"list"},
    ("", "pods"): {"list"},
    ("", "configmaps"): {"get", "update"},
    ("", "events"): {"create", "list"},
    ("gateway.networking.k8s.io", "httproutes"): {"get", "patch"},
    ("core.openfeature.dev", "featureflags"): {"get", "update"},
}
# The on-call roles: what `status`/`audit --cluster` read, and what the verbs write.
EXPECTED_VIEWER: dict[tuple[str, str], set[str]] = {
    ("changelane.dev", "changelanes"): {"get", "list"},
    ("changelane.dev", "lanereleases"): {"get", "list"},
    ("", "events"): {"list"},
}
EXPECTED_OPERATOR: dict[tuple[str, str], set[str]] = {
    **EXPECTED_VIEWER,
    ("changelane.dev", "lanereleases"): {"get", "list", "patch"},
    ("changelane.dev", "changelanes/status"): {"patch"},
}
CONTROLLER_ROLE = f"{RELEASE}-changelane"
VIEWER_ROLE = f"{RELEASE}-changelane-viewer"
OPERATOR_ROLE = f"{RELEASE}-changelane-operator"
AGGREGATE_LABELS = {
    f"rbac.authorization.k8s.io/aggregate-to-{role}": "true" for role in ("view", "edit", "admin")
}
LEASE_NAME = "changelane-leader"


def _grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs, over all the rules that name the pair."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def _rbac(objs: list[Rendered]) -> list[dict[str, Any]]:
    return [r.obj for r in objs if r.obj["apiVersion"].startswith("rbac.authorization.k8s.io/")]


@pytest.fixture(scope="module")
def objs(chart: helm_python.Chart) -> list[Rendered]:
    return render(chart)


def test_cluster_role_is_exactly_the_contract(objs: list[Rendered]) -> None:
    role = only(objs, "ClusterRole", CONTROLLER_ROLE)
    assert _grants(role["rules"]) == EXPECTED_CLUSTER
    assert all(set(rule) == {"apiGroups", "resources", "verbs"} for rule in role["rules"])
    assert "aggregationRule" not in role


def test_human_roles_are_exactly_the_contract(objs: list[Rendered]) -> None:
    viewer = only(objs, "ClusterRole", VIEWER_ROLE)
    operator = only(objs, "ClusterRole", OPERATOR_ROLE)
    assert _grants(viewer["rules"]) == EXPECTED_VIEWER
    assert _grants(operator["rules"]) == EXPECTED_OPERATOR
    for role in (viewer, operator):
        assert all(set(rule) == {"apiGroups", "resources", "verbs"} for rule in role["rules"])
    # The viewer joins the built-in view/edit/admin roles; acting stays a deliberate grant.
    assert AGGREGATE_LABELS.items() <= viewer["metadata"]["labels"].items()
    assert not {k for k in operator["metadata"]["labels"] if k.startswith("rbac.authorization")}
    # The chart binds nobody to them: that is the platform team's call.
    for binding in (r.obj for r in objs if r.kind.endswith("Binding")):
        assert binding["roleRef"]["name"] not in {VIEWER_ROLE, OPERATOR_ROLE}


def test_human_roles_follow_values(chart: helm_python.Chart) -> None:
    off = render(chart, {"rbac": {"humanRoles": {"create": False}}})
    assert [r.name for r in off if r.kind == "ClusterRole"] == [CONTROLLER_ROLE]
    quiet = render(chart, {"rbac": {"humanRoles": {"aggregateToDefaultRoles": False}}})
    labels = only(quiet, "ClusterRole", VIEWER_ROLE)["metadata"]["labels"]
    assert not AGGREGATE_LABELS.keys() & labels.keys()
    with pytest.raises(Exception, match="humanRoles"):
        render(chart, {"rbac": {"humanRoles": {"creat": True}}})


def test_leases_only_in_the_release_namespace_and_by_name(chart: helm_python.Chart) -> None:
    """One leader: its Lease by name. Sharded (the default with two replicas): the member
    Leases name the pods, so the Leases of the release namespace, and nowhere else."""
    for values, named, unnamed in (
        ({"leaderElection": {"sharding": False}}, [({"get", "update"}, [LEASE_NAME])], []),
        ({"replicaCount": 1}, [({"get", "update"}, [LEASE_NAME])], []),
        ({}, [], [{"get", "list", "update", "delete"}]),
    ):
        objs = render(chart, values)
        role = only(objs, "Role")
        assert role["metadata"]["namespace"] == NAMESPACE
        # Besides the Leases, the Role creates the audit anchor ConfigMaps in its namespace.
        anchor = [r for r in role["rules"] if r["resources"] == ["configmaps"]]
        assert anchor == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]
        rules = [r for r in role["rules"] if r not in anchor]
        assert all(r["apiGroups"] == ["coordination.k8s.io"] for r in rules)
        assert all(r["resources"] == ["leases"] for r in rules)
        # create cannot be restricted by name in Kubernetes; get and update are.
        assert [set(r["verbs"]) for r in rules if not r.get("resourceNames")] == [
            {"create"},
            *unnamed,
        ]
        assert [(set(r["verbs"]), r["resourceNames"]) for r in rules if r.get("resourceNames")] == (
            named
        )
        for cluster in (r.obj for r in objs if r.kind == "ClusterRole"):
            assert not any("coordination.k8s.io" in rule["apiGroups"] for rule in cluster["rules"])


def test_lease_name_follows_values(chart: helm_python.Chart) -> None:
    values = {"leaderElection": {"leaseName": "lanes-leader", "sharding": False}}
    objs = render(chart, values)
    named = [r for r in only(objs, "Role")["rules"] if r.get("resourceNames")]
    assert named[0]["resourceNames"] == ["lanes-leader"]
    args = only(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--lease-name=lanes-leader" in args
    assert "--shards=1" in args


@pytest.mark.parametrize(("replicas", "shards"), [(1, 1), (2, 2), (3, 3), (5, 5)])
def test_the_shard_count_follows_replica_count(
    chart: helm_python.Chart, replicas: int, shards: int
) -> None:
    objs = render(chart, {"replicaCount": replicas})
    args = only(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--shards={shards}" in args
    assert "--shard-lease-prefix=changelane" in args


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_wildcards_no_secrets_anywhere(chart: helm_python.Chart, variant: str) -> None:
    for obj in _rbac(render(chart, VARIANTS[variant])):
        for rule in obj.get("rules", []):
            for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert "*" not in rule.get(key, []), f"{obj['kind']} wildcard in {key}: {rule}"
            assert "secrets" not in rule.get("resources", []), rule
            forbidden = {"escalate", "bind", "impersonate", "delete", "deletecollection"}
            if rule.get("resources") == ["lanereleases"] and obj["kind"] == "ClusterRole":
                forbidden.discard("delete")  # retention, and only finished releases
            if rule.get("resources") == ["leases"] and obj["kind"] == "Role":
                forbidden.discard("delete")  # member Leases: its own when stopping, stale ones
            assert not forbidden & set(rule["verbs"]), rule


def test_delete_is_granted_only_for_retention(chart: helm_python.Chart) -> None:
    def deletes(values: dict[str, object]) -> list[dict[str, object]]:
        return [
            rule
            for obj in _rbac(render(chart, values))
            for rule in obj.get("rules", [])
            if "delete" in rule["verbs"]
        ]

    retention = {
        "apiGroups": ["changelane.dev"],
        "resources": ["lanereleases"],
        "verbs": ["delete"],
    }
    members = {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "list", "update", "delete"],
    }
    assert deletes({}) == [retention, members]  # sharded by default: member Leases
    assert deletes({"retention": {"keepLast": 0, "ttl": ""}}) == [members]
    assert deletes({"leaderElection": {"sharding": False}}) == [retention]
    assert deletes({"replicaCount": 1}) == [retention]


def test_bindings_grant_the_roles_to_the_controller_only(objs: list[Rendered]) -> None:
    account = only(objs, "ServiceAccount")["metadata"]["name"]
    subject = {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    cluster_binding = only(objs, "ClusterRoleBinding")
    binding = only(objs, "RoleBinding")
    assert cluster_binding["subjects"] == [subject] and binding["subjects"] == [subject]
    assert cluster_binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": CONTROLLER_ROLE,
    }
    assert binding["roleRef"]["kind"] == "Role"
    assert binding["roleRef"]["name"] == only(objs, "Role")["metadata"]["name"]
    pod = only(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account == f"{RELEASE}-changelane"


def test_rbac_can_be_left_to_the_platform(chart: helm_python.Chart) -> None:
    assert _rbac(render(chart, VARIANTS["bring-your-own-service-account"])) == []
