"""The write fence: may this replica act for one Lease right now?

A :class:`Fence` belongs to one Lease. The election adapter *grants* it a term when it
acquires the Lease, *extends* it with every renewal and *revokes* it when it sees another
holder, an invalid Lease or a renewal that failed. Everything that outlives the process
asks it first: every Kubernetes write (``KubeApi.write`` and, closest to the socket,
the API client's connections: ``controller.adapters.kube.fence``), every audit append
(``FencedAuditSink``) and every outbox replay. :meth:`Fence.check` raises
:class:`NotLeaderError` with the reason when the answer is no.

Why a renewal counts from when it was *sent*: a holder that is taken over must have
stopped acting before the new holder starts. The new holder waits a whole lease duration
from when it saw the last renewal, which was written after it was sent; so a fence that
expires ``renew_deadline`` (< lease duration) after the renewal was *sent* has always
expired by then, however slow the answer was or however long the process was frozen.
Stamping at the answer instead (what the official client does) extends the fence by the
response's delay and lets a frozen leader wake up believing it still leads.

The check is one monotonic-clock comparison under a lock: no API round trip per write.

Batches: :meth:`Fence.batch` pins the current term for a unit of work (one reconcile);
a check inside it also fails when leadership was lost and regained in between, so a
reconcile that read the world under one term never writes under the next.

One Fence per Lease: with lanes sharded over several Leases (``runtime.shards``) each
shard has its own Fence, a reconcile runs in a batch of its lane's shard's fence, and
every check made inside it (writes, audit appends, the transport) is that fence's.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

from controller.runtime.ports import NotLeaderError

log = structlog.get_logger("changelane.leader")


@dataclass(frozen=True)
class Term:
    """One uninterrupted stretch of leadership: the Lease's holder and transitions count
    when it began, and a local counter that changes at every (re)acquisition."""

    holder: str
    transitions: int
    epoch: int

    def __str__(self) -> str:
        return f"{self.holder}#{self.transitions}.{self.epoch}"


# The fence (and its term) the current unit of work is pinned to, and the fence whose
# Lease the current election request renews: the transport check (adapters/kube/fence.py)
# holds a request to whichever applies, so one HTTP client serves every shard's fence.
_batch_term: contextvars.ContextVar[tuple[Fence, Term] | None] = contextvars.ContextVar(
    "changelane_batch_term", default=None
)
_renewing: contextvars.ContextVar[Fence | None] = contextvars.ContextVar(
    "changelane_renewing", default=None
)


def batch_fence() -> Fence | None:
    """The fence the current thread's unit of work is pinned to (None: outside a batch)."""
    pinned = _batch_term.get()
    return pinned[0] if pinned is not None else None


def renewing_fence() -> Fence | None:
    """The fence whose Lease the current thread is renewing (None: not renewing)."""
    return _renewing.get()


class Fence:
    """Whether this replica may act for the Lease ``lease`` (``namespace/name``)."""

    def __init__(
        self,
        lease: str,
        renew_deadline: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = lease
        self.renew_deadline = float(renew_deadline)
        self._clock = clock
        self._lock = threading.Lock()
        self._term: Term | None = None
        self._valid_until = 0.0
        self._renewed_at = 0.0
        self._epoch = 0
        self._reason = "not elected yet"
        self._lost_logged = True  # nothing to report before a first term
        # Units of work (batches) running under this fence: a shard handed over on purpose
        # is released only once they are done (see drain).
        self._active = 0
        self._idle = threading.Condition(self._lock)

    # ---- the election adapter's side
    def grant(self, sent_at: float, holder: str, transitions: int, how: str) -> Term:
        """A new term from an acquisition whose request was sent at ``sent_at``."""
        with self._lock:
            self._epoch += 1
            term = Term(holder, transitions, self._epoch)
            self._term = term
            self._renewed_at = sent_at
            self._valid_until = sent_at + self.renew_deadline
            self._reason = ""
            self._lost_logged = False
        log.info("leadership gained", lease=self.lease, term=str(term), reason=how)
        return term

    def extend(self, sent_at: float) -> bool:
        """A renewal sent at ``sent_at`` succeeded; False if the term had already ended."""
        with self._lock:
            if self._term is None or not self._valid_locked():
                return False
            self._renewed_at = max(self._renewed_at, sent_at)
            self._valid_until = self._renewed_at + self.renew_deadline
            return True

    def revoke(self, reason: str) -> None:
        """Stop acting now (idempotent: a term's loss is logged once)."""
        with self._lock:
            self._lose_locked(reason)

    # ---- everyone else's side
    def check(self) -> Term:
        """The current term; :class:`NotLeaderError` (with why) when not acting."""
        with self._lock:
            if self._term is not None and not self._valid_locked():
                age = self._clock() - self._renewed_at
                self._lose_locked(
                    f"no successful renewal sent in the last {self.renew_deadline:g} s "
                    f"(the last one was sent {age:.1f} s ago)"
                )
            term = self._term
            if term is None:
                raise NotLeaderError(f"not the leader ({self.lease}): {self._reason}")
            pinned = _batch_term.get()
            if pinned is not None and pinned[0] is self and pinned[1] != term:
                raise NotLeaderError(
                    f"leadership of {self.lease} changed during this reconcile "
                    f"(began in term {pinned[1]}, now {term})"
                )
            return term

    def held(self) -> bool:
        try:
            self.check()
        except NotLeaderError:
            return False
        return True

    def reason(self) -> str:
        """Why this replica does not act ('' while it does)."""
        self.held()
        with self._lock:
            return self._reason

    def renewed_at(self) -> float:
        """Clock time at which the last successful renewal (or the acquisition) was sent."""
        with self._lock:
            return self._renewed_at

    @contextmanager
    def batch(self) -> Iterator[Term]:
        """Pin the current term for the work inside (raises if not acting now)."""
        term = self.check()
        token = _batch_term.set((self, term))
        with self._lock:
            self._active += 1
        try:
            yield term
        finally:
            _batch_term.reset(token)
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self._idle.notify_all()

    def in_batch(self) -> bool:
        """Whether the current thread is inside one of this fence's batches."""
        return batch_fence() is self

    def drain(self, timeout: float) -> bool:
        """Wait until no batch runs under this fence (revoke it first, so none starts);
        False when one still runs after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._active > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.1))
            return True

    @contextmanager
    def renewal(self) -> Iterator[None]:
        """The Lease write inside renews this term: the transport check (see
        :func:`fence_requests`) holds it to the fence too, so a leader frozen just before
        renewing does not send its renewal after a takeover."""
        token = _renewing.set(self)
        try:
            yield
        finally:
            _renewing.reset(token)

    # ---- internals (hold self._lock)
    def _valid_locked(self) -> bool:
        return self._clock() < self._valid_until

    def _lose_locked(self, reason: str) -> None:
        term = self._term
        self._term = None
        self._valid_until = 0.0
        if not self._lost_logged:
            self._lost_logged = True
            self._reason = reason
            log.warning("leadership lost", lease=self.lease, term=str(term), reason=reason)
        elif term is None and reason:
            self._reason = reason
