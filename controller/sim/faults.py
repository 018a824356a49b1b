"""Fault injection for reliability tests: errors, delays, dropped watches, compaction.

Rules are checked in order for every API request (admin endpoints excepted); the first
matching error rule that fires answers the request with its status code. Delays add up.
``share`` is drawn from a seeded generator, so a test run is reproducible.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from controller.sim.errors import ApiError, internal_error, too_many_requests

JsonDict = dict[str, Any]

VERBS = frozenset(
    {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
)


@dataclass
class FaultRule:
    """One fault: ``error`` (answer ``status``) or ``delay`` (sleep ``seconds`` first)."""

    kind: str
    status: int = 500
    seconds: float = 0.0
    share: float = 1.0
    verbs: frozenset[str] = frozenset()
    path: re.Pattern[str] | None = None
    #: fire at most this many times (None: unlimited)
    times: int | None = None
    hits: int = 0

    def applies(self, verb: str, path: str) -> bool:
        if self.verbs and verb not in self.verbs:
            return False
        if self.path is not None and not self.path.search(path):
            return False
        return self.times is None or self.hits < self.times

    def as_dict(self) -> JsonDict:
        return {
            "kind": self.kind,
            "status": self.status,
            "seconds": self.seconds,
            "share": self.share,
            "verbs": sorted(self.verbs),
            "path": self.path.pattern if self.path else None,
            "times": self.times,
            "hits": self.hits,
        }


def _error_for(status: int) -> ApiError:
    if status == 429:
        return too_many_requests()
    if status == 500:
        return internal_error("injected fault")
    if status == 503:
        return ApiError(
            503, "ServiceUnavailable", "the server is currently unable to handle the request"
        )
    if status == 504:
        return ApiError(
            504, "Timeout", "the server was unable to return a response in the time allotted"
        )
    return ApiError(status, "InternalError", f"injected fault {status}")


@dataclass
class Faults:
    """The fault plan of one simulated cluster (thread-safe)."""

    seed: int = 0
    drop_watches_hook: Callable[[], int] = field(default=lambda: 0, repr=False)
    compact_hook: Callable[[], int] = field(default=lambda: 0, repr=False)
    #: when set, every watch stream ends after this many seconds (a flaky load balancer)
    watch_lifetime_seconds: float | None = None
    rules: list[FaultRule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # reproducible draws for tests, not security: a seeded PRNG is the point
        self._random = random.Random(self.seed)  # noqa: S311

    def fail(
        self,
        status: int = 500,
        *,
        share: float = 1.0,
        verbs: Iterable[str] = (),
        path: str | None = None,
        times: int | None = None,
    ) -> FaultRule:
        """Answer ``status`` (500, 429, 503, ...) to ``share`` of matching requests."""
        return self._add(
            FaultRule(
                "error",
                status=status,
                share=share,
                verbs=_verbs(verbs),
                path=re.compile(path) if path else None,
                times=times,
            )
        )

    def delay(
        self,
        seconds: float,
        *,
        share: float = 1.0,
        verbs: Iterable[str] = (),
        path: str | None = None,
        times: int | None = None,
    ) -> FaultRule:
        """Hold ``share`` of matching requests for ``seconds`` before answering."""
        return self._add(
            FaultRule(
                "delay",
                seconds=seconds,
                share=share,
                verbs=_verbs(verbs),
                path=re.compile(path) if path else None,
                times=times,
            )
        )

    def drop_watches(self) -> int:
        """End every open watch stream now; returns how many were dropped."""
        return self.drop_watches_hook()

    def compact(self) -> int:
        """Forget the event history: watches resuming from any older resourceVersion get 410."""
        return self.compact_hook()

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.watch_lifetime_seconds = None

    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            if rule in self.rules:
                self.rules.remove(rule)

    def check(self, verb: str, path: str) -> tuple[float, ApiError | None]:
        """(seconds to delay, error to answer) for one request."""
        delay = 0.0
        with self._lock:
            for rule in self.rules:
                if not rule.applies(verb, path) or self._random.random() >= rule.share:
                    continue
                rule.hits += 1
                if rule.kind == "delay":
                    delay += rule.seconds
                else:
                    return delay, _error_for(rule.status)
        return delay, None

    def snapshot(self) -> JsonDict:
        with self._lock:
            return {
                "rules": [r.as_dict() for r in self.rules],
                "watchLifetimeSeconds": self.watch_lifetime_seconds,
            }

    def configure(self, body: JsonDict) -> FaultRule | None:
        """Add a rule from the admin endpoint's JSON (``{"kind": "error", "status": 500, ...}``)."""
        if "watchLifetimeSeconds" in body:
            value = body["watchLifetimeSeconds"]
            self.watch_lifetime_seconds = float(value) if value is not None else None
            return None
        kind = body.get("kind", "error")
        common: JsonDict = {
            "share": float(body.get("share", 1.0)),
            "verbs": body.get("verbs") or (),
            "path": body.get("path"),
            "times": body.get("times"),
        }
        if kind == "error":
            return self.fail(int(body.get("status", 500)), **common)
        if kind == "delay":
            return self.delay(float(body.get("seconds", 0.0)), **common)
        raise ValueError(f"kind: expected 'error' or 'delay', got {kind!r}")

    def _add(self, rule: FaultRule) -> FaultRule:
        if not 0.0 <= rule.share <= 1.0:
            raise ValueError(f"share: expected a fraction between 0 and 1, got {rule.share}")
        with self._lock:
            self.rules.append(rule)
        return rule


def _verbs(verbs: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(v.lower() for v in verbs)
    unknown = chosen - VERBS
    if unknown:
        raise ValueError(f"verbs: unknown {sorted(unknown)}; expected some of {sorted(VERBS)}")
    return chosen
