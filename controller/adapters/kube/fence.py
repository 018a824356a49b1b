"""The write fence at the Kubernetes client's transport: every mutating request checks the
Lease's :class:`~controller.runtime.fence.Fence` in the HTTP connection's ``send``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from controller.runtime.fence import Fence, batch_fence, renewing_fence
from controller.runtime.ports import LeaseFence, NotLeaderError

__all__ = ["Fence", "NotLeaderError", "fence_requests", "lease_path"]


def lease_path(fence: LeaseFence) -> str:
    """The API path of the fence's Lease (``namespace/name``)."""
    namespace, _, name = fence.lease.partition("/")
    return f"/namespaces/{namespace}/leases/{name}"


_MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _Gate:
    """Which requests must pass a fence, and which one: every mutating request sent from a
    reconcile (a :meth:`Fence.batch`: that batch's fence, so each shard's work is held to
    its own Lease) but the election's own (Lease requests), and the election's renewals
    (:meth:`Fence.renewal`: the renewed Lease's fence). Requests from outside the
    controller's work (a test or the demo writing through the same client) are not its to
    fence."""

    def __init__(self, lease_path: str) -> None:
        self.collection = lease_path.rsplit("/", 1)[0]

    def fence_for(self, method: str, url: str) -> Fence | None:
        if method.upper() not in _MUTATING_METHODS:
            return None
        renewing = renewing_fence()
        if renewing is not None:
            return renewing
        path = urlsplit(url).path
        election = path.endswith(self.collection) or f"{self.collection}/" in path
        return None if election else batch_fence()


def _fenced_connection(base: type[Any], gate: _Gate) -> type[Any]:
    class FencedConnection(base):  # type: ignore[misc]
        """Checks the fence in ``send``, just before a request's bytes leave.

        urllib3 sends the request line and headers, then the body, in two system calls;
        a process frozen between them would deliver the body (and so the request) late.
        A fenced request's headers are therefore held back and sent with its body, in
        one call, right after the check."""

        _fence_pending: Fence | None = None
        _holding = False
        _held = b""

        def request(self, method: str, url: str, body: Any = None, *args: Any, **kw: Any) -> Any:
            self._fence_pending = gate.fence_for(method, url)
            pending = self._fence_pending is not None
            self._holding = pending and isinstance(body, bytes | str) and bool(body)
            try:
                return super().request(method, url, body, *args, **kw)
            finally:
                self._fence_pending = None
                self._holding = False
                self._held = b""

        def send(self, data: Any) -> None:
            if self._holding:  # the request line and headers: wait for the body
                self._holding = False
                self._held = bytes(data)
                return
            if self._held:
                data, self._held = self._held + bytes(data), b""
            fence = self._fence_pending
            if fence is not None:
                self._fence_pending = None
                fence.check()  # raises NotLeaderError: nothing of the request was sent
            super().send(data)

    return FencedConnection


def fence_requests(api_client: Any, fence: LeaseFence | None, lease_path: str) -> None:
    """Make every mutating request ``api_client`` sends from a reconcile (a
    :meth:`Fence.batch`) pass that batch's fence first, and the election's renewals
    (:meth:`Fence.renewal`) the renewed Lease's; its other requests to the Leases of
    ``lease_path``'s namespace are exempt (the election's own, and shard membership).
    ``fence`` is not needed any more (each request names its own); kept for callers.

    The check sits in the HTTP connection's ``send``, right before the request line and
    headers leave the process: the last moment a client can still decide not to write.
    It covers writers that do not go through ``KubeApi.write`` (the flag writer's
    ConfigMap and FeatureFlag updates) and leaves the shortest window between the check
    and the bytes on the wire, in which a frozen process could still write late."""
    manager = api_client.rest_client.pool_manager
    if getattr(manager, "_changelane_fenced", False):
        return
    gate = _Gate(lease_path)
    manager.pool_classes_by_scheme = {
        scheme: type(
            f"Fenced{pool.__name__}",
            (pool,),
            {"ConnectionCls": _fenced_connection(pool.ConnectionCls, gate)},
        )
        for scheme, pool in manager.pool_classes_by_scheme.items()
    }
    manager.clear()  # pools made before this point would use unfenced connections
    manager._changelane_fenced = True
