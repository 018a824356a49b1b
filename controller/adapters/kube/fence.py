"""The write fence at the Kubernetes client's transport: every mutating request checks the
Lease's :class:`~controller.runtime.fence.Fence` in the HTTP connection's ``send``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from controller.runtime.fence import Fence, _renewing
from controller.runtime.ports import NotLeaderError

__all__ = ["Fence", "NotLeaderError", "fence_requests", "lease_path"]


def lease_path(fence: Fence) -> str:
    """The API path of the fence's Lease (``namespace/name``)."""
    namespace, _, name = fence.lease.partition("/")
    return f"/namespaces/{namespace}/leases/{name}"


_MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _Gate:
    """Which requests must pass the fence: every mutating one sent from a reconcile
    (:meth:`Fence.batch`) but the election's own (its Lease, or creating it), and the
    election's renewals (:meth:`Fence.renewal`). Requests from outside the controller's
    work (a test or the demo writing through the same client) are not its to fence."""

    def __init__(self, fence: Fence, lease_path: str) -> None:
        self.fence = fence
        self.check = fence.check
        self.lease_path = lease_path
        self.collection = lease_path.rsplit("/", 1)[0]

    def needed(self, method: str, url: str) -> bool:
        method = method.upper()
        if method not in _MUTATING_METHODS:
            return False
        path = urlsplit(url).path
        election = path.endswith(self.lease_path) or (
            method == "POST" and path.endswith(self.collection)
        )
        return _renewing.get() or (not election and self.fence.in_batch())


def _fenced_connection(base: type[Any], gate: _Gate) -> type[Any]:
    class FencedConnection(base):  # type: ignore[misc]
        """Checks the fence in ``send``, just before a request's bytes leave.

        urllib3 sends the request line and headers, then the body, in two system calls;
        a process frozen between them would deliver the body (and so the request) late.
        A fenced request's headers are therefore held back and sent with its body, in
        one call, right after the check."""

        _fence_pending = False
        _holding = False
        _held = b""

        def request(self, method: str, url: str, body: Any = None, *args: Any, **kw: Any) -> Any:
            self._fence_pending = gate.needed(method, url)
            self._holding = self._fence_pending and isinstance(body, bytes | str) and bool(body)
            try:
                return super().request(method, url, body, *args, **kw)
            finally:
                self._fence_pending = self._holding = False
                self._held = b""

        def send(self, data: Any) -> None:
            if self._holding:  # the request line and headers: wait for the body
                self._holding = False
                self._held = bytes(data)
                return
            if self._held:
                data, self._held = self._held + bytes(data), b""
            if self._fence_pending:
                self._fence_pending = False
                gate.check()  # raises NotLeaderError: nothing of the request was sent
            super().send(data)

    return FencedConnection


def fence_requests(api_client: Any, fence: Fence, lease_path: str) -> None:
    """Make every mutating request ``api_client`` sends from a reconcile (a
    :meth:`Fence.batch`) pass ``fence`` first, and the election's renewals of its Lease at
    ``lease_path`` (:meth:`Fence.renewal`); its other Lease requests are exempt.

    The check sits in the HTTP connection's ``send``, right before the request line and
    headers leave the process: the last moment a client can still decide not to write.
    It covers writers that do not go through ``KubeApi.write`` (the flag writer's
    ConfigMap and FeatureFlag updates) and leaves the shortest window between the check
    and the bytes on the wire, in which a frozen process could still write late."""
    manager = api_client.rest_client.pool_manager
    if getattr(manager, "_changelane_fenced", False):
        return
    gate = _Gate(fence, lease_path)
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
