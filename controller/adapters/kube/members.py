"""Which replicas are alive, for spreading shards (and whether Leases of another sharding
scheme are): each replica renews a member Lease of its own
(``<prefix>-member-<identity>``, labelled ``changelane.dev/member``), the way
kube-apiserver instances announce themselves with identity Leases.

Membership decides balance, never safety: who may act for a shard is decided by the
shard's own Lease. A member counts as alive while its Lease keeps changing, as observed
by this replica's monotonic clock (never the other replica's wall clock): a replica that
stopped renewing drops out one lease duration after its last change was seen. A member
Lease nobody renewed for ``forget_after_s`` is deleted (a replica killed without a
graceful stop leaves one behind); a graceful stop deletes its own.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.adapters.kube.client import REQUEST_TIMEOUT

log = structlog.get_logger("changelane.shards")

MEMBER_LABEL = "changelane.dev/member"
FORGET_AFTER_S = 600.0


def member_lease_name(prefix: str, identity: str) -> str:
    """A valid Lease name for the member ``identity`` (DNS subdomain, at most 253)."""
    slug = re.sub(r"[^a-z0-9.-]+", "-", identity.lower()).strip("-.") or "replica"
    return f"{prefix}-member-{slug}"[:253].rstrip("-.")


@dataclass(frozen=True)
class MemberView:
    live: set[str]
    #: Live Leases held under another sharding scheme (see core.sharding.other_scheme).
    foreign: list[str]
    #: When the list this view comes from was sent (monotonic).
    sent_at: float


class Membership:
    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        identity: str,
        prefix: str,
        lease_duration: float,
        scheme: Callable[[str, str, dict[str, str]], bool] = lambda *_: False,
        forget_after_s: float = FORGET_AFTER_S,
    ) -> None:
        self.namespace, self.identity, self.prefix = namespace, identity, prefix
        self.lease_duration = float(lease_duration)
        self.forget_after_s = forget_after_s
        self.name = member_lease_name(prefix, identity)
        self._api: Any = client.CoordinationV1Api(api_client)
        # Lease name -> (holder, resourceVersion, monotonic time that version was first seen)
        self._seen: dict[str, tuple[str, str, float]] = {}
        self._last_live: set[str] = set()
        self._error = ""
        #: Is a Lease (name, holder, annotations) one of another sharding scheme?
        self.scheme = scheme

    def beat(self) -> None:
        """Renew (or create) this replica's member Lease; errors are logged once each."""
        now = datetime.now(UTC)
        try:
            try:
                lease = self._api.read_namespaced_lease(
                    self.name, self.namespace, _request_timeout=REQUEST_TIMEOUT
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self._api.create_namespaced_lease(
                    self.namespace, self._body(now), _request_timeout=REQUEST_TIMEOUT
                )
            else:
                lease.spec.holder_identity = self.identity
                lease.spec.renew_time = now
                lease.spec.lease_duration_seconds = max(1, round(self.lease_duration))
                self._api.replace_namespaced_lease(
                    self.name, self.namespace, lease, _request_timeout=REQUEST_TIMEOUT
                )
            self._error = ""
        except Exception as exc:  # the next beat retries; membership only steers balance
            self._failed(f"cannot renew member Lease {self.name}: {exc}")

    def observe(self) -> MemberView:
        """One list of the namespace's Leases: the live members (ours included) and the
        live Leases of another sharding scheme (:func:`other_scheme`), each alive while it
        keeps changing (and on first sight: unknown counts as alive)."""
        sent = time.monotonic()
        try:
            listed = self._api.list_namespaced_lease(
                self.namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except Exception as exc:
            self._failed(f"cannot list Leases: {exc}")
            return MemberView(self._last_live | {self.identity}, ["(Leases unreadable)"], sent)
        at = time.monotonic()
        current: dict[str, tuple[str, str, float]] = {}
        alive, foreign = {self.identity}, []
        for lease in listed.items:
            name = str(lease.metadata.name)
            holder = (lease.spec.holder_identity if lease.spec else None) or ""
            version = lease.metadata.resource_version or ""
            before = self._seen.get(name)
            since = before[2] if before is not None and before[1] == version else at
            current[name] = (holder, version, since)
            live = bool(holder) and at - since < self.lease_duration
            labels = lease.metadata.labels or {}
            if labels.get(MEMBER_LABEL) == self.prefix:
                if live:
                    alive.add(holder)
                elif at - since >= self.forget_after_s and name != self.name:
                    self._forget(name)
            elif live and self.scheme(name, holder, lease.metadata.annotations or {}):
                foreign.append(f"{name} (held by {holder})")
        self._seen = current
        self._last_live = alive
        return MemberView(alive, foreign, sent)

    def leave(self) -> None:
        """Delete this replica's member Lease (a graceful stop): the others rebalance now."""
        try:
            self._api.delete_namespaced_lease(
                self.name, self.namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except Exception as exc:  # it then simply stops changing
            log.warning("could not delete the member Lease", lease=self.name, error=str(exc)[:300])

    def _forget(self, name: str) -> None:
        try:
            self._api.delete_namespaced_lease(
                name, self.namespace, _request_timeout=REQUEST_TIMEOUT
            )
            log.info("stale member Lease deleted", lease=name)
        except Exception as exc:
            self._failed(f"cannot delete stale member Lease {name}: {exc}")

    def _body(self, now: datetime) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {MEMBER_LABEL: self.prefix},
            },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.lease_duration)),
                "acquireTime": now.isoformat().replace("+00:00", "Z"),
                "renewTime": now.isoformat().replace("+00:00", "Z"),
            },
        }

    def _failed(self, why: str) -> None:
        if why != self._error:
            self._error = why
            log.warning("shard membership", error=why[:300])
