"""Leader election on a Lease, with the official client's ``LeaderElection``/``LeaseLock``.

Only the leader mutates. ``Leadership.is_leader()`` is true only while the last
successful renewal is younger than the renew deadline, so a process that cannot renew
(partitioned, API down, paused) stops mutating at once instead of when the client's
renew loop finally gives up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from kubernetes import client
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from controller.adapters.kube.client import REQUEST_TIMEOUT

log = structlog.get_logger("changelane.leader")


class _TimedCoordinationApi(client.CoordinationV1Api):
    """The lease calls with a client-side timeout, so a dead connection cannot hang them."""

    def read_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        return super().read_namespaced_lease(*args, **kwargs)

    def create_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        return super().create_namespaced_lease(*args, **kwargs)

    def replace_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        return super().replace_namespaced_lease(*args, **kwargs)


class _Stopped(Exception):  # noqa: N818 (a signal, not an error)
    """Ends the client's acquire/renew loops, which have no stop of their own."""


class _Election(leaderelection.LeaderElection):
    def __init__(
        self, config: Any, on_renewed: Callable[[bool], None], stop: threading.Event
    ) -> None:
        super().__init__(config)  # type: ignore[no-untyped-call]
        self._on_renewed = on_renewed
        self._stop = stop

    def try_acquire_or_renew(self) -> bool:
        if self._stop.is_set():
            raise _Stopped
        ok = bool(super().try_acquire_or_renew())  # type: ignore[no-untyped-call]
        self._on_renewed(ok)
        return ok


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
    ) -> None:
        self.identity = identity
        self.renew_deadline = float(renew_deadline)
        self._lock = threading.Lock()
        self._leading = False
        self._last_renew = 0.0
        self._stop = threading.Event()
        self._on_started = on_started
        self._on_stopped = on_stopped
        lock = LeaseLock(name, namespace, identity)
        lock.api_instance = _TimedCoordinationApi(api_client)
        self._config = electionconfig.Config(
            lock=lock,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            onstarted_leading=self._started,
            onstopped_leading=self._stopped,
        )
        self._thread: threading.Thread | None = None

    # ---- callbacks from the election thread
    def _renewed(self, ok: bool) -> None:
        if ok:
            with self._lock:
                self._last_renew = time.monotonic()

    def _started(self) -> None:
        with self._lock:
            self._leading = True
            self._last_renew = time.monotonic()
        if self._on_started:
            self._on_started()

    def _stopped(self) -> None:
        with self._lock:
            self._leading = False
        if self._on_stopped:
            self._on_stopped()

    # ---- public
    def is_leader(self) -> bool:
        with self._lock:
            fresh = time.monotonic() - self._last_renew < self.renew_deadline
            return self._leading and fresh

    def last_renewed(self) -> float:
        """``time.monotonic()`` of the last successful acquire or renewal (0: never)."""
        with self._lock:
            return self._last_renew

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                _Election(self._config, self._renewed, self._stop).run()  # type: ignore[no-untyped-call]
            except _Stopped:
                return
            except Exception as exc:  # API unreachable: follower until it answers again
                with self._lock:
                    self._leading = False
                log.warning("leader election failed; retrying", error=str(exc)[:300])
            self._stop.wait(1.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop leading and campaigning; with ``release``, hand the Lease back so a
        standby takes over at once instead of after the lease duration."""
        self._stop.set()
        with self._lock:
            was_leading = self._leading
            self._leading = False
        if self._thread is not None:
            self._thread.join(timeout=self._config.retry_period + 5)
        if release and was_leading:
            self._release()

    def _release(self) -> None:
        lock = self._config.lock
        try:
            lease = lock.api_instance.read_namespaced_lease(lock.name, lock.namespace)
            if lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lock.api_instance.replace_namespaced_lease(lock.name, lock.namespace, lease)
            log.info("lease released", identity=self.identity)
        except Exception as exc:  # the lease then simply expires
            log.warning("could not release the lease", error=str(exc)[:300])
