"""How long a broken flag source may keep the last good definitions in force (pure).

flagd keeps serving the last definitions it parsed when its source breaks, and a bad edit
of the flag file should not stop every lane at once. But a source that stays missing,
unreadable or unparseable is a kill switch nobody can flip: after a short grace period the
lane's autonomy is off until the source is back.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Long enough to ride out a ConfigMap update or an editor's write-rename; short enough
#: that an operator who deleted the flags to stop everything is obeyed within a minute.
DEFAULT_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class FlagSourceState:
    error: str | None = None
    #: How long the error has lasted, in seconds.
    error_for_s: float = 0.0
    grace_s: float = DEFAULT_GRACE_SECONDS

    @property
    def healthy(self) -> bool:
        return self.error is None

    @property
    def failing_closed(self) -> bool:
        """The error outlasted the grace period: autonomy is off."""
        return self.error is not None and self.error_for_s >= self.grace_s

    @property
    def grace_left_s(self) -> float:
        return max(0.0, self.grace_s - self.error_for_s)

    def describe(self) -> str:
        """One sentence per state (stable while the state lasts: it keys Events)."""
        if self.error is None:
            return "flag source healthy"
        if self.failing_closed:
            return (
                f"flag source error for longer than the {self.grace_s:.0f}s grace period: "
                f"{self.error}; autonomy off, failing closed"
            )
        return (
            f"flag source error, last good definitions in force for at most "
            f"{self.grace_s:.0f}s: {self.error}"
        )


#: The ChangeLane condition that reports the flag source (True = something is wrong).
CONDITION = "FlagSourceDegraded"


def lane_condition(state: FlagSourceState) -> tuple[str, str, str]:
    """(status, reason, message) of the lane's :data:`CONDITION`."""
    if state.healthy:
        return "False", "FlagSourceHealthy", state.describe()
    if state.failing_closed:
        return "True", "AutonomyOffFlagSourceLost", state.describe()
    return "True", "FlagSourceErrorGracePeriod", state.describe()


def recheck_after(state: FlagSourceState) -> float | None:
    """When to look again: just after the grace period ends, while one is running."""
    if state.healthy or state.failing_closed:
        return None
    return state.grace_left_s + 1.0
