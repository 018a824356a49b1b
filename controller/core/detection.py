"""How fast a regression was caught, and why a release was rolled back, from audit records.

Pure folds over the record stream, for the controller's metrics:

* **Regression onset** is the time of the first measurement with verdict ``Fail`` at the
  step the rollback happened at (since that step started or a human resumed it). When the
  rollback followed no ``Fail`` (analysis ``Error`` measurements reached their limit), the
  first ``Error`` at that step is the onset. ``Inconclusive`` is never an onset: too little
  data says nothing about the canary. **Rollback** is the ``rolled_back`` record: traffic
  is off the canary. Only rollbacks decided by analysis (``analysis_failed`` or
  ``analysis_error`` below) are timed; a human abort, a crash loop or a progress deadline
  has no measured onset.
* **Rollback reason class**: rollback reasons are free text naming values; a metric label
  needs a small, fixed set, so :func:`rollback_reason_class` maps each reason to one.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from controller.core.audit import AuditRecord, Decision
from controller.core.models import Verdict

#: Releases followed at once; beyond that the oldest is forgotten (bounded memory).
MAX_TRACKED_RELEASES = 10_000
CONTROLLER = "controller"

_CHECK_REASON = re.compile(r"^(?:critical )?check \S+ (Fail|Error|Inconclusive)\b")
_CLASS_OF_VERDICT = {Verdict.FAIL: "analysis_failed", Verdict.ERROR: "analysis_error"}
_PREFIX_CLASSES = (
    ("canary is crash-looping", "crash_loop"),
    ("canary not ready", "progress_deadline"),
    ("autonomy switched off", "autonomy_off"),
)
ROLLBACK_REASON_CLASSES = (
    "analysis_failed",
    "analysis_error",
    "inconclusive",
    "crash_loop",
    "progress_deadline",
    "autonomy_off",
    "aborted",
    "superseded",
    "other",
)


def rollback_reason_class(reason: str, actor: str = CONTROLLER) -> str:
    """One of :data:`ROLLBACK_REASON_CLASSES` for a rollback's reason text."""
    if "superseded by another pod template" in reason:
        return "superseded"
    if actor != CONTROLLER or reason.startswith("aborted by"):
        return "aborted"
    match = _CHECK_REASON.match(reason)
    if match:
        return _CLASS_OF_VERDICT.get(Verdict(match[1]), "inconclusive")
    for prefix, name in _PREFIX_CLASSES:
        if reason.startswith(prefix):
            return name
    return "other"


@dataclass(frozen=True)
class RegressionCaught:
    lane: str
    release: str
    onset: datetime
    rolled_back: datetime

    @property
    def seconds(self) -> float:
        return max(0.0, (self.rolled_back - self.onset).total_seconds())


@dataclass
class _Release:
    step: int | None = None
    first_fail: datetime | None = None
    first_error: datetime | None = None
    onset: datetime | None = None  # fixed when the controller decided to roll back


_RESTART_STEP = frozenset({Decision.STARTED, Decision.STEP_ADVANCED, Decision.RESUMED})
_MEASURED = frozenset({"analysis_failed", "analysis_error"})
_FINAL = frozenset({Decision.PROMOTED, Decision.ROLLED_BACK, Decision.REJECTED})


class RegressionOnsets:
    """Feed records in order; :meth:`add` returns the timing when a rollback completes."""

    def __init__(self, max_releases: int = MAX_TRACKED_RELEASES) -> None:
        self.max_releases = max_releases
        self._releases: OrderedDict[str, _Release] = OrderedDict()

    def _state(self, key: str) -> _Release:
        state = self._releases.get(key)
        if state is None:
            state = self._releases[key] = _Release()
            if len(self._releases) > self.max_releases:
                self._releases.popitem(last=False)
        return state

    def add(self, record: AuditRecord) -> RegressionCaught | None:
        if record.release is None:
            return None
        key = f"{record.namespace}/{record.release}"
        state = self._state(key)
        decision = record.decision
        if decision in _RESTART_STEP:
            state.step, state.first_fail, state.first_error = record.step, None, None
        elif decision is Decision.MEASUREMENT:
            if record.step != state.step:
                state.step, state.first_fail, state.first_error = record.step, None, None
            verdicts = {e.verdict for e in record.evidence}
            if Verdict.FAIL in verdicts and state.first_fail is None:
                state.first_fail = record.time
            if Verdict.ERROR in verdicts and state.first_error is None:
                state.first_error = record.time
        elif decision is Decision.ROLLING_BACK:
            cls = rollback_reason_class(record.reason, record.actor)
            measured = cls in _MEASURED and record.step == state.step
            state.onset = (state.first_fail or state.first_error) if measured else None
        if decision in _FINAL:
            del self._releases[key]
            if decision is Decision.ROLLED_BACK and state.onset is not None:
                return RegressionCaught(record.lane, record.release, state.onset, record.time)
        return None
