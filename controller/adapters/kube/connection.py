"""The runtime's ``ClusterConnection`` port on one official-client ``ApiClient``: the
fenced ``KubeApi``, ``SharedInformer``-backed informers and ``LeaseLock`` leader election."""

from __future__ import annotations

from collections.abc import Callable

from kubernetes import client

from controller.adapters.kube.api import KubeApi
from controller.adapters.kube.fence import fence_requests, lease_path
from controller.adapters.kube.informer import KubeInformer
from controller.adapters.kube.leader import Leadership
from controller.adapters.kube.members import Membership
from controller.core.lease import LeaseReading
from controller.runtime.fence import Fence
from controller.runtime.ports import LeaseFence


class KubeConnection:
    def __init__(
        self,
        api_client: client.ApiClient,
        api_factory: Callable[[client.ApiClient, LeaseFence | None], KubeApi] = KubeApi,
    ) -> None:
        self.api_client = api_client
        self._api_factory = api_factory
        self._api: KubeApi | None = None

    def cluster(self, fence: LeaseFence | None) -> KubeApi:
        if fence is not None:
            # Also the writers that bypass KubeApi (the flag writer) share this client.
            fence_requests(self.api_client, fence, lease_path(fence))
        self._api = self._api_factory(self.api_client, fence)
        return self._api

    def informer(self, kind: str, watch_timeout: float, resync_seconds: int) -> KubeInformer:
        # Informers only read: an unfenced client of the same connection.
        api = self._api or KubeApi(self.api_client)
        return KubeInformer(api, kind, watch_timeout, resync_seconds)

    def elector(
        self,
        namespace: str,
        identity: str,
        name: str,
        lease_duration: int,
        renew_deadline: int,
        retry_period: int,
        on_started: Callable[[], None],
        fence: Fence | None = None,
        defer: Callable[[LeaseReading], float] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> Leadership:
        return Leadership(
            self.api_client,
            namespace,
            identity,
            name=name,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            on_started=on_started,
            fence=fence,
            defer=defer,
            annotations=annotations,
        )

    def members(
        self,
        namespace: str,
        identity: str,
        prefix: str,
        lease_duration: float,
        scheme: Callable[[str, str, dict[str, str]], bool],
    ) -> Membership:
        """Who is alive, for spreading shards (``--shards``): member Leases; and whether
        Leases of another sharding scheme (``scheme``) are alive."""
        return Membership(self.api_client, namespace, identity, prefix, lease_duration, scheme)
