"""A small RBAC authorizer over the chart's rendered roles, as the API server evaluates them.

A rule allows a request when its ``verbs``, ``apiGroups`` and ``resources`` (``resource`` or
``resource/subresource``) each contain the request's (or ``*``) and, if it lists
``resourceNames``, the request names one of them (a create, list or watch names none, so
such a rule never allows them). A Role's rules apply only in its namespace; a ClusterRole
bound by a ClusterRoleBinding applies everywhere; a ClusterRole with an ``aggregationRule``
has the rules of every ClusterRole whose labels match one of its selectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.sim.request_audit import ApiRequest

JsonDict = dict[str, Any]
#: what every authenticated user may read (system:discovery, system:basic-user)
DISCOVERY_PREFIXES = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")


@dataclass(frozen=True, order=True)
class Access:
    """One (verb, group, resource[/subresource], namespace, name) an identity needed."""

    verb: str
    group: str
    resource: str
    namespace: str = ""
    name: str = ""

    @classmethod
    def of(cls, request: ApiRequest) -> Access:
        return cls(
            request.verb,
            request.api_group,
            request.rbac_resource,
            request.namespace,
            request.name,
        )

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else " (cluster scope)"
        name = f" {self.name}" if self.name else ""
        return f"{self.verb} {self.group or 'core'}/{self.resource}{name}{where}"


@dataclass(frozen=True)
class Grant:
    """One rule, in force in ``namespace`` only ('' = every namespace and cluster scope)."""

    rule: JsonDict
    namespace: str
    source: str  # e.g. "ClusterRole cl-changelane"

    def allows(self, access: Access) -> bool:
        if self.namespace and access.namespace != self.namespace:
            return False
        rule = self.rule
        names = rule.get("resourceNames") or []
        return (
            _has(rule.get("verbs"), access.verb)
            and _has(rule.get("apiGroups"), access.group)
            and _has(rule.get("resources"), access.resource)
            and (not names or access.name in names)
        )

    def pairs(self) -> set[tuple[str, str, str]]:
        """Every (verb, group, resource) this rule grants."""
        return {
            (verb, group, resource)
            for verb in self.rule.get("verbs", [])
            for group in self.rule.get("apiGroups", [])
            for resource in self.rule.get("resources", [])
        }


def _has(values: list[str] | None, wanted: str) -> bool:
    return bool(values) and ("*" in values or wanted in values)  # type: ignore[operator]


class Policy:
    """The rendered RBAC objects of one chart release."""

    def __init__(self, objects: list[JsonDict]) -> None:
        self.objects = [o for o in objects if o["apiVersion"].startswith("rbac.authorization")]

    def _of(self, kind: str) -> list[JsonDict]:
        return [o for o in self.objects if o["kind"] == kind]

    def cluster_role(self, name: str) -> JsonDict:
        found = [o for o in self._of("ClusterRole") if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one ClusterRole {name}, found {len(found)}"
        return found[0]

    def cluster_role_rules(self, name: str) -> list[JsonDict]:
        """The role's rules, with aggregation resolved over the rendered ClusterRoles."""
        role = self.cluster_role(name)
        aggregation = role.get("aggregationRule")
        if not aggregation:
            return list(role.get("rules") or [])
        rules: list[JsonDict] = []
        for other in self._of("ClusterRole"):
            labels = other["metadata"].get("labels") or {}
            if other is role:
                continue
            for selector in aggregation.get("clusterRoleSelectors", []):
                wanted = selector.get("matchLabels") or {}
                if wanted and all(labels.get(k) == v for k, v in wanted.items()):
                    rules.extend(other.get("rules") or [])
                    break
        return rules

    def grants_of_cluster_role(self, name: str) -> list[Grant]:
        """The grants a ClusterRoleBinding to ``name`` would give (how humans get them)."""
        return [Grant(r, "", f"ClusterRole {name}") for r in self.cluster_role_rules(name)]

    def grants_of_service_account(self, namespace: str, name: str) -> list[Grant]:
        """Everything the chart's bindings give the ServiceAccount ``namespace/name``."""
        subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
        grants: list[Grant] = []
        for binding in self._of("ClusterRoleBinding") + self._of("RoleBinding"):
            if subject not in binding.get("subjects", []):
                continue
            ref = binding["roleRef"]
            namespaced = binding["kind"] == "RoleBinding"
            scope = binding["metadata"].get("namespace", "") if namespaced else ""
            if ref["kind"] == "ClusterRole":
                rules = self.cluster_role_rules(ref["name"])
            else:
                [role] = [
                    r
                    for r in self._of("Role")
                    if r["metadata"]["name"] == ref["name"]
                    and r["metadata"]["namespace"] == binding["metadata"]["namespace"]
                ]
                rules = role.get("rules") or []
            grants.extend(Grant(r, scope, f"{ref['kind']} {ref['name']}") for r in rules)
        return grants


def allowed(grants: list[Grant], access: Access) -> bool:
    return any(g.allows(access) for g in grants)


def authorize(grants: list[Grant], request: ApiRequest) -> bool:
    """The verdict of RBAC plus the default discovery roles on one recorded request."""
    if not request.resource_request:
        return request.verb == "get" and request.path.startswith(DISCOVERY_PREFIXES)
    return allowed(grants, Access.of(request))


def unused(grants: list[Grant], used: set[Access]) -> set[tuple[str, str, str]]:
    """(verb, group, resource) pairs some grant gives that no used access needed."""
    exercised = {(a.verb, a.group, a.resource) for a in used}
    out: set[tuple[str, str, str]] = set()
    for grant in grants:
        out |= grant.pairs() - exercised
    return out
