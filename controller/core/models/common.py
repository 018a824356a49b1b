"""Building blocks shared by both resources: metadata, conditions, durations."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from controller.core.text import printable

API_GROUP = "changelane.dev"
API_VERSION = "v1alpha1"

_DURATION_RE = re.compile(r"^(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,6})s)?$")
DURATION_PATTERN = r"^([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$"
#: The longest duration a lane may declare: a week. Longer steps, deadlines or intervals
#: are typos (``99999999999999999999999h`` overflowed timedelta deep in the controller).
MAX_DURATION_SECONDS = 7 * 24 * 3600


def _bounded_duration(text: str) -> str:
    seconds = parse_duration(text)
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"duration {text} is longer than a week (168h); expected at most 168h")
    return text


#: A Go-style duration as Kubernetes users write them: ``30s``, ``5m``, ``1h30m``.
Duration = Annotated[
    str,
    Field(
        pattern=DURATION_PATTERN,
        min_length=2,
        max_length=24,
        json_schema_extra={"example": "1m30s"},
    ),
    AfterValidator(_bounded_duration),
]

#: A DNS-1123 label, the shape Kubernetes demands of most names.
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]

#: A DNS-1123 subdomain: what Kubernetes demands of object names such as a ChangeLane's.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_SUBDOMAIN = re.compile(DNS_SUBDOMAIN_PATTERN)

#: Label syntax as the API server checks it (a qualified name; a value of at most 63).
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?)$")


def dns_subdomain_problem(name: str) -> str | None:
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        return (
            f"{name[:80]!r} is not a DNS-1123 subdomain; expected lowercase letters, digits, "
            "'-' and '.', starting and ending with a letter or digit, at most 253 characters"
        )
    return None


def label_key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or dns_subdomain_problem(prefix) is not None):
        return f"label key {key[:80]!r} has an invalid prefix; expected a DNS subdomain"
    if not _LABEL_NAME.fullmatch(name):
        return (
            f"label key {key[:80]!r} is invalid; expected at most 63 letters, digits, '-', "
            "'_' or '.', starting and ending with a letter or digit (optional prefix/)"
        )
    return None


def label_value_problem(value: str) -> str | None:
    if not _LABEL_VALUE.fullmatch(value):
        return (
            f"label value {value[:80]!r} is invalid; expected at most 63 letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit"
        )
    return None


def labels_problems(labels: dict[str, str]) -> list[str]:
    problems = []
    for key, value in labels.items():
        problems += [p for p in (label_key_problem(key), label_value_problem(value)) if p]
    return problems


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``1h30m``; raises ``ValueError`` on anything else."""
    match = _DURATION_RE.fullmatch(text) if len(text) <= 24 else None
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"expected a duration such as 30s, 5m or 1h30m, got {text!r}")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


class CamelModel(BaseModel):
    """Base of every model: camelCase on the wire, unknown fields rejected.

    Rejecting unknown fields is what turns a typo in a lane (``maxWieght``) into an
    error instead of a silently ignored setting.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        validate_default=True,
        # NaN and infinities cannot travel through JSON, so the API server never sees one:
        # a lane file that says .nan is wrong, not "a number".
        allow_inf_nan=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-compatible, camelCase form written to the Kubernetes API."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ObjectMeta(BaseModel):
    """The part of Kubernetes ``metadata`` the controller reads; the rest is kept as is."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", allow_inf_nan=False
    )

    name: Annotated[str, Field(min_length=1, max_length=253)]
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: datetime | None = None

    @field_validator("labels")
    @classmethod
    def _labels_valid(cls, labels: dict[str, str]) -> dict[str, str]:
        problems = labels_problems(labels)
        if problems:
            raise ValueError("; ".join(problems))
        return labels


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(CamelModel):
    """A status condition following the Kubernetes API conventions."""

    type: Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9]*$", max_length=316)]
    status: ConditionStatus
    reason: Annotated[str, Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")]
    message: Annotated[str, Field(max_length=32768)] = ""
    last_transition_time: datetime
    observed_generation: Annotated[int, Field(ge=0)] | None = None

    @field_validator("message")
    @classmethod
    def _printable(cls, message: str) -> str:
        # Conditions are what `kubectl describe` prints: no escape sequence gets there.
        return printable(message, allow="\n")


def set_condition(
    conditions: Sequence[Condition], condition: Condition, *, keep_transition_time: bool = True
) -> list[Condition]:
    """``conditions`` with ``condition`` in place of the one of its type (appended when
    new). The one helper for every condition the controller sets.

    As the Kubernetes API conventions say, ``lastTransitionTime`` moves only when the
    status changes: unless ``keep_transition_time`` is False (a condition whose time
    records *which* event it announces), the existing time is kept for the same status.
    """
    out = list(conditions)
    for i, existing in enumerate(out):
        if existing.type != condition.type:
            continue
        if keep_transition_time and existing.status == condition.status:
            condition = condition.model_copy(
                update={"last_transition_time": existing.last_transition_time}
            )
        out[i] = condition
        return out
    return [*out, condition]


def conditions_from_wire(raw: object) -> list[Condition]:
    """The conditions of a stored status that may not parse as a whole (edited by hand):
    the ones that parse, in order; the others are dropped."""
    out = []
    for item in raw if isinstance(raw, list) else []:
        try:
            out.append(Condition.model_validate(item))
        except ValueError:
            continue
    return out
