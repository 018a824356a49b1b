"""The review APIs kubectl's ``auth`` commands call, answered from the cluster's authorizer.

- ``SelfSubjectAccessReview`` (``kubectl auth can-i VERB RESOURCE``): would this user's
  request be allowed? Asked of the same authorizers that guard every request.
- ``SelfSubjectRulesReview`` (``kubectl auth can-i --list``): what may this user do in a
  namespace? Listed by an authorizer that can enumerate its rules (``RbacAuthorizer``);
  with no authorizer everything is allowed; otherwise the answer is ``incomplete``.
- ``SelfSubjectReview`` (``kubectl auth whoami``): who am I, with my groups.

Every authenticated user may create these (the bootstrap ``system:basic-user`` role).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controller.sim.errors import ApiError, bad_request
from controller.sim.rbac import groups_of
from controller.sim.request_audit import ApiRequest, Authorizer

JsonDict = dict[str, Any]

ACCESS_REVIEW = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
RULES_REVIEW = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"
WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
PATHS = frozenset({ACCESS_REVIEW, RULES_REVIEW, WHOAMI})

_EVERYTHING = (
    [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
    [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
)


def review(
    path: str, body: Any, *, user: str, user_agent: str, authorizers: Sequence[Authorizer]
) -> JsonDict:
    """The review object with its ``status`` filled in (the API answers 201 with it)."""
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be a JSON object")
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise bad_request("spec: expected an object")
    if path == WHOAMI:
        status: JsonDict = {"userInfo": {"username": user, "groups": groups_of(user)}}
        return _answer(body, "authentication.k8s.io/v1", "SelfSubjectReview", status)
    if path == ACCESS_REVIEW:
        request = _access(spec, user, user_agent)
        allowed = all(authorize(request) for authorize in authorizers)
        status = {"allowed": allowed}
        if not authorizers:
            status["reason"] = "the simulated cluster has no authorizer: every request is allowed"
        return _answer(body, "authorization.k8s.io/v1", "SelfSubjectAccessReview", status)
    namespace = str(spec.get("namespace") or "")
    status = _rules(user, namespace, authorizers)
    return _answer(body, "authorization.k8s.io/v1", "SelfSubjectRulesReview", status)


def _answer(body: JsonDict, api_version: str, kind: str, status: JsonDict) -> JsonDict:
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": None},
        "spec": body.get("spec") or {},
        "status": status,
    }


def _access(spec: JsonDict, user: str, user_agent: str) -> ApiRequest:
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if isinstance(resource, dict):
        return ApiRequest(
            user,
            user_agent,
            "POST",
            "",
            str(resource.get("verb") or ""),
            True,
            api_group=str(resource.get("group") or ""),
            api_version=str(resource.get("version") or ""),
            resource=str(resource.get("resource") or ""),
            subresource=str(resource.get("subresource") or ""),
            namespace=str(resource.get("namespace") or ""),
            name=str(resource.get("name") or ""),
        )
    if isinstance(non_resource, dict):
        verb = str(non_resource.get("verb") or "")
        path = str(non_resource.get("path") or "")
        return ApiRequest(user, user_agent, verb.upper(), path, verb, False)
    raise ApiError(
        422,
        "Invalid",
        'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: '
        "Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes "
        "must be specified",
    )


def _rules(user: str, namespace: str, authorizers: Sequence[Authorizer]) -> JsonDict:
    if not authorizers:
        resource, non_resource = _EVERYTHING
        return {"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": False}
    listers = [getattr(a, "rules", None) for a in authorizers]
    if len(listers) == 1 and callable(listers[0]):
        resource, non_resource = listers[0](user, namespace)
        return {"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": False}
    return {
        "resourceRules": [],
        "nonResourceRules": [],
        "incomplete": True,
        "evaluationError": "the cluster's authorizer cannot list its rules",
    }
