"""One audit chain per shard: a shard's records continue that shard's chain, whoever owns
it (``--shards`` > 1; one shard is the single chain of ``runtime.audit_chain``).

Replicas that own different shards append at the same time; one chain across them would
need a lock across replicas. Instead each shard has its own file on this replica's volume
(``audit-shard-<i>.jsonl`` beside ``--audit-log``) and its own anchored head (ConfigMap
``<anchor>-shard-<i>``); a new owner continues the shard's chain from that head exactly
as a new leader continues the single chain. ``changelane audit verify`` checks each
shard's file against its anchor (``--anchor <anchor>-shard-<i>``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from controller.adapters.audit.anchor import AuditAnchor
from controller.adapters.audit.log import FsyncPolicy
from controller.core.audit import AuditRecord
from controller.runtime.audit_chain import AnchoredAuditLog
from controller.runtime.fence import batch_fence
from controller.runtime.ports import NotLeaderError
from controller.runtime.shards import ShardSet


def shard_audit_path(path: Path, shard: int) -> Path:
    return path.with_name(f"{path.stem}-shard-{shard}{path.suffix}")


def shard_anchor_name(anchor: str, shard: int) -> str:
    return f"{anchor}-shard-{shard}"


class ShardedAuditLog:
    def __init__(
        self,
        path: Path,
        fsync: FsyncPolicy,
        anchor: Callable[[int], AuditAnchor],
        instance: str,
        shards: ShardSet,
    ) -> None:
        self.shards = shards
        self.path = path
        self._logs = [
            AnchoredAuditLog(shard_audit_path(path, i), fsync, anchor(i), instance)
            for i in range(shards.settings.shards)
        ]
        self._lock = threading.Lock()

    def emit(self, record: AuditRecord) -> None:
        shard = self.shards.shard_index(batch_fence())
        if shard is None:  # the fenced sink refuses first; this is the belt to its braces
            raise NotLeaderError("an audit record outside a shard's work has no chain")
        self._logs[shard].emit(record)

    @property
    def appended(self) -> int:
        """Lines appended to every shard's chain (a record already in one adds none)."""
        return sum(chain.appended for chain in self._logs)

    def close_unheld(self) -> None:
        """Close the chains of shards this replica no longer owns (their next owner opens
        them on its volume; with a shared volume, the file's lock is free for it)."""
        held = set(self.shards.held())
        for i, chain in enumerate(self._logs):
            if i not in held:
                chain.close()

    def close(self) -> None:
        for chain in self._logs:
            chain.close()
