"""The Kubernetes operations the controller performs, on plain dicts.

Every call carries a client-side timeout; connection errors, 429 and 5xx are retried a
few times with jittered backoff (tenacity). A 409 is never retried here: it means our view
was stale, and the reconcile starts again from fresh state.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from controller.adapters.kube.client import REQUEST_TIMEOUT
from controller.core.formatting import api_time
from controller.core.models import API_GROUP, API_VERSION
from controller.core.text import printable
from controller.runtime.ports import (
    ConflictError,
    JsonDict,
    LeaseFence,
    NotFoundError,
    NotLeaderError,
)

__all__ = [
    "ApiError",
    "ConflictError",
    "JsonDict",
    "KubeApi",
    "NotFoundError",
    "NotLeaderError",
    "call",
]

#: An answer of the API server other than 404/409 (``.status``, ``.reason``), after retries.
ApiError = ApiException
T = TypeVar("T")

LANES = "changelanes"
RELEASES = "lanereleases"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ApiException):
        return exc.status in RETRYABLE_STATUS or exc.status == 0
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


_retry = retry(
    retry=retry_if_exception(_retryable),
    stop=stop_after_attempt(4),
    wait=wait_random_exponential(multiplier=0.1, max=2.0),
    reraise=True,
)


def _decode(response: Any) -> JsonDict:
    data: JsonDict = json.loads(response.data or b"{}")
    return data


def call(
    fn: Callable[..., Any],
    *args: Any,
    _before_attempt: Callable[[], None] | None = None,
    **kwargs: Any,
) -> JsonDict:
    """Call a client method raw (no model deserialisation), with timeout and retries.

    ``_before_attempt`` runs before every attempt (the leadership fence), so a retry
    that comes after this instance lost the lease is refused too.
    """

    @_retry
    def attempt() -> JsonDict:
        if _before_attempt is not None:
            _before_attempt()
        try:
            return _decode(
                fn(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
            )
        except ApiException as exc:
            if exc.status == 409:
                raise ConflictError(str(exc.reason)) from exc
            if exc.status == 404:
                raise NotFoundError(str(exc.reason)) from exc
            raise

    return attempt()


def _watch_backoff(failures: int) -> float:
    """Seconds before the informer's next watch attempt: jittered, capped at 5 s."""
    base: float = min(5.0, 0.1 * 2 ** min(failures, 6))
    return base * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not security)


@dataclass
class ListResult:
    """What ``SharedInformer`` expects from a list call: ``.items`` and ``.metadata``."""

    items: list[JsonDict]
    metadata: Any = field(default=None)


@dataclass
class _ListMeta:
    resource_version: str | None
    continue_: str | None = None


def dict_lister(
    fn: Callable[..., Any],
    watch_timeout: float = 90.0,
    on_watch: Callable[[], None] | None = None,
    **fixed: Any,
) -> Any:
    """Wrap a client list method so the informer caches plain dicts.

    The wrapper has no return annotation on purpose: ``kubernetes.watch`` then hands the
    events' objects over as dicts instead of deserialising them into models.
    ``on_watch`` runs before every watch call: the informer only watches once its list
    is in the cache, so the first call says the informer has synced.
    """

    failures = 0

    def list_func(**kwargs: Any):  # type: ignore[no-untyped-def]
        nonlocal failures
        if kwargs.get("watch"):
            if on_watch is not None:
                on_watch()
            # A client-side read timeout beyond the server's watch timeout, so a silently
            # dead connection ends and the informer reconnects from its resourceVersion.
            kwargs.setdefault("_request_timeout", (REQUEST_TIMEOUT[0], watch_timeout))
            try:
                response = fn(**fixed, **kwargs)
            except ApiException as exc:
                if exc.status == 410:
                    raise  # the informer relists at once
                # The informer reconnects at once after a failed watch; back off here so
                # an API server answering 5xx is not hammered in a tight loop.
                failures += 1
                time.sleep(_watch_backoff(failures))
                raise
            except (urllib3.exceptions.HTTPError, OSError):
                failures += 1
                time.sleep(_watch_backoff(failures))
                raise
            status = getattr(response, "status", 200)
            if isinstance(status, int) and not 200 <= status <= 299:
                failures += 1  # the stream raises this as an ApiException; back off first
                time.sleep(_watch_backoff(failures))
            else:
                failures = 0
            return response
        raw = call(fn, **fixed, **kwargs)
        meta = raw.get("metadata") or {}
        return ListResult(
            items=list(raw.get("items") or []),
            metadata=_ListMeta(meta.get("resourceVersion"), meta.get("continue") or None),
        )

    return list_func


#: The controller's name in metadata.managedFields.
FIELD_MANAGER = "changelane"
_MANAGED_WRITES = ("create_", "patch_", "replace_")


class KubeApi:
    """The writes and fresh reads the runtime needs; reads in the hot path use caches.

    Every write goes through :meth:`write`, which checks the Lease's :class:`Fence` before
    every attempt (retries included): an instance that lost the lease cannot write even
    from a reconcile already running. Without a fence (no leader election) it writes.
    """

    def __init__(self, api_client: client.ApiClient, lease_fence: LeaseFence | None = None) -> None:
        self.api_client = api_client
        self.lease_fence = lease_fence
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def fence(self) -> None:
        """Raise ``NotLeaderError`` (saying why) unless this instance may write now."""
        if self.lease_fence is not None:
            self.lease_fence.check()

    def write(self, verb: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> JsonDict:
        """One mutating call (``verb`` names it for logs and tests), fenced by leadership.

        Creates, patches and replaces name the controller as their field manager, so the
        API's managedFields say which fields it owns (a GitOps applier's server-side
        apply then conflicts on them instead of silently fighting; docs/gitops.md)."""
        if getattr(fn, "__name__", "").startswith(_MANAGED_WRITES):
            kwargs.setdefault("field_manager", FIELD_MANAGER)
        return call(fn, *args, _before_attempt=self.fence, **kwargs)

    # ---- listers for informers (``watch_timeout``: client-side read timeout of a watch)
    def lister(
        self, kind: str, watch_timeout: float = 90.0, on_watch: Callable[[], None] | None = None
    ) -> Any:
        """The informer's list/watch function for ``ChangeLane``, ``LaneRelease`` or
        ``Deployment``."""
        if kind == "Deployment":
            deployments = self.apps.list_deployment_for_all_namespaces
            return dict_lister(deployments, watch_timeout, on_watch)
        plural = {"ChangeLane": LANES, "LaneRelease": RELEASES}[kind]
        return dict_lister(
            self.custom.list_cluster_custom_object,
            watch_timeout,
            on_watch,
            group=API_GROUP,
            version=API_VERSION,
            plural=plural,
        )

    # ---- setting a cluster up (the demo and tests)
    def create_namespace(self, body: JsonDict) -> JsonDict:
        return self.write("create namespace", self.core.create_namespace, body)

    def create_config_map(self, namespace: str, body: JsonDict) -> JsonDict:
        return self.write(
            "create configmap", self.core.create_namespaced_config_map, namespace, body
        )

    def create_lane(self, body: JsonDict) -> JsonDict:
        return self.write(
            "create changelane",
            self.custom.create_cluster_custom_object,
            API_GROUP,
            API_VERSION,
            LANES,
            body,
        )

    # ---- deployments
    def get_deployment(self, namespace: str, name: str) -> JsonDict:
        return call(self.apps.read_namespaced_deployment, name, namespace)

    def create_deployment(self, namespace: str, body: JsonDict) -> JsonDict:
        return self.write(
            "create deployment", self.apps.create_namespaced_deployment, namespace, body
        )

    def patch_deployment(self, namespace: str, name: str, patch: JsonDict) -> JsonDict:
        return self.write(
            "patch deployment",
            self.apps.patch_namespaced_deployment,
            name,
            namespace,
            patch,
            _content_type="application/merge-patch+json",
        )

    def list_pods(self, namespace: str, selector: str) -> list[JsonDict]:
        items = call(self.core.list_namespaced_pod, namespace, label_selector=selector)
        return list(items.get("items") or [])

    def list_replica_sets(self, namespace: str, selector: str) -> list[JsonDict]:
        items = call(self.apps.list_namespaced_replica_set, namespace, label_selector=selector)
        return list(items.get("items") or [])

    # ---- lane releases
    def get_release(self, namespace: str, name: str) -> JsonDict:
        return call(
            self.custom.get_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            RELEASES,
            name,
        )

    def create_release(self, namespace: str, body: JsonDict) -> JsonDict:
        return self.write(
            "create lanerelease",
            self.custom.create_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            RELEASES,
            body,
        )

    def delete_release(self, namespace: str, name: str) -> JsonDict:
        return self.write(
            "delete lanerelease",
            self.custom.delete_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            RELEASES,
            name,
        )

    def list_releases(self, namespace: str | None = None) -> list[JsonDict]:
        if namespace:
            raw = call(
                self.custom.list_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                RELEASES,
            )
        else:
            raw = call(self.custom.list_cluster_custom_object, API_GROUP, API_VERSION, RELEASES)
        return list(raw.get("items") or [])

    def list_lanes(self) -> list[JsonDict]:
        raw = call(self.custom.list_cluster_custom_object, API_GROUP, API_VERSION, LANES)
        return list(raw.get("items") or [])

    def patch_release_metadata(self, namespace: str, name: str, metadata: JsonDict) -> JsonDict:
        return self.write(
            "patch lanerelease",
            self.custom.patch_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            RELEASES,
            name,
            {"metadata": metadata},
            _content_type="application/merge-patch+json",
        )

    def patch_release_status(
        self, namespace: str, name: str, status: JsonDict, resource_version: str | None
    ) -> JsonDict:
        """Replace the status; with a resourceVersion, a stale write is a ``ConflictError``."""
        patch: JsonDict = {"status": status}
        if resource_version:
            patch["metadata"] = {"resourceVersion": resource_version}
        return self.write(
            "patch lanerelease/status",
            self.custom.patch_namespaced_custom_object_status,
            API_GROUP,
            API_VERSION,
            namespace,
            RELEASES,
            name,
            patch,
            _content_type="application/merge-patch+json",
        )

    def remove_release_annotation(self, namespace: str, name: str, key: str) -> JsonDict:
        return self.write(
            "patch lanerelease",
            self.custom.patch_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            RELEASES,
            name,
            {"metadata": {"annotations": {key: None}}},
            _content_type="application/merge-patch+json",
        )

    def patch_lane_status(
        self, name: str, status: JsonDict, resource_version: str | None = None
    ) -> JsonDict:
        """Merge ``status``; with a resourceVersion, a stale write is a ``ConflictError``."""
        patch: JsonDict = {"status": status}
        if resource_version:
            patch["metadata"] = {"resourceVersion": resource_version}
        return self.write(
            "patch changelane/status",
            self.custom.patch_cluster_custom_object_status,
            API_GROUP,
            API_VERSION,
            LANES,
            name,
            patch,
            _content_type="application/merge-patch+json",
        )

    def get_lane(self, name: str) -> JsonDict:
        return call(self.custom.get_cluster_custom_object, API_GROUP, API_VERSION, LANES, name)

    # ---- traffic
    def patch_http_route(self, namespace: str, name: str, patch: JsonDict) -> JsonDict:
        return self.write(
            "patch httproute",
            self.custom.patch_namespaced_custom_object,
            "gateway.networking.k8s.io",
            "v1",
            namespace,
            "httproutes",
            name,
            patch,
            _content_type="application/merge-patch+json",
        )

    def get_http_route(self, namespace: str, name: str) -> JsonDict:
        return call(
            self.custom.get_namespaced_custom_object,
            "gateway.networking.k8s.io",
            "v1",
            namespace,
            "httproutes",
            name,
        )

    # ---- events
    def list_events(self, kind: str, namespace: str | None = None) -> list[JsonDict]:
        """Events about objects of ``kind`` (in ``namespace``, or everywhere)."""
        selector = f"involvedObject.kind={kind}"
        if namespace:
            raw = call(self.core.list_namespaced_event, namespace, field_selector=selector)
        else:
            raw = call(self.core.list_event_for_all_namespaces, field_selector=selector)
        return list(raw.get("items") or [])

    def emit_event(
        self,
        involved: JsonDict,
        reason: str,
        message: str,
        event_type: str = "Normal",
        component: str = "changelane",
        annotations: dict[str, str] | None = None,
    ) -> None:
        """``annotations`` carry what the Event's own fields cannot: for a decision, the
        audit record's id, exact time, decision and actor (``changelane audit`` reads them)."""
        meta = involved.get("metadata") or {}
        now = api_time(datetime.now(UTC))
        namespace = meta.get("namespace") or "default"
        metadata: JsonDict = {
            "generateName": f"{meta.get('name', 'changelane')}.",
            "namespace": namespace,
        }
        if annotations:
            metadata["annotations"] = annotations
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": metadata,
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": printable(message[:1024], allow="\n"),
            "type": event_type,
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": component,
        }
        self.write("create event", self.core.create_namespaced_event, namespace, body)
