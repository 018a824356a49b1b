"""Watch streams: a watcher is a bounded queue of serialized events fed by the store."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controller.sim.selectors import FieldSelector, LabelSelector

if TYPE_CHECKING:
    from controller.sim.objects import Stored

#: a watcher that falls this far behind is closed, as the apiserver closes slow watchers
MAX_PENDING_EVENTS = 50_000


@dataclass(eq=False)
class Watcher:
    """One watch request: which objects it wants and the event lines not yet sent."""

    type_key: str
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    #: turns (event type, stored object) into the JSON line sent to the client
    render: Callable[[str, Stored], bytes] = field(repr=False)
    _pending: deque[bytes] = field(default_factory=deque, repr=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    closed: bool = False
    #: set when the store dropped the watcher (fault injection, slow consumer, shutdown)
    dropped: bool = False

    def push(self, line: bytes) -> None:
        with self._cond:
            if self.closed:
                return
            if len(self._pending) >= MAX_PENDING_EVENTS:
                self.closed = True
                self.dropped = True
            else:
                self._pending.append(line)
            self._cond.notify()

    def close(self, *, dropped: bool = False) -> None:
        with self._cond:
            self.closed = True
            self.dropped = self.dropped or dropped
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return not self._pending

    def take(self, timeout: float) -> list[bytes] | None:
        """Pending lines (possibly empty after ``timeout``); None once closed and drained."""
        with self._cond:
            if not self._pending and not self.closed:
                self._cond.wait(timeout)
            if self._pending:
                lines = list(self._pending)
                self._pending.clear()
                return lines
            return None if self.closed else []
