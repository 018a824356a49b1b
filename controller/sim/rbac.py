"""RBAC for the simulated cluster: Roles, ClusterRoles and their bindings, evaluated the way
the API server's RBAC authorizer evaluates them, plus the bootstrap policy every cluster has
(discovery for everyone, the self-review APIs for every authenticated user).

    sim.set_authorizer(RbacAuthorizer(documents))   # e.g. the chart's rendered RBAC

A rule allows a request when its verbs, apiGroups and resources (``resource`` or
``resource/subresource``) contain the request's (or ``*``) and, if it lists resourceNames,
the request names one of them. A RoleBinding's rules hold in its namespace only; a
ClusterRoleBinding's everywhere. An ``aggregationRule`` collects the rules of the
ClusterRoles whose labels match. ``rules()`` lists what a user may do in a namespace, for
SelfSubjectRulesReview (``kubectl auth can-i --list``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from controller.sim.request_audit import ANONYMOUS, ApiRequest

JsonDict = dict[str, Any]

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
# system:discovery, system:public-info-viewer and system:basic-user, as bootstrapped.
_DISCOVERY = {
    "verbs": ["get"],
    "nonResourceURLs": [
        "/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", "/version",
        "/version/", "/healthz", "/livez", "/readyz",
    ],
}  # fmt: skip
_BASIC_USER = [
    {
        "verbs": ["create"],
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
    },
    {
        "verbs": ["create"],
        "apiGroups": ["authentication.k8s.io"],
        "resources": ["selfsubjectreviews"],
    },
]


def groups_of(user: str) -> list[str]:
    """The groups the API server's authenticators give ``user``."""
    if user == ANONYMOUS:
        return [UNAUTHENTICATED]
    groups = [AUTHENTICATED]
    if user.startswith("system:serviceaccount:"):
        namespace = user.split(":")[2]
        groups[:0] = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    return groups


def _has(values: Iterable[str] | None, wanted: str) -> bool:
    found = list(values or [])
    return "*" in found or wanted in found


def _path_allowed(patterns: Iterable[str] | None, path: str) -> bool:
    for pattern in patterns or []:
        if pattern == "*" or pattern == path:
            return True
        if pattern.endswith("*") and path.startswith(pattern[:-1]):
            return True
    return False


@dataclass(frozen=True)
class _Grant:
    rule: JsonDict
    namespace: str  # "" = everywhere


class RbacAuthorizer:
    """An ``Authorizer`` (request -> allowed) over a set of RBAC objects."""

    def __init__(self, objects: Iterable[JsonDict]) -> None:
        self.objects = [
            o
            for o in objects
            if isinstance(o, dict) and str(o.get("apiVersion", "")).startswith("rbac.authorization")
        ]

    def _of(self, kind: str) -> list[JsonDict]:
        return [o for o in self.objects if o.get("kind") == kind]

    def _cluster_role_rules(self, name: str) -> list[JsonDict]:
        role = next((r for r in self._of("ClusterRole") if r["metadata"]["name"] == name), None)
        if role is None:
            return []
        aggregation = role.get("aggregationRule")
        if not aggregation:
            return list(role.get("rules") or [])
        rules: list[JsonDict] = []
        for other in self._of("ClusterRole"):
            labels = other["metadata"].get("labels") or {}
            for selector in aggregation.get("clusterRoleSelectors") or []:
                wanted = selector.get("matchLabels") or {}
                if other is not role and wanted and wanted.items() <= labels.items():
                    rules.extend(other.get("rules") or [])
                    break
        return rules

    def _role_rules(self, namespace: str, name: str) -> list[JsonDict]:
        for role in self._of("Role"):
            meta = role["metadata"]
            if meta["name"] == name and meta.get("namespace") == namespace:
                return list(role.get("rules") or [])
        return []

    def _grants(self, user: str) -> list[_Grant]:
        groups = groups_of(user)
        grants = [_Grant(_DISCOVERY, "")]
        if AUTHENTICATED in groups:
            grants += [_Grant(rule, "") for rule in _BASIC_USER]
        for binding in self._of("ClusterRoleBinding") + self._of("RoleBinding"):
            if not any(_binds(subject, user, groups) for subject in binding.get("subjects") or []):
                continue
            ref = binding.get("roleRef") or {}
            namespaced = binding["kind"] == "RoleBinding"
            scope = binding["metadata"].get("namespace", "") if namespaced else ""
            if ref.get("kind") == "ClusterRole":
                rules = self._cluster_role_rules(ref.get("name", ""))
            else:
                rules = self._role_rules(scope, ref.get("name", ""))
            grants += [_Grant(rule, scope) for rule in rules]
        return grants

    def __call__(self, request: ApiRequest) -> bool:
        return self.allows(request)

    def allows(self, request: ApiRequest) -> bool:
        for grant in self._grants(request.user):
            rule = grant.rule
            if not request.resource_request:
                if _has(rule.get("verbs"), request.verb) and _path_allowed(
                    rule.get("nonResourceURLs"), request.path
                ):
                    return True
                continue
            if grant.namespace and grant.namespace != request.namespace:
                continue
            names = rule.get("resourceNames") or []
            if (
                _has(rule.get("verbs"), request.verb)
                and _has(rule.get("apiGroups"), request.api_group)
                and _has(rule.get("resources"), request.rbac_resource)
                and (not names or request.name in names)
            ):
                return True
        return False

    def rules(self, user: str, namespace: str) -> tuple[list[JsonDict], list[JsonDict]]:
        """(resourceRules, nonResourceRules) that hold for ``user`` in ``namespace``."""
        resource: list[JsonDict] = []
        non_resource: list[JsonDict] = []
        for grant in self._grants(user):
            rule = grant.rule
            if "nonResourceURLs" in rule:
                non_resource.append(
                    {"verbs": list(rule["verbs"]), "nonResourceURLs": list(rule["nonResourceURLs"])}
                )
            elif not grant.namespace or grant.namespace == namespace:
                out = {
                    "verbs": list(rule.get("verbs") or []),
                    "apiGroups": list(rule.get("apiGroups") or []),
                    "resources": list(rule.get("resources") or []),
                }
                if rule.get("resourceNames"):
                    out["resourceNames"] = list(rule["resourceNames"])
                resource.append(out)
        return resource, non_resource


def _binds(subject: JsonDict, user: str, groups: list[str]) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(name == user)
    if kind == "Group":
        return name in groups
    if kind == "ServiceAccount":
        return user == f"system:serviceaccount:{subject.get('namespace', '')}:{name}"
    return False
