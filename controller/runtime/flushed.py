"""The outboxes this process flushed and left for the release's next status write to
clear (``core.outbox``): their records are not flushed again.

Kept per release (the latest such outbox only: the next status write replaces it), so it
is bounded by the releases this process acts for. In memory on purpose: a restarted or new
owner knows nothing of it and replays the outbox, and the sinks drop the ids they already
have (the local audit log's recent ids, the anchor's per-release marks).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from controller.core.audit import AuditRecord

#: Releases remembered at most; an older one forgotten is replayed (the sinks dedupe).
REMEMBERED_RELEASES = 20_000


class FlushedOutboxes:
    def __init__(self, limit: int = REMEMBERED_RELEASES) -> None:
        self._ids: OrderedDict[tuple[str, str], frozenset[str]] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()  # two workers, two releases at once

    def remember(self, namespace: str, name: str, records: Sequence[AuditRecord]) -> None:
        ids = frozenset(r.id for r in records if r.id is not None)
        if len(ids) != len(records):
            return  # a record without an id cannot be told apart: it is replayed
        with self._lock:
            self._ids[(namespace, name)] = ids
            self._ids.move_to_end((namespace, name))
            while len(self._ids) > self._limit:
                self._ids.popitem(last=False)

    def holds(self, namespace: str, name: str, records: Sequence[AuditRecord]) -> bool:
        """True when this process flushed every one of ``records`` already."""
        with self._lock:
            ids = self._ids.get((namespace, name))
        return ids is not None and all(r.id is not None and r.id in ids for r in records)

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._ids.pop((namespace, name), None)
