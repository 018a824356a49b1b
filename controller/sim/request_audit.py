"""Who asked the simulated cluster for what, in Kubernetes authorization terms.

``request_attributes`` resolves a request the way the API server's ``RequestInfoFactory``
does before RBAC sees it: the verb (get/list/watch/create/update/patch/delete/
deletecollection), API group, resource, subresource, namespace and name, or a
non-resource URL. Resolution happens before routing, so a request that then fails
(404, 409) is recorded too: RBAC authorizes it all the same.

Recording is off by default and costs nothing then; attach a hook with
``SimCluster.record_requests()`` (or ``add_request_hook``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

#: What an unauthenticated request is, as the API server names it.
ANONYMOUS = "system:anonymous"
# /api/v1/namespaces/{name}/{status|finalize} is the namespace's own subresource.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True)
class ApiRequest:
    """One request the API served, with the attributes an RBAC authorizer decides on."""

    user: str
    user_agent: str
    method: str
    path: str
    verb: str
    resource_request: bool
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def rbac_resource(self) -> str:
        """``resource`` or ``resource/subresource``, as RBAC rules spell it."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def request_attributes(
    method: str, path: str, query: dict[str, str], *, user: str, user_agent: str
) -> ApiRequest:
    """The authorizer's view of ``method path?query`` (``path`` already unquoted)."""
    segments = [s for s in path.split("/") if s]
    base = ApiRequest(user, user_agent, method, path, method.lower(), False)
    if not segments or segments[0] not in {"api", "apis"}:
        return base
    if segments[0] == "api":
        if len(segments) < 2:
            return base
        group, version, rest = "", segments[1], segments[2:]
    else:
        if len(segments) < 3:
            return base  # discovery of /apis and /apis/{group}: non-resource
        group, version, rest = segments[1], segments[2], segments[3:]
    if not rest:
        return base  # discovery of one group version
    watch_prefix = rest[0] == "watch"
    if watch_prefix:
        rest = rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces":
        if len(rest) >= 2:
            namespace = rest[1]
        # .../namespaces/{name}[/status|/finalize] is the Namespace object itself
        if len(rest) >= 3 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    if not rest:
        return base
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = "/".join(rest[2:])
    verb = _verb(method, bool(name), watch_prefix or _truthy(query.get("watch")))
    return ApiRequest(
        user,
        user_agent,
        method,
        path,
        verb,
        True,
        api_group=group,
        api_version=version,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )


def _verb(method: str, named: bool, watch: bool) -> str:
    if method in {"GET", "HEAD"}:
        if watch:
            return "watch"
        return "get" if named else "list"
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in {"1", "true", "yes"}


class RequestLog:
    """A thread-safe list of the requests served while it was attached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[ApiRequest] = []

    def __call__(self, request: ApiRequest) -> None:
        with self._lock:
            self._items.append(request)

    def __iter__(self) -> Iterator[ApiRequest]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def snapshot(self) -> list[ApiRequest]:
        with self._lock:
            return list(self._items)

    def by(self, user: str) -> list[ApiRequest]:
        return [r for r in self.snapshot() if r.user == user]


RequestHook = Callable[[ApiRequest], None]
#: True allows the request; False answers it 403 Forbidden, as RBAC would.
Authorizer = Callable[[ApiRequest], bool]
