"""Leader election on a Lease: the official client's ``LeaderElection`` loops and
``LeaseLock`` (read, create, compare-and-swap update), with our own decision of each try.

Only the holder of a valid :class:`~controller.adapters.kube.fence.Fence` acts. What we
replace in the client's ``try_acquire_or_renew``, and why:

- it stamps a renewal when the call *returns*; a renewal answered late (a slow API
  server, or a process frozen while the request was in flight) then extends leadership
  past the moment another replica may take over. We count a renewal from when its read
  was *sent* (:meth:`Fence.extend`), and a renewal answered after the renew deadline
  counts for nothing.
- it keeps leading until its renew loop gives up, even after it saw another holder; we
  stop at once (:meth:`Fence.revoke`) when the Lease names anyone else or is invalid.
- it takes a Lease with a missing field over at once (two leaders when a human blanks a
  field of a live Lease), and measures expiry with the wall clock; we read the Lease with
  the pure rules of :mod:`controller.core.lease` and measure with the monotonic clock.
- it never writes ``spec.leaseTransitions``; we count holder changes there, so each term
  is named by the Lease itself (``holder#transitions``).

The client's ``run``/``acquire``/``renew_loop`` still drive the tries (every retry period;
the renew loop gives up after the renew deadline), and ``LeaseLock`` still does the I/O:
its update replaces the Lease read just before, so the API server refuses (409) a write
based on a record someone else changed in between.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.leaderelectionrecord import LeaderElectionRecord
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from controller.adapters.kube.client import REQUEST_TIMEOUT
from controller.core.lease import (
    LeaseReading,
    LeaseRecord,
    Standing,
    may_take,
    next_transitions,
    read_lease,
)
from controller.runtime.fence import Fence
from controller.runtime.ports import NotLeaderError

log = structlog.get_logger("changelane.leader")


class _TimedCoordinationApi(client.CoordinationV1Api):
    """The lease calls with a client-side timeout (a dead connection cannot hang them);
    remembers the last error, which ``LeaseLock`` swallows into a bare False."""

    last_error: ApiException | None = None
    #: Set on the Lease at every write (sharding records its shard count there).
    annotations: dict[str, str] | None = None

    def _annotate(self, body: Any) -> Any:
        if not self.annotations:
            return body
        meta = body.metadata
        if isinstance(meta, dict):
            meta["annotations"] = {**(meta.get("annotations") or {}), **self.annotations}
        elif meta is not None:
            meta.annotations = {**(meta.annotations or {}), **self.annotations}
        return body

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            self.last_error = exc
            raise
        except Exception as exc:  # connection refused, timeout: as LeaseLock sees an error
            self.last_error = ApiException(status=0, reason=f"{type(exc).__name__}: {exc}")
            raise self.last_error from exc

    def read_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(super().read_namespaced_lease, *args, **kwargs)

    def create_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        args = self._annotated(args, kwargs)
        return self._call(super().create_namespaced_lease, *args, **kwargs)

    def replace_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        args = self._annotated(args, kwargs)
        return self._call(super().replace_namespaced_lease, *args, **kwargs)

    def _annotated(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """The call's body (``body=``, or the last positional argument) annotated."""
        if "body" in kwargs:
            kwargs["body"] = self._annotate(kwargs["body"])
            return args
        return (*args[:-1], self._annotate(args[-1])) if args else args


class _Stopped(Exception):  # noqa: N818 (a signal, not an error)
    """Ends the client's acquire/renew loops, which have no stop of their own."""


class _Lost(Exception):  # noqa: N818 (a signal, not an error)
    """This term is over (the fence is revoked): campaign again from a fresh read."""


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def record_of(lease: Any) -> LeaseRecord:
    """The election fields of a ``V1Lease``."""
    spec = lease.spec
    meta = lease.metadata
    rv = getattr(meta, "resource_version", None) if meta is not None else None
    if spec is None:
        return LeaseRecord(None, None, None, None, None, rv)
    return LeaseRecord(
        holder=spec.holder_identity or None,
        lease_duration_s=spec.lease_duration_seconds,
        acquire_time=_utc(spec.acquire_time),
        renew_time=_utc(spec.renew_time),
        transitions=spec.lease_transitions,
        resource_version=rv,
    )


def _local(moment: datetime) -> str:
    """A time as ``LeaseLock`` wants it in an election record (local, naive)."""
    return str(moment.astimezone().replace(tzinfo=None))


class _Election(leaderelection.LeaderElection):
    def __init__(self, config: Any, leadership: Leadership) -> None:
        super().__init__(config)  # type: ignore[no-untyped-call]
        self._leadership = leadership
        self.leading = False

    def try_acquire_or_renew(self) -> bool:
        return self._leadership._try(self)


class Leadership:
    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        identity: str,
        name: str = "changelane-leader",
        lease_duration: int = 15,
        renew_deadline: int = 10,
        retry_period: int = 2,
        on_started: Callable[[], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
        fence: Fence | None = None,
        defer: Callable[[LeaseReading], float] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        self.identity = identity
        # Sharding: extra seconds a reading must stand unchanged before we take it (a
        # shard that is not ours to prefer), and a hand-over this replica was asked for.
        self._defer = defer
        self._handoff: str | None = None
        self.renew_deadline = float(renew_deadline)
        self.lease_duration = lease_duration
        self.retry_period = float(retry_period)
        self.fence = fence or Fence(f"{namespace}/{name}", renew_deadline)
        self._stop = threading.Event()
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._api = _TimedCoordinationApi(api_client)
        self._api.annotations = annotations
        lock = LeaseLock(name, namespace, identity)
        lock.api_instance = self._api
        self._lock = lock
        self._config = electionconfig.Config(
            lock=lock,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            onstarted_leading=self._started,
            onstopped_leading=self._stopped,
        )
        self._thread: threading.Thread | None = None
        # What this replica saw last, and since when (monotonic), to time expiries.
        self._seen: LeaseRecord | None = None
        self._seen_since = 0.0
        self._reported = ""

    # ---- one try of the client's loops
    def _try(self, election: _Election) -> bool:
        if self._stop.is_set():
            raise _Stopped
        sent = time.monotonic()  # a renewal counts from here, never from its answer
        now = datetime.now(UTC)
        lock = self._lock
        found, got = lock.get(lock.name, lock.namespace)
        if not found and not (isinstance(got, ApiException) and got.status == 404):
            return self._failed(f"cannot read the Lease: {_why(got)}")
        record = record_of(lock.lease_reference) if found else None
        answered = time.monotonic()
        reading = read_lease(record, self.identity, now, self.lease_duration)
        unchanged_for = self._observe(record, answered)
        if election.leading:
            if not reading.acting:
                self.fence.revoke(reading.reason)
                raise _Lost
            if self._handoff is not None:
                self._hand_over(self._handoff)
                raise _Lost
            # Checked last thing before the write: while our term is valid nobody else
            # can have taken the Lease, so this renewal cannot land after a takeover.
            if not self.fence.held():  # our last renewal is older than the renew deadline
                raise _Lost
        else:
            self._report(reading)
            if not may_take(reading, unchanged_for):
                return False
            if self._defer is not None and unchanged_for < self._defer(reading):
                return False
            if time.monotonic() - sent >= self.renew_deadline:
                return False  # the read is too old to take over on (slow answer, a pause)
        try:
            with self.fence.renewal() if election.leading else contextlib.nullcontext():
                written = self._write(record, now)
        except NotLeaderError:
            raise _Lost from None  # the term ran out between the check above and the send
        if not written:
            error = self._api.last_error
            if election.leading and error is not None and error.status == 409:
                self.fence.revoke(f"the Lease changed under our renewal: {_why(error)}")
                raise _Lost
            return self._failed(f"cannot write the Lease: {_why(error)}")
        if election.leading:
            if not self.fence.extend(sent):
                raise _Lost  # answered after the renew deadline: it counts for nothing
            return True
        if time.monotonic() >= sent + self.renew_deadline:
            return False  # acquired, but answered too late to act on; the next try renews
        election.leading = True
        transitions = next_transitions(record, self.identity)
        self.fence.grant(sent, self.identity, transitions, how=f"acquired: {reading.reason}")
        self._reported = ""
        return True

    def _write(self, record: LeaseRecord | None, now: datetime) -> bool:
        lock = self._lock
        acquire = now
        if record is not None and record.holder == self.identity and record.acquire_time:
            acquire = record.acquire_time
        election_record = LeaderElectionRecord(
            self.identity, str(self.lease_duration), _local(acquire), _local(now)
        )
        if record is None:
            return bool(lock.create(lock.name, lock.namespace, election_record))
        reference: Any = lock.lease_reference
        reference.spec.lease_transitions = next_transitions(record, self.identity)
        return bool(lock.update(lock.name, lock.namespace, election_record))

    def _observe(self, record: LeaseRecord | None, at: float) -> float:
        """Seconds this exact record has been seen unchanged (0 when it just changed)."""
        if record != self._seen:
            self._seen, self._seen_since = record, at
        return at - self._seen_since

    def _report(self, reading: LeaseReading) -> None:
        """Say once why this replica is not acting (per distinct reason)."""
        if reading.reason == self._reported or reading.standing is Standing.MINE:
            return
        self._reported = reading.reason
        self.fence.revoke(reading.reason)  # not holding: only records why, for reason()
        if reading.standing is Standing.INVALID:
            log.warning(
                "not acting: the Lease is invalid; nobody acts until it is valid again "
                f"or has stood unchanged for {reading.wait_s:g} s",
                lease=self.fence.lease,
                identity=self.identity,
                reason=reading.reason,
            )
        else:
            log.info(
                "following", lease=self.fence.lease, identity=self.identity, reason=reading.reason
            )

    def _failed(self, why: str) -> bool:
        """A try that could not read or write: the fence runs out on its own at the renew
        deadline (a transient error must not end a term that is still safe)."""
        if why != self._reported:
            self._reported = why
            log.warning("lease try failed", lease=self.fence.lease, error=why[:300])
        return False

    def _hand_over(self, why: str) -> None:
        """Give the Lease up on purpose: stop acting (revoke), wait until no work runs
        under the fence, and only then release the Lease, so the next owner never acts
        beside us. Work still running after a renew deadline: keep the Lease and let it
        expire instead (the next owner then waits a lease duration)."""
        self._handoff = None
        self.fence.revoke(why)
        if self.fence.drain(self.renew_deadline):
            self._release()
        else:
            log.warning(
                "hand-over: work still running; the Lease expires instead", lease=self.fence.lease
            )

    # ---- callbacks from the client's loops
    def _started(self) -> None:
        if self._on_started:
            self._on_started()

    def _stopped(self) -> None:
        error = self._api.last_error
        self.fence.revoke(
            f"renewals failed for {self.renew_deadline:g} s"
            + (f" (last error: {_why(error)})" if error is not None else "")
        )
        if self._on_stopped:
            self._on_stopped()

    # ---- public
    def is_leader(self) -> bool:
        return self.fence.held()

    def hand_over(self, why: str) -> None:
        """Ask the election to hand the Lease over at its next try (see _hand_over)."""
        if self.fence.held():
            self._handoff = why

    def reason(self) -> str:
        """Why this replica does not act now ('' while it leads)."""
        return self.fence.reason()

    def last_renewed(self) -> float:
        """``time.monotonic()`` at which the last successful renewal was sent (0: never)."""
        return self.fence.renewed_at()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                _Election(self._config, self).run()  # type: ignore[no-untyped-call]
            except _Stopped:
                return
            except _Lost:
                continue  # campaign again at once, from a fresh read
            except Exception as exc:  # a bug or an unexpected answer: follower, then retry
                self.fence.revoke(f"leader election failed: {exc}"[:300])
                log.warning("leader election failed; retrying", error=str(exc)[:300])
            self._stop.wait(self.retry_period)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop leading and campaigning; with ``release``, hand the Lease back so a
        standby takes over at once instead of after the lease duration."""
        self._stop.set()
        was_leading = self.fence.held()
        self.fence.revoke("stopping")
        if self._thread is not None:
            self._thread.join(timeout=self._config.retry_period + 5)
        if release and was_leading:
            self._release()

    def _release(self) -> None:
        lock = self._lock
        try:
            lease = self._api.read_namespaced_lease(lock.name, lock.namespace)
            if lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time = datetime.now(UTC)
            self._api.replace_namespaced_lease(lock.name, lock.namespace, lease)
            log.info("lease released", lease=self.fence.lease, identity=self.identity)
        except Exception as exc:  # the lease then simply expires
            log.warning("could not release the lease", error=str(exc)[:300])


def _why(error: object) -> str:
    if isinstance(error, ApiException):
        return f"{error.status} {error.reason}".strip()
    return str(error)[:300]
