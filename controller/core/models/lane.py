"""``ChangeLane``: a declared, low-risk domain in which agent-authored releases may ship.

Defaults are chosen to fail safe: autonomy is off unless the lane's flag says on, a check
without data is inconclusive, and nothing promotes without a pass at full exposure.

Over 400 lines on purpose: the lane's whole schema (the CRD, the values schema and the
reference are generated from it) with the validators that tie its fields together.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, field_validator, model_validator

from controller.core.dsse import load_public_key
from controller.core.models.agent_autonomy import AgentAutonomySpec, AutonomyLevel
from controller.core.models.common import (
    CamelModel,
    Condition,
    DnsLabel,
    Duration,
    ObjectMeta,
    dns_subdomain_problem,
    label_key_problem,
    label_value_problem,
    labels_problems,
    parse_duration,
)
from controller.core.models.notifications import NotificationsSpec
from controller.core.models.validation_rules import (
    CHECK_NAMES_UNIQUE,
    FLAG_ONLY_NEEDS_RAMP,
    GATEWAY_NEEDS_ROUTE,
    LAST_STEP_ANALYSED,
    SELECTOR_NOT_EMPTY,
    VALUES_MATCH_OPERATOR,
    WEIGHTS_INCREASE,
    WINDOW_ORDERED,
    validations,
)
from controller.core.promql import TemplateError, template_problems
from controller.core.promql_pods import pod_split_template

KIND = "ChangeLane"
PLURAL = "changelanes"


class LabelSelectorRequirement(CamelModel):
    model_config = ConfigDict(json_schema_extra=validations(VALUES_MATCH_OPERATOR))

    key: Annotated[str, Field(min_length=1)]
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _values_match_operator(self) -> Self:
        problems = [label_key_problem(self.key)] + [label_value_problem(v) for v in self.values]
        if any(problems):
            raise ValueError("; ".join(p for p in problems if p))
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self


class WorkloadSelector(CamelModel):
    """Which Deployments belong to the lane: namespaces plus a label selector."""

    model_config = ConfigDict(json_schema_extra=validations(SELECTOR_NOT_EMPTY))

    namespaces: Annotated[list[DnsLabel], Field(min_length=1)] = Field(
        description="Namespaces whose Deployments the lane may adopt."
    )
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    @field_validator("match_labels")
    @classmethod
    def _labels_valid(cls, labels: dict[str, str]) -> dict[str, str]:
        problems = labels_problems(labels)
        if problems:
            raise ValueError("; ".join(problems))
        return labels

    @model_validator(mode="after")
    def _not_everything(self) -> Self:
        # An empty label selector would adopt every Deployment of the namespace: too wide
        # a blast radius to allow by accident.
        if not self.match_labels and not self.match_expressions:
            raise ValueError("needs matchLabels or matchExpressions; an empty selector is refused")
        return self


class AgentRule(CamelModel):
    """An agent allowed to ship in the lane, optionally restricted to some models.

    ``id`` and ``models`` accept shell-style wildcards (``claude-*``).
    """

    id: Annotated[str, Field(min_length=1, max_length=253)]
    models: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["*"], description="Model names (wildcards allowed)."
    )


class ProvenanceField(StrEnum):
    AGENT = "agent"
    MODEL = "model"
    CHANGE = "change"
    TESTS = "tests"
    REVIEWER = "reviewer"


class ProvenancePolicy(CamelModel):
    required: list[ProvenanceField] = Field(
        default_factory=lambda: [
            ProvenanceField.AGENT,
            ProvenanceField.MODEL,
            ProvenanceField.CHANGE,
            ProvenanceField.TESTS,
        ],
        description="Provenance fields every release must carry.",
    )
    require_tests_passed: bool = Field(
        default=True, description="Refuse a release whose tests evidence is not a pass."
    )
    bind_images: bool = Field(
        default=True,
        description="Require the changelane.dev/images annotation to list exactly the pod "
        "template's images, so provenance vouches for what ships.",
    )
    signature_public_key: str | None = Field(
        default=None,
        description="PEM public key (Ed25519 or ECDSA P-256/P-384); when set, releases "
        "must carry a DSSE envelope of an in-toto statement signed with the matching "
        "private key.",
    )

    @field_validator("signature_public_key")
    @classmethod
    def _key_loads(cls, pem: str | None) -> str | None:
        if pem is not None:
            load_public_key(pem)  # raises ValueError naming what was expected
        return pem


class ChangeWindow(CamelModel):
    model_config = ConfigDict(json_schema_extra=validations(WINDOW_ORDERED))

    days: Annotated[
        list[Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]], Field(min_length=1)
    ]
    start: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    end: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-4]):[0-5][0-9]$")]
    time_zone: str = Field(default="UTC", description="IANA time zone, e.g. Europe/Berlin.")

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}; expected an IANA name") from None
        return name

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class AutonomyBudget(CamelModel):
    """The lane suspends itself when too many of its recent releases failed."""

    max_change_failure_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.34
    window: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=6, description="How many recent releases the rate is computed over."
    )


class AutonomyMode(StrEnum):
    ENFORCE = "enforce"
    SHADOW = "shadow"


class GatesSpec(CamelModel):
    kill_switch_flag: str | None = Field(
        default=None,
        description="Boolean OpenFeature flag that switches the lane's autonomy on. "
        "Defaults to changelane.lane.<lane>.autonomy. Missing or erroring flag = off.",
    )
    change_windows: list[ChangeWindow] = Field(
        default_factory=list, description="When releases may start; empty = any time."
    )
    max_concurrent_releases: Annotated[int, Field(ge=1)] = 1
    max_releases_per_day: Annotated[int, Field(ge=1)] = 20
    autonomy_budget: AutonomyBudget = Field(default_factory=AutonomyBudget)
    mode: AutonomyMode = AutonomyMode.ENFORCE
    when_autonomy_off: Literal["pause", "rollback"] = Field(
        default="pause", description="What happens to releases in flight when the flag goes off."
    )
    agent_autonomy: AgentAutonomySpec | None = Field(
        default=None,
        description="Per-agent autonomy levels earned from each agent's track record in "
        "the lane; unset = every allowed agent has the lane's autonomy. When set, a failing "
        "agent is demoted alone and the lane-wide autonomyBudget no longer suspends the lane.",
    )


class CanaryStep(CamelModel):
    weight: Annotated[int, Field(ge=1, le=100)] = Field(
        description="Percent of traffic (replicas or route weight) on the canary."
    )
    min_duration: Duration = Field(default="1m", description="Least time spent at this step.")
    analysis: bool = Field(default=True, description="Whether checks run at this step.")


class TrafficMode(StrEnum):
    REPLICAS = "replicas"
    GATEWAY_API = "gatewayAPI"


class TrafficSpec(CamelModel):
    model_config = ConfigDict(json_schema_extra=validations(GATEWAY_NEEDS_ROUTE))

    mode: TrafficMode = TrafficMode.REPLICAS
    http_route: DnsLabel | None = Field(
        default=None, description="HTTPRoute (same namespace) whose backend weights to set."
    )
    surge: bool = Field(
        default=False,
        description="replicas mode: add canary pods beside the primary's (up to as many "
        "again) instead of moving pods from the primary to the canary.",
    )
    max_unavailable: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=0,
        description="replicas mode: how far below the workload's replica count the ready pods "
        "of both copies may drop while pods move between them (adoption, ramp, promotion, "
        "rollback).",
    )

    @model_validator(mode="after")
    def _route_for_gateway(self) -> Self:
        if self.mode is TrafficMode.GATEWAY_API and not self.http_route:
            raise ValueError("mode gatewayAPI needs httpRoute")
        return self


class FlagRamp(CamelModel):
    """Where the controller writes a release's feature-flag fractional weights."""

    target: Literal["configMap", "featureFlag"] = "configMap"
    name: DnsLabel = Field(description="ConfigMap or FeatureFlag holding the flag definitions.")
    namespace: DnsLabel | None = None
    key: Annotated[str, Field(min_length=1)] = Field(
        default="flags.flagd.json", description="ConfigMap data key (configMap target)."
    )


class StrategySpec(CamelModel):
    model_config = ConfigDict(
        json_schema_extra=validations(WEIGHTS_INCREASE, LAST_STEP_ANALYSED, FLAG_ONLY_NEEDS_RAMP)
    )

    steps: Annotated[list[CanaryStep], Field(min_length=1, max_length=20)]
    traffic: TrafficSpec = Field(default_factory=TrafficSpec)
    flag_ramp: FlagRamp | None = None
    flag_only: bool = Field(
        default=False, description="Ramp only the release's flag; no canary replicas."
    )
    progress_deadline: Duration = Field(
        default="10m", description="How long a canary may take to become ready."
    )
    evidence_deadline: Duration = Field(
        default="60m",
        description="How long a step may wait for the evidence its checks need to pass "
        "(from the step's start); then onEvidenceDeadline applies, or at once when a check "
        "finds that evidence out of reach at this step. Nothing waits forever.",
    )
    on_evidence_deadline: Literal["pause", "promote", "rollback"] = Field(
        default="pause",
        description="pause: hold for a human, with the evidence and what would have been "
        "needed; promote: advance (or promote at the last step) when no check failed and "
        "none is missing data (inconclusive only); rollback.",
    )

    @model_validator(mode="after")
    def _steps_ramp_up(self) -> Self:
        weights = [s.weight for s in self.steps]
        for i in range(1, len(weights)):
            if weights[i] <= weights[i - 1]:
                raise ValueError(
                    f"steps[{i}].weight {weights[i]} must be greater than "
                    f"steps[{i - 1}].weight {weights[i - 1]}: weights must increase"
                )
        if not self.steps[-1].analysis:
            raise ValueError(
                f"steps[{len(self.steps) - 1}].analysis must be true: nothing promotes "
                "without a pass at full exposure"
            )
        if self.flag_only and self.flag_ramp is None:
            raise ValueError("flagOnly needs flagRamp")
        return self

    @property
    def max_weight(self) -> int:
        return self.steps[-1].weight


class CheckKind(StrEnum):
    THRESHOLD = "threshold"
    RELATIVE = "relative"
    BURN_RATE = "burnRate"
    SEQUENTIAL = "sequential"


class Direction(StrEnum):
    LOWER_IS_BETTER = "lowerIsBetter"
    HIGHER_IS_BETTER = "higherIsBetter"


class LimitAction(StrEnum):
    HOLD = "hold"  # stay at the current weight, keep measuring
    PAUSE = "pause"  # stop and wait for a human
    ROLLBACK = "rollback"


class AnalysisCheck(CamelModel):
    """One SLO check. Templates render with ``track`` = canary, then baseline."""

    name: DnsLabel
    kind: CheckKind
    query: str | None = Field(
        default=None,
        description="PromQL template of the checked value (threshold, relative). "
        "Rendered once per track.",
    )
    baseline_query: str | None = Field(
        default=None, description="Baseline template when it differs from query."
    )
    errors_query: str | None = Field(
        default=None,
        description="PromQL template counting bad events over {{ window }} (burnRate, sequential).",
    )
    total_query: str | None = Field(
        default=None,
        description="PromQL template counting all events over {{ window }} (burnRate, sequential).",
    )
    direction: Direction = Direction.LOWER_IS_BETTER
    threshold: float | None = Field(
        default=None,
        description="threshold: the limit; relative: an absolute floor on the good side of "
        "which the canary always passes; sequential: an error-ratio floor: the canary passes "
        "once its (1-alpha) upper bound is at or below it (for services with almost no errors).",
    )
    max_ratio: Annotated[float, Field(gt=1.0)] | None = Field(
        default=None, description="relative: allowed canary/baseline ratio."
    )
    slo_target: Annotated[float, Field(gt=0.0, lt=1.0)] | None = Field(
        default=None, description="burnRate: the SLO objective, e.g. 0.999."
    )
    max_burn_rate: Annotated[float, Field(gt=0.0)] = Field(
        default=14.4, description="burnRate: burn rate that fails in both windows."
    )
    alpha: Annotated[float, Field(gt=0.0, lt=0.5)] = Field(
        default=0.01,
        description="sequential: chance of failing a canary no worse than the baseline, "
        "however often it looks (the false-rollback rate per step).",
    )
    min_detectable_effect: Annotated[float, Field(gt=0.0)] = Field(
        default=1.0,
        description="sequential: relative increase of the error ratio that must never pass "
        "(1.0 = canary twice the baseline's).",
    )
    power: Annotated[float, Field(gt=0.5, lt=1.0)] = Field(
        default=0.999,
        description="sequential: chance that a regression of minDetectableEffect is caught "
        "rather than passed; a Pass needs the evidence this implies.",
    )
    tolerance: Annotated[float, Field(ge=0.0)] = Field(
        default=0.25,
        description="sequential: practical-equivalence margin: a canary whose error ratio is "
        "below (1 + tolerance) x the baseline's is not a regression (persistent pod-to-pod "
        "spread of healthy code). Must be below minDetectableEffect.",
    )
    confirm_looks: Annotated[int, Field(ge=1)] = Field(
        default=2,
        description="sequential: looks in a row the regression test must reject before the "
        "check fails (a single look fails only on evidence 100x stronger than alpha).",
    )
    pod_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=128)] | None = (
        Field(
            default=None,
            description="sequential: the Prometheus label naming the pod (usually pod). When "
            "set, the check also reads its counts split by that label: each canary pod is "
            "tested against the canary's other pods (one bad pod of five is caught on its "
            "own), and the "
            "spread between the baseline's pods is estimated and allowed for (a canary of one "
            "pod on a slower node is not a regression). Off by default.",
        )
    )
    noise_prior: Literal["fixed", "history"] = Field(
        default="fixed",
        description="sequential: the noise the regression test assumes before the release's "
        "own batches: fixed (default), or history: estimated from the baseline's hour of "
        "counts before the release (one range query per baseline query, once; no history "
        "or an error falls back to fixed). Measured faster on quiet services (x5 found at "
        "150 s instead of 270 s) and slightly more false rollbacks on noisy ones "
        "(docs/judging.md).",
    )
    critical: bool = Field(default=False, description="One Fail rolls back at once.")
    min_samples: Annotated[int, Field(ge=1)] = Field(
        default=50,
        description="Events (totalQuery) each arm needs before the check can pass; point "
        "estimates (threshold, relative, burnRate) cannot fail before it either.",
    )
    interval: Duration | None = Field(default=None, description="Defaults to the lane's.")
    failure_limit: Annotated[int, Field(ge=0)] = Field(
        default=0, description="Fails tolerated before onFailureLimit applies."
    )
    on_failure_limit: LimitAction = LimitAction.ROLLBACK
    consecutive_error_limit: Annotated[int, Field(ge=0)] = Field(
        default=40,
        description="Errors in a row (metrics backend down, timeouts) held without any "
        "traffic change before onErrorLimit applies (40 is 20 minutes at 30s); below it "
        "the release continues by itself when the backend answers again.",
    )
    on_error_limit: LimitAction = LimitAction.PAUSE
    inconclusive_limit: Annotated[int, Field(ge=0)] = Field(
        default=120,
        description="Inconclusive measurements in a row at one step tolerated before "
        "onInconclusiveLimit (evidence takes time at low traffic: 120 is an hour at 30s).",
    )
    on_inconclusive_limit: LimitAction = LimitAction.PAUSE

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Self:
        needs: dict[CheckKind, tuple[str, ...]] = {
            CheckKind.THRESHOLD: ("query", "threshold"),
            CheckKind.RELATIVE: ("query", "max_ratio"),
            CheckKind.BURN_RATE: ("errors_query", "total_query", "slo_target"),
            CheckKind.SEQUENTIAL: ("errors_query", "total_query"),
        }
        if self.kind is CheckKind.SEQUENTIAL and self.tolerance >= self.min_detectable_effect:
            raise ValueError(
                f"tolerance {self.tolerance:g} must be below minDetectableEffect "
                f"{self.min_detectable_effect:g}"
            )
        if self.pod_label is not None and self.kind is not CheckKind.SEQUENTIAL:
            raise ValueError(f"podLabel applies to sequential checks, not {self.kind.value}")
        if self.noise_prior != "fixed" and self.kind is not CheckKind.SEQUENTIAL:
            raise ValueError(f"noisePrior applies to sequential checks, not {self.kind.value}")
        missing = [f for f in needs[self.kind] if getattr(self, f) is None]
        if missing:
            names = ", ".join(_camel(f) for f in missing)
            raise ValueError(f"kind {self.kind.value} needs {names}")
        for field in ("query", "baseline_query", "errors_query", "total_query"):
            template = getattr(self, field)
            if template is not None:
                problems = template_problems(template)
                if problems:
                    raise ValueError(f"{_camel(field)}: {'; '.join(problems)}")
        if self.pod_label is not None:
            for field in ("errors_query", "total_query"):
                template = getattr(self, field)
                try:
                    pod_split_template(template or "", self.pod_label)
                except (ValueError, TemplateError) as exc:
                    raise ValueError(
                        f"podLabel: {_camel(field)} cannot be split by pod: {exc}"
                    ) from exc
        return self


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


class AnalysisSpec(CamelModel):
    model_config = ConfigDict(json_schema_extra=validations(CHECK_NAMES_UNIQUE))

    interval: Duration = Field(default="30s", description="How often checks are queried.")
    checks: Annotated[list[AnalysisCheck], Field(min_length=1, max_length=32)]

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        seen: set[str] = set()
        for i, check in enumerate(self.checks):
            if check.name in seen:
                raise ValueError(f"checks[{i}].name {check.name!r} is used twice")
            seen.add(check.name)
        return self


class RollbackPolicy(CamelModel):
    """A rollback always takes the canary to zero replicas and leaves the primary untouched;
    what a lane chooses is the order of the two levers."""

    flag_off_first: bool = Field(
        default=True, description="Switch the release's flag off before touching replicas."
    )


class ChangeLaneSpec(CamelModel):
    description: str = ""
    selector: WorkloadSelector
    agents: Annotated[list[AgentRule], Field(min_length=1)] = Field(
        description="Agents allowed to ship in this lane."
    )
    provenance: ProvenancePolicy = Field(default_factory=ProvenancePolicy)
    gates: GatesSpec = Field(default_factory=GatesSpec)
    strategy: StrategySpec
    analysis: AnalysisSpec
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy)
    notifications: NotificationsSpec = Field(
        default_factory=NotificationsSpec,
        description="Who hears about rollbacks, rejections, long gates, pauses, suspensions.",
    )

    @model_validator(mode="after")
    def _intervals_parse(self) -> Self:
        for text in (
            self.strategy.progress_deadline,
            self.strategy.evidence_deadline,
            self.analysis.interval,
        ):
            parse_duration(text)
        inline = self.notifications.without_inline_urls()
        if inline:
            raise ValueError("notifications." + "; notifications.".join(inline))
        return self


class NotificationState(CamelModel):
    destination: str
    ok: bool
    last_attempt: datetime
    last_event: str | None = None
    last_error: str | None = None


class AgentStanding(CamelModel):
    """One agent/model's level in the lane, as the controller last derived it."""

    agent: str
    model: str
    level: AutonomyLevel
    pinned_by: str | None = None
    since: datetime | None = None
    reason: str = ""
    finished_at_level: int = 0
    rolled_back_at_level: int = 0


class AgentPin(CamelModel):
    """A human's pin (``level`` set) or reset (``level`` unset) of one agent/model."""

    agent: Annotated[str, Field(min_length=1, max_length=128)]
    model: Annotated[str, Field(min_length=1, max_length=128)]
    level: AutonomyLevel | None = None
    by: Annotated[str, Field(min_length=1, max_length=256)]
    at: datetime
    reason: Annotated[str, Field(max_length=1024)] = ""


class ChangeLaneStatus(CamelModel):
    suspended: bool = False
    suspended_reason: str | None = None
    suspended_at: datetime | None = None
    resumed_at: datetime | None = Field(
        default=None, description="Outcomes before this do not count against the budget."
    )
    resumed_by: str | None = None
    active_releases: list[str] = Field(default_factory=list)
    recent_outcomes: list[str] = Field(default_factory=list)
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    notifications: list[NotificationState] = Field(
        default_factory=list,
        description="Last delivery per destination: on-call sees a broken destination here.",
    )
    agents: list[AgentStanding] = Field(
        default_factory=list, description="Each agent/model's autonomy level in the lane."
    )
    agent_pins: list[AgentPin] = Field(
        default_factory=list,
        description="Levels pinned or reset by humans (changelane autonomy set/reset).",
    )


class ChangeLane(CamelModel):
    api_version: Literal["changelane.dev/v1alpha1"] = "changelane.dev/v1alpha1"
    kind: Literal["ChangeLane"] = "ChangeLane"
    metadata: ObjectMeta
    spec: ChangeLaneSpec
    status: ChangeLaneStatus | None = None

    @field_validator("metadata")
    @classmethod
    def _name_is_dns(cls, metadata: ObjectMeta) -> ObjectMeta:
        problem = dns_subdomain_problem(metadata.name)
        if problem:
            raise ValueError(f"name {problem}")
        return metadata

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def compares_to_baseline(self) -> bool:
        """Whether a check judges the canary against the baseline (relative, sequential):
        then the baseline must keep serving some traffic even at weight 100."""
        kinds = (CheckKind.RELATIVE, CheckKind.SEQUENTIAL)
        return any(check.kind in kinds for check in self.spec.analysis.checks)

    @property
    def kill_switch_flag(self) -> str:
        return self.spec.gates.kill_switch_flag or f"changelane.lane.{self.name}.autonomy"
