"""Request attributes as the API server's authorizer sees them; users, recording, 403s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.adapters.kube.client import api_client
from controller.sim.cluster import SimCluster
from controller.sim.kubeconfig import write_kubeconfig
from controller.sim.request_audit import ANONYMOUS, ApiRequest, request_attributes

CASES = [
    # method, path, query -> verb, group, resource, subresource, namespace, name
    ("GET", "/api/v1/pods", {}, ("list", "", "pods", "", "", "")),
    ("GET", "/api/v1/namespaces/shop/pods", {}, ("list", "", "pods", "", "shop", "")),
    ("GET", "/api/v1/namespaces/shop/pods/p", {}, ("get", "", "pods", "", "shop", "p")),
    (
        "GET",
        "/api/v1/namespaces/shop/pods",
        {"watch": "true"},
        ("watch", "", "pods", "", "shop", ""),
    ),
    ("GET", "/api/v1/watch/namespaces/shop/pods", {}, ("watch", "", "pods", "", "shop", "")),
    ("GET", "/api/v1/namespaces/shop/pods/p/log", {}, ("get", "", "pods", "log", "shop", "p")),
    ("GET", "/api/v1/namespaces", {}, ("list", "", "namespaces", "", "", "")),
    ("GET", "/api/v1/namespaces/shop", {}, ("get", "", "namespaces", "", "shop", "shop")),
    (
        "PUT",
        "/api/v1/namespaces/shop/finalize",
        {},
        ("update", "", "namespaces", "finalize", "shop", "shop"),
    ),
    (
        "PATCH",
        "/apis/changelane.dev/v1alpha1/changelanes/web/status",
        {},
        ("patch", "changelane.dev", "changelanes", "status", "", "web"),
    ),
    (
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/cs/leases",
        {},
        ("create", "coordination.k8s.io", "leases", "", "cs", ""),
    ),
    (
        "PUT",
        "/apis/apps/v1/namespaces/shop/deployments/web/scale",
        {},
        ("update", "apps", "deployments", "scale", "shop", "web"),
    ),
    (
        "DELETE",
        "/apis/apps/v1/namespaces/shop/deployments",
        {},
        ("deletecollection", "apps", "deployments", "", "shop", ""),
    ),
    ("DELETE", "/api/v1/namespaces/shop/pods/p", {}, ("delete", "", "pods", "", "shop", "p")),
]


@pytest.mark.parametrize(("method", "path", "query", "expected"), CASES)
def test_attributes_follow_the_api_servers_request_info(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    r = request_attributes(method, path, query, user="u", user_agent="ua")
    assert r.resource_request
    assert (r.verb, r.api_group, r.resource, r.subresource, r.namespace, r.name) == expected


@pytest.mark.parametrize("path", ["/api", "/apis", "/apis/apps", "/apis/apps/v1", "/version"])
def test_discovery_is_a_non_resource_request(path: str) -> None:
    r = request_attributes("GET", path, {}, user="u", user_agent="ua")
    assert not r.resource_request and r.verb == "get" and r.path == path


def test_users_are_told_apart_recorded_and_refused_as_rbac_would(tmp_path: Path) -> None:
    with SimCluster(controllers=False) as sim:
        sim.store.create(
            "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}
        )
        sim.add_user("alice")
        alice = client.CoreV1Api(
            api_client(str(sim.write_kubeconfig(tmp_path / "a", user="alice")))
        )
        anonymous = client.CoreV1Api(api_client(str(sim.write_kubeconfig(tmp_path / "n"))))
        with pytest.raises(KeyError, match="bob"):
            sim.kubeconfig(user="bob")

        anonymous.list_namespaced_config_map("ns")  # nothing recorded: off by default

        def only_reads(request: ApiRequest) -> bool:
            return request.user != "alice" or request.verb in {"get", "list", "watch"}

        sim.set_authorizer(only_reads)
        with sim.record_requests() as log:
            alice.list_namespaced_config_map("ns")
            with pytest.raises(ApiException) as refused:
                alice.create_namespaced_config_map(
                    "ns", {"metadata": {"name": "c"}, "data": {"k": "v"}}
                )
            anonymous.create_namespaced_config_map(
                "ns", {"metadata": {"name": "c"}, "data": {"k": "v"}}
            )
        alice.list_namespaced_config_map("ns")  # after the block: not recorded

        assert refused.value.status == 403
        assert json.loads(refused.value.body)["message"] == (
            'configmaps is forbidden: User "alice" cannot create resource "configmaps" in '
            'API group "" in the namespace "ns"'
        )
        seen = [(r.user, r.verb, r.resource, r.namespace) for r in log]
        assert seen == [
            ("alice", "list", "configmaps", "ns"),
            ("alice", "create", "configmaps", "ns"),
            (ANONYMOUS, "create", "configmaps", "ns"),
        ]
        assert all(r.user_agent.startswith("OpenAPI-Generator/") for r in log)
        assert [r.user for r in log.by("alice")] == ["alice", "alice"]
        sim.set_authorizer(None)
        alice.delete_namespaced_config_map("c", "ns")


def test_a_required_token_still_admits_named_users_and_refuses_strangers(tmp_path: Path) -> None:
    with SimCluster(controllers=False, token="auto") as sim:
        sim.add_user("alice")
        alice = client.CoreV1Api(
            api_client(str(sim.write_kubeconfig(tmp_path / "a", user="alice")))
        )
        admin = client.CoreV1Api(api_client(str(sim.write_kubeconfig(tmp_path / "adm"))))
        with sim.record_requests() as log:
            alice.list_namespace()
            admin.list_namespace()
        assert [r.user for r in log] == ["alice", "admin"]
        config = sim.kubeconfig(user="alice")
        config["users"][0]["user"]["token"] = "wrong"
        path = tmp_path / "x"
        stranger = client.CoreV1Api(api_client(str(write_kubeconfig(path, config))))
        with pytest.raises(ApiException) as denied:
            stranger.list_namespace()
        assert denied.value.status == 401
