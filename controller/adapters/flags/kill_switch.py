"""The lane kill switch: a boolean OpenFeature flag per lane that must say *on*.

Evaluated with a context naming the lane, namespace, workload and agent (targeting key
``namespace/workload``), so one flagd targeting rule can switch off a whole lane, one
namespace or one agent everywhere. Fails closed: a provider that is not ready, any
evaluation error, a missing or disabled flag, or a non-boolean value all mean autonomy off.

A flag *source* that breaks (a bad edit of the flagd file, the file or its ConfigMap deleted,
the file unreadable) is different: flagd keeps the last good definitions in force, and so do
we, for a short grace period (:data:`DEFAULT_GRACE_SECONDS`), carrying the error in every
gate result's reason. A source still broken after the grace period switches autonomy off
until it is back: a kill switch nobody can flip must not stay on.

The flagd file watcher reports a missing file on every poll, with a traceback; both our log
and its log say it once per change of state instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.flag_evaluation import Reason
from openfeature.provider import FeatureProvider, ProviderStatus
from openfeature.provider.no_op_provider import NoOpProvider

from controller.core.gates.flag_source import DEFAULT_GRACE_SECONDS, FlagSourceState
from controller.core.gates.report import GateResult
from controller.core.models.lane import ChangeLane

GATE = "killSwitch"
DEFAULT_DOMAIN = "changelane.kill-switch"

log = structlog.get_logger(__name__)
FLAGD_LOGGER = "openfeature.contrib"


class _OncePerState(logging.Filter):
    """Lets a log message of the flagd provider through once, without its traceback,
    until a different message comes (its file watcher repeats itself every poll)."""

    def __init__(self) -> None:
        super().__init__()
        self._last: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message == self._last:
            return False
        self._last = message
        record.exc_info = None
        record.exc_text = None
        return True

    def reset(self) -> None:
        self._last = None


_FLAGD_LOG_FILTER = _OncePerState()


class KillSwitch:
    def __init__(
        self,
        provider: FeatureProvider,
        *,
        domain: str = DEFAULT_DOMAIN,
        grace_s: float = DEFAULT_GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = provider
        self._domain = domain
        self._client = api.get_client(domain)
        self._lock = threading.Lock()
        self._source_error: str | None = None
        self._source_error_since: float | None = None
        self._start_error: str | None = None
        self._grace_s = grace_s
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []

    def start(self) -> None:
        """Bind the provider and wait for it; a failed start leaves the switch off."""
        self._client.add_handler(ProviderEvent.PROVIDER_ERROR, self._on_error)
        self._client.add_handler(ProviderEvent.PROVIDER_READY, self._on_recovered)
        self._client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, self._on_recovered)
        flagd_log = logging.getLogger(FLAGD_LOGGER)
        if _FLAGD_LOG_FILTER not in flagd_log.filters:
            flagd_log.addFilter(_FLAGD_LOG_FILTER)
        try:
            api.set_provider_and_wait(self._provider, self._domain)
        except Exception as err:  # any provider failure: fail closed, say why
            self._start_error = f"{type(err).__name__}: {err}"
            log.warning("kill_switch_provider_failed", domain=self._domain, error=self._start_error)

    def close(self) -> None:
        self._client.remove_handler(ProviderEvent.PROVIDER_ERROR, self._on_error)
        self._client.remove_handler(ProviderEvent.PROVIDER_READY, self._on_recovered)
        self._client.remove_handler(
            ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, self._on_recovered
        )
        # Replacing the domain's provider shuts the old one down (its file watcher stops).
        api.set_provider(NoOpProvider(), self._domain)

    def __enter__(self) -> KillSwitch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def source_error(self) -> str | None:
        with self._lock:
            return self._source_error

    def source_state(self) -> FlagSourceState:
        """The flag source's health now: healthy, in its grace period, or failing closed."""
        with self._lock:
            error, since = self._source_error, self._source_error_since
        if error is None or since is None:
            return FlagSourceState(grace_s=self._grace_s)
        return FlagSourceState(error, max(0.0, self._clock() - since), self._grace_s)

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Called (from the provider's thread) when the source breaks, changes error or
        recovers: the controller re-reconciles its lanes to update their conditions."""
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("kill_switch_listener_failed", domain=self._domain)

    def _on_error(self, details: EventDetails) -> None:
        message = details.message or (details.error_code.value if details.error_code else "error")
        with self._lock:
            changed = message != self._source_error
            if self._source_error is None:
                self._source_error_since = self._clock()
            self._source_error = message
        if changed:  # the file watcher repeats a missing file on every poll
            log.warning(
                "kill_switch_flag_source_error",
                domain=self._domain,
                error=message,
                grace_s=self._grace_s,
            )
            self._notify()

    def _on_recovered(self, details: EventDetails) -> None:
        with self._lock:
            recovered = self._source_error is not None
            self._source_error = None
            self._source_error_since = None
        if recovered:
            _FLAGD_LOG_FILTER.reset()
            log.info("kill_switch_flag_source_recovered", domain=self._domain)
            self._notify()

    def check(
        self, lane: ChangeLane, *, namespace: str, workload: str, agent: str | None = None
    ) -> GateResult:
        flag = lane.kill_switch_flag
        who = f"lane {lane.name}, {namespace}/{workload}" + (f", agent {agent}" if agent else "")

        def off(why: str) -> GateResult:
            return GateResult(GATE, False, f"autonomy off for {who}: {why}")

        if self._client.provider is not self._provider:
            return off("flag provider not started (KillSwitch.start); failing closed")
        status = self._client.get_provider_status()
        if self._start_error is not None and status is not ProviderStatus.READY:
            return off(f"flag provider failed to start ({self._start_error}); failing closed")
        if status in (ProviderStatus.NOT_READY, ProviderStatus.FATAL):
            return off(f"flag provider is {status.value}; failing closed")
        source = self.source_state()
        if source.failing_closed:
            return off(source.describe())
        attributes: dict[str, Any] = {
            "lane": lane.name,
            "namespace": namespace,
            "workload": workload,
        }
        if agent is not None:
            attributes["agent"] = agent
        context = EvaluationContext(targeting_key=f"{namespace}/{workload}", attributes=attributes)
        details = self._client.get_boolean_details(flag, False, context)
        if details.error_code is not None:
            message = f": {details.error_message}" if details.error_message else ""
            return off(f"flag {flag} {details.error_code.value}{message}; failing closed")
        if details.reason == Reason.DISABLED:
            return off(f"flag {flag} is disabled; failing closed")
        if details.value is not True:
            variant = f" (variant {details.variant})" if details.variant else ""
            return off(f"flag {flag} is {details.value!r}{variant}")
        note = "" if source.healthy else f"; {source.describe()}"
        return GateResult(GATE, True, f"flag {flag} on for {who}{note}")
