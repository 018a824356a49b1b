"""Backing off a key whose reconcile keeps failing, and saying so once.

A poison object (one whose reconcile raises every time) used to be retried every 5 s
forever, with a full traceback each time. Now each consecutive failure doubles the delay
(5 s, 10 s, ... up to 5 minutes) and the traceback is logged for the first failure of a
kind only; a success resets both. Other keys are never delayed by it.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

FIRST_DELAY_S = 5.0
MAX_DELAY_S = 300.0


def backoff_delay(failures: int, first: float = FIRST_DELAY_S, cap: float = MAX_DELAY_S) -> float:
    """Seconds before retrying after ``failures`` consecutive failures (>= 1): ``first``,
    doubling each time, at most ``cap``."""
    doublings = min(max(failures, 1) - 1, 16)
    return min(cap, first * float(2**doublings))


class FailureBackoff:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[Hashable, tuple[int, str]] = {}

    def failed(self, key: Hashable, error: str) -> tuple[float, bool]:
        """(delay before the retry, whether this error is new for the key)."""
        with self._lock:
            count, last = self._failures.get(key, (0, ""))
            self._failures[key] = (count + 1, error)
            return backoff_delay(count + 1), error != last

    def succeeded(self, key: Hashable) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        with self._lock:
            return self._failures.get(key, (0, ""))[0]
