"""The audit chain's head, anchored in the cluster: a ConfigMap the leader updates (fenced
by its leadership, like every write) after each record it appends.

A new leader reads it before its first append and continues the chain from there, so the
records of every leadership term form one chain even though each term writes to its own
pod's volume. ``changelane audit verify --cluster`` compares the chain's end with it: a
chain cut short, or records nobody anchored, are reported.
"""

from __future__ import annotations

from datetime import UTC, datetime

from controller.adapters.audit.segments import ANCHOR_NAME, Head
from controller.adapters.kube.api import ConflictError, KubeApi, NotFoundError, call

DEFAULT_NAME = ANCHOR_NAME


class AuditAnchor:
    def __init__(self, api: KubeApi, namespace: str, name: str = DEFAULT_NAME) -> None:
        self.api, self.namespace, self.name = api, namespace, name

    def read(self) -> Head | None:
        try:
            cm = call(self.api.core.read_namespaced_config_map, self.name, self.namespace)
        except NotFoundError:
            return None
        return head_of(cm)

    def write(self, head: Head, instance: str) -> None:
        """Set the anchored head (fenced: a replica that no longer leads is refused)."""
        data = {
            "seq": str(head.seq),
            "hash": head.hash,
            "instance": instance,
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        metadata: dict[str, str] = {"name": self.name, "namespace": self.namespace}
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
        try:
            current = call(self.api.core.read_namespaced_config_map, self.name, self.namespace)
        except NotFoundError:
            try:
                self.api.write(
                    "create audit anchor",
                    self.api.core.create_namespaced_config_map,
                    self.namespace,
                    body,
                )
                return
            except ConflictError:
                current = call(self.api.core.read_namespaced_config_map, self.name, self.namespace)
        anchored = head_of(current)
        if anchored is not None and anchored.seq > head.seq:
            raise AnchorAheadError(
                f"audit anchor {self.namespace}/{self.name} is at seq {anchored.seq}, ahead of "
                f"this log's seq {head.seq}: another leader appended since"
            )
        metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
        self.api.write(
            "update audit anchor",
            self.api.core.replace_namespaced_config_map,
            self.name,
            self.namespace,
            body,
        )


class AnchorAheadError(Exception):
    pass


def head_of(cm: dict[str, object]) -> Head | None:
    data = cm.get("data") if isinstance(cm, dict) else None
    if not isinstance(data, dict):
        return None
    seq, digest = data.get("seq"), data.get("hash")
    if not (isinstance(seq, str) and seq.isdigit() and isinstance(digest, str)):
        return None
    return Head(int(seq), digest)
