"""``LaneRelease``: the in-cluster record of one release of a lane workload.

The spec says what changed and by whom; the status holds all progress, so that a
controller restarted at any point resumes from it with the same decisions.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator

from controller.core.audit import AuditRecord
from controller.core.models.agent_autonomy import AutonomyLevel
from controller.core.models.common import (
    DNS_SUBDOMAIN_PATTERN,
    CamelModel,
    Condition,
    DnsLabel,
    ObjectMeta,
)
from controller.core.text import printable

KIND = "LaneRelease"
PLURAL = "lanereleases"


class Phase(StrEnum):
    PENDING = "Pending"
    REJECTED = "Rejected"
    GATED = "Gated"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    PROMOTED = "Promoted"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({Phase.REJECTED, Phase.PROMOTED, Phase.ROLLED_BACK})


class Verdict(StrEnum):
    PASS = "Pass"  # noqa: S105 (a verdict, not a password)
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class TargetRef(CamelModel):
    kind: Literal["Deployment"] = "Deployment"
    # A Deployment's name is a DNS subdomain (``docs.site`` is valid): a narrower pattern
    # made such a workload's release record unwritable.
    name: Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN, min_length=1, max_length=253)]
    namespace: DnsLabel


class Revision(CamelModel):
    pod_template_hash: str | None = Field(default=None, description="Pod-template hash.")
    images: list[str] = Field(default_factory=list)


class TestsEvidence(CamelModel):
    __test__ = False  # not a pytest class, despite the name

    command: str | None = Field(default=None, description="What ran, e.g. 'pytest -q'.")
    result: Literal["passed", "failed", "unknown"] = "unknown"
    report: str | None = Field(default=None, description="Where the report is (URL or path).")


class Provenance(CamelModel):
    """Who made the change and with what evidence. All optional here: the lane decides
    which fields are required, and the gate reports each one that is missing."""

    agent: str | None = None
    model: str | None = None
    change: str | None = Field(default=None, description="Commit SHA or pull-request URL.")
    tests: TestsEvidence | None = None
    reviewer: str | None = None
    signature: str | None = Field(
        default=None, description="Base64 DSSE envelope of a signed in-toto statement."
    )


class ReleaseFlag(CamelModel):
    key: Annotated[str, Field(min_length=1)]
    on_variant: str = "on"
    off_variant: str = "off"


class ProvenanceProblem(CamelModel):
    """An annotation that could not be read as provenance, kept for the gate and on-call."""

    key: str
    message: str
    field: str | None = None


class LaneReleaseSpec(CamelModel):
    lane: DnsLabel
    target: TargetRef
    from_revision: Revision = Field(alias="from")
    to_revision: Revision = Field(alias="to")
    provenance: Provenance = Field(default_factory=Provenance)
    provenance_problems: list[ProvenanceProblem] = Field(
        default_factory=list, description="Why some provenance could not be read."
    )
    flag: ReleaseFlag | None = Field(
        default=None, description="Feature flag ramped in step with the canary."
    )


#: Canary pods kept by name in a check's evidence; more are folded into one ``*`` tally
#: (which over-states, never under-states, how concentrated the canary's traffic is).
MAX_CANARY_PODS = 10
#: Baseline pods kept for the between-pod spread estimate (a sample is enough for a
#: variance component; a baseline of hundreds of pods does not grow the status).
MAX_BASELINE_PODS = 20


class PodTally(CamelModel):
    """One pod's counts over the release (see ``controller.core.analysis.pods``)."""

    name: Annotated[str, Field(max_length=253)]
    errors: float = 0.0
    total: float = 0.0
    scaled_baseline_errors: float = Field(
        default=0.0,
        description="Canary pods: sum over intervals of the other canary pods' errors x "
        "this pod's traffic / theirs.",
    )
    expected: float = Field(
        default=0.0,
        description="Canary pods: sum of q_i n_i, errors expected at the baseline's ratio.",
    )
    compared_expected: float = Field(
        default=0.0,
        description="Canary pods: the same over the intervals with other canary pods, at "
        "the larger of the baseline's and the other pods' ratio.",
    )
    baseline_variance: float = Field(
        default=0.0, description="Canary pods: sum of q_i n_i^2 / (the other pods' traffic)."
    )
    guard_expected: float | None = Field(
        default=None,
        description="Canary pods: errors expected at the other canary pods' ratio (this "
        "interval's, never below their release average): the scale of the pod's bias "
        "variance and the counting-tail guard's null mean (none: evidence from before it "
        "was kept, which uses compared_expected).",
    )
    compared_errors: float = Field(
        default=0.0, description="Canary pods: errors in the intervals with other canary pods."
    )
    last_errors: float = Field(default=0.0, description="Cumulative errors in the last window.")
    last_total: float = Field(default=0.0, description="Cumulative total in the last window.")


class PodEvidence(CamelModel):
    """Per-pod evidence of a sequential check whose lane declares a pod label."""

    step: int = 0
    window_seconds: int = 0
    canary: Annotated[list[PodTally], Field(max_length=MAX_CANARY_PODS + 1)] = Field(
        default_factory=list
    )
    baseline: Annotated[list[PodTally], Field(max_length=MAX_BASELINE_PODS)] = Field(
        default_factory=list
    )


class NoisePrior(CamelModel):
    """The noise a sequential check assumes before the release's own batches say
    otherwise, estimated from the baseline's history before the release started
    (``controller.core.analysis.history``). Kept in the check's status: a restart does not
    refetch it, and the audit record shows what the judge assumed and why."""

    dispersion: float = Field(
        ge=0.0,
        description="psi: relative variance of the baseline's error ratio over a batch, "
        "beyond counting noise (floored).",
    )
    batches: float = Field(ge=0.0, description="Its weight, in batches of the release.")
    history_batches: int = Field(default=0, ge=0, description="History batches it rests on.")
    baseline_errors: float = Field(
        default=0.0, ge=0.0, description="The baseline's errors in the history (incidents out)."
    )
    baseline_requests: float = Field(
        default=0.0, ge=0.0, description="The baseline's requests in the history (incidents out)."
    )
    pod_spread: float | None = Field(
        default=None, ge=0.0, description="Pod spread tau^2 of the baseline's pods, if split."
    )
    pod_weight: float = Field(default=0.0, ge=0.0, description="Its weight, in pods.")
    history_pods: int = Field(default=0, ge=0, description="Baseline pods it rests on.")


class SequentialEvidence(CamelModel):
    """What a sequential check has seen so far in this release, as running sums of
    interval-level observations (see ``controller.core.analysis.robust``). Carried in the
    check's status so that evidence accumulates over every step and survives restarts."""

    step: int = Field(default=0, description="Step of the last window seen.")
    window_seconds: int = Field(default=0, description="Length of the last window seen.")
    last_canary_errors: float = 0.0
    last_canary_total: float = 0.0
    last_baseline_errors: float = 0.0
    last_baseline_total: float = 0.0
    intervals: int = Field(default=0, description="Interval observations so far.")
    canary_errors: float = 0.0
    canary_total: float = 0.0
    baseline_errors: float = 0.0
    baseline_total: float = 0.0
    scaled_baseline_errors: float = Field(
        default=0.0, description="Sum over intervals of baseline errors x canary/baseline traffic."
    )
    canary_variance: float = Field(default=0.0, description="Sum of q_i n_i.")
    baseline_variance: float = Field(default=0.0, description="Sum of q_i n_i^2 / m_i.")
    batch_canary_errors: float = 0.0
    batch_scaled_baseline_errors: float = 0.0
    batch_canary_variance: float = Field(
        default=0.0, description="The incomplete batch's part of canaryVariance."
    )
    batch_baseline_variance: float = Field(
        default=0.0, description="The incomplete batch's part of baselineVariance."
    )
    batch_intervals: int = 0
    batches: int = Field(default=0, description="Completed batches (dispersion estimate).")
    dispersion_cc: float = 0.0
    dispersion_ck: float = 0.0
    dispersion_kk: float = 0.0
    previous_batch_canary_errors: float = 0.0
    previous_batch_scaled_baseline_errors: float = 0.0
    lag_cc: float = Field(default=0.0, description="Sum of C_b C_(b-1) over completed batches.")
    lag_ck: float = Field(default=0.0, description="Sum of C_b K_(b-1) + K_b C_(b-1).")
    lag_kk: float = Field(default=0.0, description="Sum of K_b K_(b-1).")
    dispersion_quadratic: float = Field(
        default=0.0,
        description="Sum over completed batches of the squared batch sum of q_i n_i "
        "(the multiplicative noise's scale).",
    )
    dispersion_information: float | None = Field(
        default=None,
        description="Sum over completed batches of what each tells about the "
        "overdispersion, in chi-square degrees of freedom (none: evidence from before it "
        "was kept, weighed by batch count).",
    )
    baseline_elevated: bool = Field(
        default=False,
        description="The newest interval's baseline error ratio was well above its release "
        "average (a shared incident): no single-look failure then.",
    )
    batch_incident: bool = Field(
        default=False,
        description="An interval of the incomplete batch had the baseline in an incident: "
        "no promotion until that batch is complete and the noise estimate has seen it.",
    )
    rejections_in_a_row: int = Field(
        default=0, description="Looks in a row whose regression test rejected."
    )
    rejection_excess: float = Field(
        default=0.0,
        description="The part of the contrast (canary errors beyond 1 + tolerance times "
        "the scaled baseline's) of the interval where the current run of rejections began, "
        "and of the run's later intervals with the baseline in an incident, beyond 1.345 of "
        "its own standard deviations: a confirmation must hold without it.",
    )
    pods: PodEvidence | None = Field(
        default=None, description="Per-pod counts, when the check declares a podLabel."
    )
    prior: NoisePrior | None = Field(
        default=None,
        description="The noise prior estimated from the baseline's history (none: the "
        "fixed prior).",
    )


class Measurement(CamelModel):
    """One judgement of one check, with the evidence a human needs to trust it."""

    check: str
    time: datetime
    step: int
    verdict: Verdict
    canary: float | None = None
    baseline: float | None = None
    threshold: float | None = Field(
        default=None, description="The check's limit, as the lane declares it (never alpha)."
    )
    alpha: float | None = Field(default=None, description="Significance level of a test.")
    p_value: float | None = Field(default=None, description="The test's p-value.")
    statistic: str | None = Field(default=None, description="e.g. 'msprt p=0.003' or 'ratio=4.6'.")
    query: str | None = None
    message: str = ""
    out_of_reach: bool = Field(
        default=False,
        description="Inconclusive, and the evidence to pass or fail cannot come at this "
        "step however long it runs (a canary of too few pods that looks beyond the MDE): "
        "the step ends at once as onEvidenceDeadline says.",
    )
    evidence: SequentialEvidence | None = Field(
        default=None,
        description="Sequential checks: the evidence after this look (folded into the "
        "check's status; not kept in the measurement history).",
    )


class CheckStatus(CamelModel):
    """Counters per check, as Argo Rollouts keeps them per metric."""

    name: str
    failures: int = Field(default=0, description="Fails over the whole release.")
    errors: int = 0
    consecutive_errors: int = 0
    inconclusive: int = Field(default=0, description="Inconclusive results over the release.")
    consecutive_inconclusive: int = Field(
        default=0, description="Inconclusive results in a row at the current step."
    )
    passes_at_step: int = 0
    last_verdict: Verdict | None = None
    last_step: int | None = None
    evidence: SequentialEvidence | None = Field(
        default=None, description="Sequential checks: interval-level evidence of the release."
    )


class LaneReleaseStatus(CamelModel):
    phase: Phase = Phase.PENDING
    current_step: int = Field(
        default=0, description="Index of the step (0-based); people read `step` (1/3)."
    )
    step: str | None = Field(
        default=None, description="The step as people count it: '1/3' is the first of three."
    )
    weight: Annotated[int, Field(ge=0, le=100)] = 0
    max_weight_reached: Annotated[int, Field(ge=0, le=100)] = 0
    traffic_share: Annotated[int, Field(ge=0, le=100)] | None = Field(
        default=None,
        description="The canary's share of traffic at the current step as achieved: in "
        "replica mode the closest share the workload's replicas allow to the weight.",
    )
    step_started_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_analysis_at: datetime | None = None
    checks: list[CheckStatus] = Field(default_factory=list)
    measurements: list[Measurement] = Field(
        default_factory=list, description="Most recent measurements (bounded history)."
    )
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    message: str = ""
    rollback_reason: str | None = None
    gate_reason: str | None = None
    flag_weights: list[int] = Field(default_factory=list)
    human_override: str | None = None
    autonomy_level: AutonomyLevel | None = Field(
        default=None,
        description="The author's autonomy level in the lane when the release was first seen.",
    )
    record_seq: int = Field(default=0, description="Audit records issued so far.")
    outbox: list[AuditRecord] = Field(
        default_factory=list,
        description="Audit records committed with this status but not yet confirmed "
        "written to every sink; flushed (and deduplicated by id) after a restart.",
    )

    @field_validator("message", "rollback_reason", "gate_reason", "human_override")
    @classmethod
    def _printable(cls, text: str | None) -> str | None:
        # What `kubectl get -o yaml` and `changelane status` show on-call.
        return _printable_or_none(text)


def _printable_or_none(text: str | None) -> str | None:
    return None if text is None else printable(text, allow="\n")


class LaneRelease(CamelModel):
    api_version: Literal["changelane.dev/v1alpha1"] = "changelane.dev/v1alpha1"
    kind: Literal["LaneRelease"] = "LaneRelease"
    metadata: ObjectMeta
    spec: LaneReleaseSpec
    status: LaneReleaseStatus = Field(default_factory=LaneReleaseStatus)

    @property
    def name(self) -> str:
        return self.metadata.name
