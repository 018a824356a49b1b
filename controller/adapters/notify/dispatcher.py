"""The notifier: an audit sink that turns decision records into notifications and delivers
them on background threads.

``emit`` only queues the record and returns; one router thread routes records in order and
a thread pool delivers them, so a slow or dead destination never delays a decision. Each
destination is tried with exponential backoff (tenacity); every attempt is counted
(``changelane_notification_attempts_total``), logged as a ``notification_attempt`` event and
kept in :attr:`Notifier.attempts`; the outcome of the last delivery to each destination is
written to the lane's ``status.notifications`` so a broken destination is visible where
on-call looks at the lane.

"Gated for longer than a limit" has no record of its own: a ``gated`` record starts a
timer per destination, and any later record of that release (it started, was rejected,
...) cancels it. A controller restart forgets the timers: a release already gated then is
announced only when a later record arrives.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
import tenacity

from controller.adapters.notify.transports import DeliveryError, TransportFactory
from controller.core.audit import AuditRecord, Decision
from controller.core.models.notifications import (
    NotificationDestination,
    NotificationsSpec,
    NotifyEvent,
)
from controller.core.notify import (
    Notification,
    compose,
    destinations_for,
    event_of,
    gated_after_seconds,
    route,
)

log = structlog.get_logger("changelane.notify")

#: The lane's notification spec by lane name (None: unknown lane or no spec).
LaneLookup = Callable[[str], NotificationsSpec | None]
#: Called with (lane, destination, outcome) after each notification's last attempt.
StatusWriter = Callable[[str, "DeliveryOutcome"], None]
#: Called with (metric labels) for each attempt.
AttemptCounter = Callable[[str, str, str, str], None]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    initial_wait: float = 0.5
    max_wait: float = 30.0


@dataclass(frozen=True)
class Attempt:
    notification: str  # the notification's id
    destination: str
    lane: str
    event: str
    number: int
    outcome: str  # delivered | retrying | gave_up | refused (permanent: bad URL, 4xx)
    error: str | None
    time: datetime
    seconds: float


@dataclass(frozen=True)
class DeliveryOutcome:
    destination: str
    event: str
    ok: bool
    error: str | None
    time: datetime


class Notifier:
    def __init__(
        self,
        lanes: LaneLookup,
        *,
        defaults: NotificationsSpec | None = None,
        transports: TransportFactory | None = None,
        dashboard_url: str | None = None,
        retry: RetryPolicy | None = None,
        count_attempt: AttemptCounter | None = None,
        write_status: StatusWriter | None = None,
        workers: int = 4,
        keep_attempts: int = 1000,
    ) -> None:
        self.lanes = lanes
        self.defaults = defaults
        self.transports = transports or TransportFactory()
        self.dashboard_url = dashboard_url
        self.retry = retry or RetryPolicy()
        self.count_attempt = count_attempt
        self.write_status = write_status
        self.attempts: collections.deque[Attempt] = collections.deque(maxlen=keep_attempts)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notify")
        self._lock = threading.Lock()
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._gate_timers: dict[tuple[str, str], threading.Timer] = {}
        self._closed = False
        # Records are routed in the order they were emitted, on one thread (a release's
        # 'started' must cancel its 'gated' timer, never the other way round); deliveries
        # then run in parallel on the pool.
        self._inbox: queue.SimpleQueue[AuditRecord | None] = queue.SimpleQueue()
        self._router = threading.Thread(target=self._route_all, name="notify-router", daemon=True)
        self._router.start()

    # ------------------------------------------------------------------ the sink

    def emit(self, record: AuditRecord) -> None:
        """Never blocks on delivery: routing and sending happen on the pool."""
        with self._lock:
            if self._closed:
                return
            if record.id is not None:
                if record.id in self._seen:
                    return  # an outbox flushed twice
                self._seen[record.id] = None
                if len(self._seen) > 10_000:
                    self._seen.popitem(last=False)
            self._inbox.put(record)

    def close(self, wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for timer in self._gate_timers.values():
                timer.cancel()
            self._gate_timers.clear()
        self._inbox.put(None)
        if wait:
            self._router.join()
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def _route_all(self) -> None:
        while (record := self._inbox.get()) is not None:
            self._handle(record)

    # ------------------------------------------------------------------ routing

    def _destinations(self, lane: str) -> list[NotificationDestination]:
        try:
            spec = self.lanes(lane)
        except Exception:
            log.exception("notification lane lookup failed", lane=lane)
            spec = None
        return destinations_for(spec, self.defaults)

    def _handle(self, record: AuditRecord) -> None:
        try:
            destinations = self._destinations(record.lane)
            if record.release:
                self._track_gate(record, destinations)
            for destination in route(record, destinations):
                event = event_of(record)
                assert event is not None  # route() returned destinations for it
                notification = compose(record, destination, event, self.dashboard_url)
                self._submit(notification, destination)
        except Exception:  # a bug here must not kill the pool's thread silently
            log.exception("notification handling failed", record=record.id)

    def _track_gate(self, record: AuditRecord, destinations: list[NotificationDestination]) -> None:
        release = f"{record.namespace}/{record.release}"
        with self._lock:
            for key in [k for k in self._gate_timers if k[0] == release]:
                if record.decision is not Decision.GATED:
                    self._gate_timers.pop(key).cancel()
            if record.decision is not Decision.GATED or self._closed:
                return
            for destination in route(record, destinations, NotifyEvent.GATED):
                key = (release, destination.name)
                if key in self._gate_timers:
                    continue  # still the same gating (a new reason does not restart it)
                limit = gated_after_seconds(destination)
                timer = threading.Timer(limit, self._gated_too_long, (record, destination, limit))
                timer.daemon = True
                self._gate_timers[key] = timer
                timer.start()

    def _gated_too_long(
        self, record: AuditRecord, destination: NotificationDestination, limit: float
    ) -> None:
        with self._lock:
            key = (f"{record.namespace}/{record.release}", destination.name)
            if self._gate_timers.pop(key, None) is None or self._closed:
                return
        notification = compose(
            record, destination, NotifyEvent.GATED, self.dashboard_url, held_seconds=limit
        )
        self._submit(notification, destination)

    def _submit(self, notification: Notification, destination: NotificationDestination) -> None:
        try:
            self._pool.submit(self._deliver, notification, destination)
        except RuntimeError:  # closed meanwhile: nothing more goes out
            log.info("notification dropped at shutdown", notification=notification.id)

    # ------------------------------------------------------------------ delivery

    def _deliver(self, notification: Notification, destination: NotificationDestination) -> None:
        number = 0

        def attempt() -> None:
            nonlocal number
            number += 1
            started = time.monotonic()
            try:
                self.transports.build(destination).send(notification)
            except DeliveryError as err:
                final = not err.transient or number >= self.retry.attempts
                outcome = "refused" if not err.transient else ("gave_up" if final else "retrying")
                self._note(notification, number, outcome, str(err), started)
                raise
            self._note(notification, number, "delivered", None, started)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retry.attempts),
            wait=tenacity.wait_exponential(
                multiplier=self.retry.initial_wait, max=self.retry.max_wait
            ),
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, DeliveryError) and e.transient
            ),
            reraise=True,
        )
        error: str | None = None
        try:
            retrying(attempt)
        except DeliveryError as err:
            error = str(err)
        outcome = DeliveryOutcome(
            destination=notification.destination,
            event=notification.event.value,
            ok=error is None,
            error=error,
            time=datetime.now(UTC),
        )
        if self.write_status is not None:
            try:
                self.write_status(notification.lane, outcome)
            except Exception as err:  # a follower or an API hiccup: the log still has it
                log.warning(
                    "could not write notification status",
                    lane=notification.lane,
                    destination=notification.destination,
                    error=str(err)[:300],
                )

    def _note(
        self, notification: Notification, number: int, outcome: str, error: str | None, t0: float
    ) -> None:
        attempt = Attempt(
            notification=notification.id,
            destination=notification.destination,
            lane=notification.lane,
            event=notification.event.value,
            number=number,
            outcome=outcome,
            error=error,
            time=datetime.now(UTC),
            seconds=round(time.monotonic() - t0, 3),
        )
        self.attempts.append(attempt)
        fields = {
            "notification": attempt.notification,
            "destination": attempt.destination,
            "lane": attempt.lane,
            "notify_event": attempt.event,
            "attempt": number,
            "outcome": outcome,
            "seconds": attempt.seconds,
        }
        if error is None:
            log.info("notification_attempt", **fields)
        else:
            log.warning("notification_attempt", error=error, **fields)
        if self.count_attempt is not None:
            self.count_attempt(attempt.lane, attempt.destination, attempt.event, outcome)
