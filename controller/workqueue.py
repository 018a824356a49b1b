"""A keyed work queue with de-duplication and delayed requeue, after client-go's. The
one queue of the package: the controller's workers and the simulated cluster's controllers
both use it.

- A key queued twice is processed once.
- A key is never handed to two workers at once; if it is added while being processed,
  it is queued again when the worker calls ``done``.
- ``add_after`` schedules a key for later (the next analysis tick); an earlier schedule
  for the same key wins.
- ``add(key, urgent=True)`` puts a key in a lane served before the others (a release
  with a measurement waiting must not queue behind a burst of 10,000 Deployment keys),
  as controller-runtime's priority queue serves event-driven keys before a resync's. A
  key already waiting in the ordinary lane moves up; the urgent lane is FIFO too.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class ShutDownError(Exception):
    """The queue was shut down; the worker should exit."""


class WorkQueue(Generic[K]):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        # Two FIFO lanes; ``_queued`` says which lane a waiting key is in. A key moved up
        # to the urgent lane leaves a stale entry behind in the ordinary one, skipped when
        # popped (removing it from the middle of a deque would cost O(n)).
        self._urgent: deque[K] = deque()
        self._queue: deque[K] = deque()
        self._queued: dict[K, bool] = {}
        self._processing: set[K] = set()
        self._dirty: dict[K, bool] = {}
        self._delayed: list[tuple[float, int, K]] = []
        self._delayed_at: dict[K, float] = {}
        self._seq = itertools.count()
        self._shutdown = False

    def depth(self) -> int:
        """Keys ready and waiting for a worker (not the delayed ones), as client-go's."""
        with self._cond:
            return len(self._queued)

    def add(self, key: K, urgent: bool = False) -> None:
        with self._cond:
            self._add_locked(key, urgent)

    def _add_locked(self, key: K, urgent: bool = False) -> None:
        if self._shutdown:
            return
        self._delayed_at.pop(key, None)
        if key in self._processing:
            self._dirty[key] = urgent or self._dirty.get(key, False)
            return
        queued_urgent = self._queued.get(key)
        if queued_urgent is None:
            self._queued[key] = urgent
            (self._urgent if urgent else self._queue).append(key)
            self._cond.notify()
        elif urgent and not queued_urgent:
            self._queued[key] = True  # moves up; its ordinary entry goes stale
            self._urgent.append(key)

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            at = self._clock() + delay
            current = self._delayed_at.get(key)
            if current is not None and current <= at:
                return
            self._delayed_at[key] = at
            heapq.heappush(self._delayed, (at, next(self._seq), key))
            self._cond.notify()

    def _promote_due_locked(self) -> float | None:
        """Move due delayed keys to the queue; seconds until the next one is due."""
        now = self._clock()
        while self._delayed:
            at, _, key = self._delayed[0]
            if self._delayed_at.get(key) != at:
                heapq.heappop(self._delayed)  # superseded by an earlier or immediate add
                continue
            if at > now:
                return at - now
            heapq.heappop(self._delayed)
            del self._delayed_at[key]
            self._add_locked(key)
        return None

    def get(self, timeout: float | None = None) -> K | None:
        """The next key to process, or None after ``timeout``. Raises ShutDownError."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                if self._shutdown:
                    raise ShutDownError
                wait = self._promote_due_locked()
                key = self._pop_locked()
                if key is not None:
                    self._processing.add(key)
                    return key
                if deadline is not None:
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        return None
                    wait = remaining if wait is None else min(wait, remaining)
                self._cond.wait(timeout=wait)

    def _pop_locked(self) -> K | None:
        """The next waiting key, urgent lane first; stale entries are dropped on the way."""
        for lane, urgent in ((self._urgent, True), (self._queue, False)):
            while lane:
                key = lane.popleft()
                if self._queued.get(key) is urgent:
                    del self._queued[key]
                    return key
        return None

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._add_locked(key, self._dirty.pop(key))

    def __len__(self) -> int:
        with self._cond:
            return len(self._queued) + len(self._delayed_at)

    def shut_down(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()
