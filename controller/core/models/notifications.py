"""Where a lane's notifications go and which events each destination wants.

A destination never carries its URL in the lane: webhook and chat URLs embed tokens, and a
``ChangeLane`` is readable by everyone who may read lanes. The lane names a key of the
notification Secret that the chart mounts into the controller's pod (``secretKey``); only
the controller-wide defaults file (itself mounted from a Secret, or given on the command
line) may spell a ``url`` out.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from controller.core.models.common import CamelModel, Duration, parse_duration


class NotifyEvent(StrEnum):
    ROLLED_BACK = "rolledBack"
    REJECTED = "rejected"
    GATED = "gated"  # held by a gate for longer than ``gatedAfter``
    PAUSED = "paused"  # waiting for a human
    LANE_SUSPENDED = "laneSuspended"
    PROMOTED = "promoted"  # opt-in: not in the default set
    AGENT_LEVEL_CHANGED = "agentLevelChanged"  # an agent graduated, was demoted or pinned


DEFAULT_EVENTS = (
    NotifyEvent.ROLLED_BACK,
    NotifyEvent.REJECTED,
    NotifyEvent.GATED,
    NotifyEvent.PAUSED,
    NotifyEvent.LANE_SUSPENDED,
    NotifyEvent.AGENT_LEVEL_CHANGED,
)

SecretKey = Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]{1,253}$")]


class NotificationDestination(CamelModel):
    name: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*)$")]
    kind: Literal["webhook", "apprise"] = Field(
        description="webhook: an HTTP POST of a CloudEvents 1.0 JSON event; apprise: a chat "
        "service by its apprise URL (slack://, msteams://, discord://, json://, ...)."
    )
    secret_key: SecretKey | None = Field(
        default=None,
        description="Key of the mounted notification Secret whose value is the URL.",
    )
    url: str | None = Field(
        default=None,
        description="The URL itself: only in the controller-wide defaults, never in a lane.",
    )
    events: list[NotifyEvent] = Field(
        default_factory=lambda: list(DEFAULT_EVENTS),
        description="Events this destination wants; 'promoted' is opt-in.",
    )
    gated_after: Duration = Field(
        default="10m",
        description="A release held by a gate longer than this is announced (event 'gated').",
    )

    @model_validator(mode="after")
    def _one_url_source(self) -> Self:
        if (self.secret_key is None) == (self.url is None):
            raise ValueError(f"destination {self.name}: give exactly one of secretKey and url")
        parse_duration(self.gated_after)
        return self


class NotificationsSpec(CamelModel):
    destinations: list[NotificationDestination] = Field(default_factory=list)
    include_defaults: bool = Field(
        default=True, description="Also notify the controller-wide default destinations."
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [d.name for d in self.destinations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"destination names must be unique: {', '.join(dupes)}")
        return self

    def without_inline_urls(self) -> list[str]:
        """Problems for a lane: URLs are secrets and belong in the mounted Secret."""
        return [
            f"destinations[{i}].url: a URL in a lane is readable by everyone who reads lanes; "
            "put it in the notification Secret and name its key in secretKey"
            for i, d in enumerate(self.destinations)
            if d.url is not None
        ]
