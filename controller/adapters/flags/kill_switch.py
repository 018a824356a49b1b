"""The lane kill switch: a boolean OpenFeature flag per lane that must say *on*.

Evaluated with a context naming the lane, namespace, workload and agent (targeting key
``namespace/workload``), so one flagd targeting rule can switch off a whole lane, one
namespace or one agent everywhere. Fails closed: a provider that is not ready, any
evaluation error, a missing or disabled flag, or a non-boolean value all mean autonomy off.

A flag *source* that stops parsing (a bad edit of the flagd file) is different: flagd keeps
the last good definitions in force, and so do we, but the error is carried in every gate
result's reason (and :attr:`KillSwitch.source_error`) until a good file is back.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.flag_evaluation import Reason
from openfeature.provider import FeatureProvider, ProviderStatus
from openfeature.provider.no_op_provider import NoOpProvider

from controller.core.gates.report import GateResult
from controller.core.models.lane import ChangeLane

GATE = "killSwitch"
DEFAULT_DOMAIN = "changelane.kill-switch"

log = structlog.get_logger(__name__)


class KillSwitch:
    def __init__(self, provider: FeatureProvider, *, domain: str = DEFAULT_DOMAIN) -> None:
        self._provider = provider
        self._domain = domain
        self._client = api.get_client(domain)
        self._lock = threading.Lock()
        self._source_error: str | None = None
        self._start_error: str | None = None

    def start(self) -> None:
        """Bind the provider and wait for it; a failed start leaves the switch off."""
        self._client.add_handler(ProviderEvent.PROVIDER_ERROR, self._on_error)
        self._client.add_handler(ProviderEvent.PROVIDER_READY, self._on_recovered)
        self._client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, self._on_recovered)
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

    def _on_error(self, details: EventDetails) -> None:
        message = details.message or (details.error_code.value if details.error_code else "error")
        with self._lock:
            self._source_error = message
        log.warning("kill_switch_flag_source_error", domain=self._domain, error=message)

    def _on_recovered(self, details: EventDetails) -> None:
        with self._lock:
            recovered = self._source_error is not None
            self._source_error = None
        if recovered:
            log.info("kill_switch_flag_source_recovered", domain=self._domain)

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
        note = ""
        source_error = self.source_error
        if source_error is not None:
            note = f"; flag source error, last good definitions in force: {source_error}"
        return GateResult(GATE, True, f"flag {flag} on for {who}{note}")
