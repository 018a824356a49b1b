"""The release state machine (pure).

``decide`` is the whole brain of the controller: given a lane, a release (whose status holds
all progress) and what was observed now, it returns the new status, the actions to apply
and one audit record per decision. It does no I/O and reads no clock, so evaluating the
same state and observation twice gives the same decision, which is what makes a restart
safe: the runtime re-runs it on the stored status and re-applies idempotent actions.

Phases::

    Pending -> Rejected                      (permanent gate failure: provenance, agent)
    Pending/Gated -> Gated                   (kill switch off, window closed, limits)
    Pending/Gated -> Progressing(step 0)
    Progressing -> Progressing(step i+1)     (canary ready, minDuration elapsed, checks pass)
    Progressing(last step) -> Promoting -> Promoted
    Progressing -> Paused -> Progressing     (limits reached, autonomy off; human resume)
    any non-terminal -> RollingBack -> RolledBack

Over 400 lines on purpose: it is one state machine, and the phase handlers, the consistency
check and the transitions they share read best side by side; what is not the machine
(judging a measurement, gates, statistics) lives in ``core.analysis`` and ``core.gates``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from controller.core.analysis.policy import Outcome, apply_measurement
from controller.core.audit import AuditProvenance, AuditRecord, Decision, Evidence
from controller.core.autonomy.levels import author_of, release_level
from controller.core.gates import GateReport
from controller.core.models import (
    AutonomyLevel,
    ChangeLane,
    CheckStatus,
    Condition,
    ConditionStatus,
    LaneRelease,
    LaneReleaseStatus,
    Measurement,
    Phase,
    Verdict,
    parse_duration,
)
from controller.core.models.common import set_condition
from controller.core.replica_plan import achievable_share

#: Measurements kept in the status (ten ticks of a two-check lane); the durable audit log
#: keeps them all with their evidence. Every status write sends the whole list (a merge
#: patch replaces lists) and every cached copy holds it: at 100 a release reconcile took
#: 23 ms at p50 instead of 5 (the write, its encoding, the copy), and 1,000 releases held
#: 54 MiB of history in the informer's cache (docs/scale.md, fifth session).
MEASUREMENT_HISTORY = 20
#: How soon to look again while waiting on something quick (gates, promotion, rollback).
SHORT_REQUEUE_S = 2.0


# --------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class CanaryObservation:
    desired_replicas: int
    ready_replicas: int
    crash_reason: str | None = None

    @property
    def ready(self) -> bool:
        return self.ready_replicas >= self.desired_replicas


class CommandKind(StrEnum):
    PROMOTE = "promote"
    ABORT = "abort"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True)
class HumanCommand:
    kind: CommandKind
    actor: str
    reason: str = ""


@dataclass(frozen=True)
class FlagObservation:
    """The release's feature flag as read now: the on-variant weight in force (None when
    the flag is not a ramp the controller wrote) and anything that stops the controller
    from ramping it (someone else edited it, the definitions do not parse, ...)."""

    weight: int | None
    problem: str | None = None


@dataclass(frozen=True)
class Observation:
    """What the runtime saw now. ``None`` means "not observed this time", never "bad"."""

    now: datetime
    gates: GateReport | None = None
    canary: CanaryObservation | None = None
    measurements: tuple[Measurement, ...] = ()
    promotion_complete: bool = False
    rollback_complete: bool = False
    command: HumanCommand | None = None
    #: The release's flag, for flag-ramped releases (None: not observed).
    flag: FlagObservation | None = None
    #: Replica mode: the workload's replicas, which bound the traffic shares a weight can
    #: have (None in other modes, where the weight is exact).
    replica_total: int | None = None


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class SetCanaryWeight:
    """Give the canary this share of traffic (replicas or route weight); 0 removes it."""

    weight: int


@dataclass(frozen=True)
class SetFlagWeight:
    """Ramp the release's feature flag: this percent of users get the new variant."""

    weight: int


@dataclass(frozen=True)
class DisableFlag:
    """Switch the release's feature flag off: the fastest way back."""


@dataclass(frozen=True)
class PromoteCanary:
    """Copy the canary's pod template into the stable copy, then retire the canary."""


Action = SetCanaryWeight | SetFlagWeight | DisableFlag | PromoteCanary


@dataclass(frozen=True)
class ReleaseDecision:
    status: LaneReleaseStatus
    actions: tuple[Action, ...] = ()
    records: tuple[AuditRecord, ...] = ()
    requeue_after: float | None = None
    #: Shadow lanes analyse and record but the runtime must not apply the actions.
    shadow: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.records)


# --------------------------------------------------------------------------- the machine


@dataclass
class _Context:
    lane: ChangeLane
    release: LaneRelease
    obs: Observation
    status: LaneReleaseStatus
    actions: list[Action] = field(default_factory=list)
    records: list[AuditRecord] = field(default_factory=list)
    requeue_after: float | None = None

    @property
    def steps_count(self) -> int:
        return len(self.lane.spec.strategy.steps)

    @property
    def uses_replicas(self) -> bool:
        return not self.lane.spec.strategy.flag_only

    @property
    def ramps_flag(self) -> bool:
        return self.release.spec.flag is not None and self.lane.spec.strategy.flag_ramp is not None

    def record(
        self,
        decision: Decision,
        reason: str,
        *,
        phase_from: Phase | None = None,
        message: str = "",
        evidence: tuple[Evidence, ...] = (),
        actions: tuple[Action, ...] = (),
        actor: str = "controller",
    ) -> None:
        spec = self.release.spec
        p = spec.provenance
        tests = None
        if p.tests is not None:
            tests = p.tests.result + (f" ({p.tests.command})" if p.tests.command else "")
        self.records.append(
            AuditRecord(
                time=self.obs.now,
                lane=self.lane.name,
                namespace=spec.target.namespace,
                workload=spec.target.name,
                release=self.release.name,
                phase_from=(phase_from or self.status.phase).value,
                phase_to=self.status.phase.value,
                from_revision=spec.from_revision.pod_template_hash,
                to_revision=spec.to_revision.pod_template_hash,
                from_images=list(spec.from_revision.images),
                to_images=list(spec.to_revision.images),
                provenance=AuditProvenance(
                    agent=p.agent, model=p.model, change=p.change, tests=tests, reviewer=p.reviewer
                ),
                decision=decision,
                reason=reason,
                message=message,
                weight=self.status.weight,
                step=self.status.current_step,
                steps=self.steps_count,
                evidence=list(evidence),
                actions=[_describe_action(a) for a in actions],
                actor=actor,
            )
        )

    def do(self, *actions: Action) -> tuple[Action, ...]:
        self.actions.extend(a for a in actions if a not in self.actions)
        return actions

    def requeue(self, seconds: float) -> None:
        seconds = max(seconds, 0.5)
        if self.requeue_after is None or seconds < self.requeue_after:
            self.requeue_after = seconds

    def condition(self, type_: str, status: ConditionStatus, reason: str, message: str) -> None:
        _set_condition(
            self.status,
            type_,
            status,
            reason,
            message,
            self.obs.now,
            self.release.metadata.generation,
        )


def _describe_action(action: Action) -> str:
    match action:
        case SetCanaryWeight(weight=w):
            return f"set canary weight {w}%"
        case SetFlagWeight(weight=w):
            return f"set flag weight {w}%"
        case DisableFlag():
            return "disable flag"
        case PromoteCanary():
            return "promote canary into primary"
    raise AssertionError(action)  # pragma: no cover


def _set_condition(
    status: LaneReleaseStatus,
    type_: str,
    value: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> None:
    condition = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=now,
        observed_generation=generation,
    )
    status.conditions = set_condition(status.conditions, condition)


def _working_copy(status: LaneReleaseStatus) -> LaneReleaseStatus:
    """A copy ``decide`` may change without touching its input. The measurement history
    is a new list of the same entries: nothing changes a measurement once made, and a
    deep copy of a full history was most of a reconcile's decision time."""
    history = status.measurements
    copy = status.model_copy(update={"measurements": []}).model_copy(deep=True)
    copy.measurements = list(history)
    return copy


def decide(lane: ChangeLane, release: LaneRelease, obs: Observation) -> ReleaseDecision:
    """The next step of one release. Pure: same inputs, same decision."""
    status = _working_copy(release.status)
    shadow = lane.spec.gates.mode.value == "shadow"
    if status.phase.terminal:
        return ReleaseDecision(status=status, shadow=shadow)
    ctx = _Context(lane=lane, release=release, obs=obs, status=status)
    if release.metadata.generation is not None:
        status.observed_generation = release.metadata.generation
    if status.autonomy_level is None:
        # Fixed when first seen: a change of the author's level applies to its next release.
        status.autonomy_level = release_level(lane, release)
    problem = inconsistency(lane, status)
    if problem is not None:
        _contain(ctx, problem)
    else:
        if obs.command is not None:
            _apply_command(ctx, obs.command)
        if status.record_seq == 0 and not status.outbox:
            ctx.record(Decision.RELEASE_SEEN, "new pod template on a lane workload")
        handler = _HANDLERS.get(status.phase)
        if handler is not None:
            handler(ctx)
    if shadow:
        _as_shadow(ctx)
    _number_records(ctx)
    return ReleaseDecision(
        status=ctx.status,
        actions=tuple(ctx.actions),
        records=tuple(ctx.records),
        requeue_after=ctx.requeue_after,
        shadow=shadow,
    )


# --------------------------------------------------------------------------- consistency


@dataclass(frozen=True)
class Inconsistency:
    """A stored status the machine can never produce (a hand edit, a bug, a lane edited
    under a release): ``field`` is the wire path of the offending field."""

    field: str
    message: str


# Complexity D by design: one guard per impossible state, checked in order; the first found
# names the field (see the docstring).
def inconsistency(lane: ChangeLane, status: LaneReleaseStatus) -> Inconsistency | None:
    """The first impossible thing in a non-terminal ``status``, or None. Pure.

    Checked before anything acts on the status, so that a status saying "Promoting" that
    no analysis earned, or a weight the lane does not allow, is never carried out.
    """
    if status.phase.terminal:
        return None
    steps = lane.spec.strategy.steps
    max_weight = lane.spec.strategy.max_weight
    phase, s = status.phase, status

    def bad(field: str, message: str) -> Inconsistency:
        return Inconsistency(field, f"{field}: {message} (phase {phase.value})")

    if s.weight > max_weight:
        return bad("status.weight", f"{s.weight}% is above the lane's maximum {max_weight}%")
    if s.max_weight_reached > max_weight:
        return bad(
            "status.maxWeightReached",
            f"{s.max_weight_reached}% is above the lane's maximum {max_weight}%",
        )
    if phase is Phase.ROLLING_BACK:
        return bad("status.weight", f"{s.weight}% while rolling back") if s.weight else None
    if not 0 <= s.current_step < len(steps):
        return bad(
            "status.currentStep",
            f"{s.current_step} is not a step of the lane (0..{len(steps) - 1})",
        )
    if s.weight > s.max_weight_reached:
        return bad(
            "status.weight", f"{s.weight}% is above maxWeightReached {s.max_weight_reached}%"
        )
    in_flight = s.step_started_at is not None
    if phase in (Phase.PENDING, Phase.GATED) or (phase is Phase.PAUSED and not in_flight):
        if s.weight:
            return bad("status.weight", f"{s.weight}% before the canary started")
        if s.current_step:
            return bad("status.currentStep", f"{s.current_step} before the canary started")
        return None
    step_weight = steps[s.current_step].weight
    if phase in (Phase.PROGRESSING, Phase.PAUSED):
        if not in_flight:
            return bad("status.stepStartedAt", "missing while the canary is in flight")
        if s.started_at is None:
            return bad("status.startedAt", "missing while the canary is in flight")
        if s.weight != step_weight:
            return bad("status.weight", f"{s.weight}% but step {s.current_step} is {step_weight}%")
    if phase is Phase.PROMOTING and s.human_override is None:
        if s.current_step != len(steps) - 1 or s.weight != max_weight:
            return bad(
                "status.phase",
                f"Promoting at step {s.current_step} ({s.weight}%), not at full exposure "
                f"({max_weight}%)",
            )
        if not _checks_passed(lane, s):
            return bad("status.phase", "Promoting without a Pass of every check at full exposure")
    return None


def _checks_passed(lane: ChangeLane, status: LaneReleaseStatus) -> bool:
    by_name = {c.name: c for c in status.checks}
    for check in lane.spec.analysis.checks:
        c = by_name.get(check.name)
        if c is None or c.last_step != status.current_step or c.passes_at_step < 1:
            return False
        if c.last_verdict is not Verdict.PASS:
            return False
    return True


def _contain(ctx: _Context, problem: Inconsistency) -> None:
    """The safe outcome for an impossible status: canary to zero, primary untouched."""
    ctx.condition("InvalidState", ConditionStatus.TRUE, "InconsistentStatus", problem.message)
    if ctx.status.phase is Phase.ROLLING_BACK:
        ctx.status.weight = 0  # already going back: just stop claiming exposure
        ctx.status.traffic_share = 0
        _rollback_actions(ctx)
        ctx.requeue(SHORT_REQUEUE_S)
        return
    _roll_back(ctx, f"invalid state: {problem.message}", condition_reason="InvalidState")


#: How a shadow lane words what it would have done, per decision.
_WOULD_HAVE = {
    Decision.RELEASE_SEEN: "recorded a new release",
    Decision.GATED: "held the release",
    Decision.REJECTED: "rejected the release",
    Decision.STARTED: "started the canary",
    Decision.STEP_ADVANCED: "advanced the canary",
    Decision.MEASUREMENT: "measured",
    Decision.PAUSED: "paused the release",
    Decision.RESUMED: "resumed the release",
    Decision.PROMOTING: "promoted",
    Decision.PROMOTED: "finished promoting",
    Decision.ROLLING_BACK: "rolled back",
    Decision.ROLLED_BACK: "finished rolling back",
    Decision.HUMAN_OVERRIDE: "applied a human override",
}


def _as_shadow(ctx: _Context) -> None:
    """Shadow lanes: every record is a ``shadow`` decision saying what would have been
    done (phases are the hypothetical ones), and the status says nothing was applied."""
    shadowed = []
    for record in ctx.records:
        verb = _WOULD_HAVE.get(record.decision, record.decision.value)
        shadowed.append(
            record.model_copy(
                update={
                    "decision": Decision.SHADOW,
                    "reason": f"would have {verb}: {record.reason}",
                }
            )
        )
        if record.decision is not Decision.MEASUREMENT:
            ctx.status.message = f"shadow: would have {verb}: {record.reason}"
    ctx.records = shadowed
    ctx.condition(
        "Shadow",
        ConditionStatus.TRUE,
        "ShadowMode",
        "the lane is in shadow mode: decisions are analysed and recorded, never applied",
    )


def _number_records(ctx: _Context) -> None:
    """Give each record a stable id and put it in the outbox committed with the status."""
    key = ctx.release.metadata.uid or f"{ctx.release.metadata.namespace}/{ctx.release.name}"
    numbered = []
    for record in ctx.records:
        ctx.status.record_seq += 1
        numbered.append(record.model_copy(update={"id": f"{key}/{ctx.status.record_seq}"}))
    ctx.records = numbered
    ctx.status.outbox = [*ctx.status.outbox, *numbered]


# --------------------------------------------------------------------------- transitions


def _enter(ctx: _Context, phase: Phase) -> Phase:
    previous = ctx.status.phase
    ctx.status.phase = phase
    if phase is not previous:
        # A message belongs to the state it describes: never "paused: ..." after a resume.
        ctx.status.message = _phase_message(ctx, phase)
    if phase.terminal:
        ctx.status.finished_at = ctx.obs.now
    return previous


def _phase_message(ctx: _Context, phase: Phase) -> str:
    """What a phase says until its handler says more."""
    if phase is Phase.PROGRESSING:
        return (
            f"step {ctx.status.current_step + 1}/{ctx.steps_count}: canary at {ctx.status.weight}%"
        )
    return ""


def _start(ctx: _Context) -> None:
    previous = _enter(ctx, Phase.PROGRESSING)
    ctx.status.started_at = ctx.status.started_at or ctx.obs.now
    ctx.status.gate_reason = None
    ctx.condition("Gated", ConditionStatus.FALSE, "GatesPassed", "all gates passed")
    _go_to_step(ctx, 0, Decision.STARTED, previous)


def _go_to_step(ctx: _Context, index: int, decision: Decision, previous: Phase) -> None:
    step = ctx.lane.spec.strategy.steps[index]
    s = ctx.status
    s.current_step = index
    s.step = f"{index + 1}/{ctx.steps_count}"
    s.weight = step.weight
    s.max_weight_reached = max(s.max_weight_reached, step.weight)
    s.step_started_at = ctx.obs.now
    s.last_analysis_at = None
    actions = _weight_actions(ctx, step.weight)
    total = ctx.obs.replica_total
    surge = ctx.lane.spec.strategy.traffic.surge
    baseline = ctx.lane.compares_to_baseline
    s.traffic_share = (
        achievable_share(total, step.weight, surge=surge, keep_baseline=baseline)
        if total is not None
        else step.weight
    )
    achievable = (
        f" ({s.traffic_share}% of the pods: the closest {total} replicas allow)"
        if s.traffic_share != step.weight
        else ""
    )
    message = f"step {index + 1}/{ctx.steps_count}: canary at {step.weight}%{achievable}"
    s.message = message
    ctx.condition("Progressing", ConditionStatus.TRUE, "StepStarted", message)
    ctx.record(
        decision,
        f"canary weight set to {step.weight}%{achievable}",
        phase_from=previous,
        message=message,
        actions=actions,
    )
    ctx.requeue(min(parse_duration(step.min_duration), _interval(ctx)))


def _weight_actions(ctx: _Context, weight: int) -> tuple[Action, ...]:
    actions: list[Action] = []
    if ctx.uses_replicas:
        actions.append(SetCanaryWeight(weight))
    if ctx.ramps_flag:
        actions.append(SetFlagWeight(weight))
    return ctx.do(*actions)


def _note_flag_weight(ctx: _Context, wanted: int) -> bool:
    """Record the flag weight in ``flagWeights`` once it is seen in force; True when the
    flag is where the release wants it (or is not observed, or not ramped)."""
    flag = ctx.obs.flag
    if not ctx.ramps_flag or flag is None:
        return True
    if flag.problem is not None or flag.weight != wanted:
        return False
    weights = ctx.status.flag_weights
    if not weights or weights[-1] != wanted:
        weights.append(wanted)
    return True


def _rollback_actions(ctx: _Context) -> tuple[Action, ...]:
    actions: list[Action] = []
    # Flag off first: it takes effect in seconds and needs no pod to change.
    if ctx.ramps_flag and ctx.lane.spec.rollback.flag_off_first:
        actions.append(DisableFlag())
    if ctx.uses_replicas:
        actions.append(SetCanaryWeight(0))
    if ctx.ramps_flag and not ctx.lane.spec.rollback.flag_off_first:
        actions.append(DisableFlag())
    return ctx.do(*actions)


def _roll_back(
    ctx: _Context,
    reason: str,
    evidence: tuple[Evidence, ...] = (),
    actor: str = "controller",
    condition_reason: str = "AnalysisFailed",
) -> None:
    previous = _enter(ctx, Phase.ROLLING_BACK)
    ctx.status.rollback_reason = reason
    ctx.status.weight = 0
    ctx.status.traffic_share = 0
    ctx.status.message = f"rolling back: {reason}"
    ctx.condition("Progressing", ConditionStatus.FALSE, condition_reason, reason)
    actions = _rollback_actions(ctx)
    ctx.record(
        Decision.ROLLING_BACK,
        reason,
        phase_from=previous,
        evidence=evidence,
        actions=actions,
        actor=actor,
    )
    ctx.requeue(SHORT_REQUEUE_S)


def _pause(
    ctx: _Context, reason: str, actor: str = "controller", condition_reason: str = "Paused"
) -> None:
    previous = _enter(ctx, Phase.PAUSED)
    ctx.status.message = f"paused: {reason}"
    ctx.condition("Progressing", ConditionStatus.FALSE, condition_reason, reason)
    ctx.record(Decision.PAUSED, reason, phase_from=previous, actor=actor)


def _promote(ctx: _Context, reason: str, actor: str = "controller") -> None:
    previous = _enter(ctx, Phase.PROMOTING)
    ctx.status.message = "promoting: copying the canary's pod template into the primary"
    ctx.condition("Progressing", ConditionStatus.TRUE, "Promoting", reason)
    actions = ctx.do(PromoteCanary())
    ctx.record(Decision.PROMOTING, reason, phase_from=previous, actions=actions, actor=actor)
    ctx.requeue(SHORT_REQUEUE_S)


def _interval(ctx: _Context) -> float:
    return parse_duration(ctx.lane.spec.analysis.interval)


# --------------------------------------------------------------------------- human commands


def _apply_command(ctx: _Context, cmd: HumanCommand) -> None:
    phase = ctx.status.phase
    why = f" ({cmd.reason})" if cmd.reason else ""
    in_flight = phase in (Phase.PROGRESSING, Phase.PAUSED)
    if cmd.kind is CommandKind.ABORT and phase not in (Phase.ROLLING_BACK, Phase.PROMOTING):
        if phase in (Phase.PENDING, Phase.GATED):
            previous = _enter(ctx, Phase.REJECTED)
            reason = f"aborted by {cmd.actor}{why}"
            ctx.status.message = reason
            ctx.condition("Progressing", ConditionStatus.FALSE, "Aborted", reason)
            ctx.record(Decision.HUMAN_OVERRIDE, reason, phase_from=previous, actor=cmd.actor)
        else:
            _roll_back(
                ctx, f"aborted by {cmd.actor}{why}", actor=cmd.actor, condition_reason="Aborted"
            )
    elif cmd.kind is CommandKind.PAUSE and phase in (Phase.PROGRESSING, Phase.GATED, Phase.PENDING):
        ctx.status.gate_reason = None  # a human pause waits for a human resume
        _pause(ctx, f"paused by {cmd.actor}{why}", actor=cmd.actor)
    elif cmd.kind is CommandKind.RESUME and phase is Phase.PAUSED:
        if ctx.status.autonomy_level is AutonomyLevel.SHADOW:
            # A human let a shadow-level release ramp: it ramps supervised.
            ctx.status.autonomy_level = AutonomyLevel.SUPERVISED
        previous = _enter(ctx, Phase.PROGRESSING if ctx.status.step_started_at else Phase.PENDING)
        ctx.status.gate_reason = None
        # Limits start counting afresh after a human looked at the release.
        ctx.status.checks = [
            c.model_copy(update={"failures": 0, "consecutive_errors": 0, "inconclusive": 0})
            for c in ctx.status.checks
        ]
        ctx.status.step_started_at = ctx.obs.now if ctx.status.step_started_at else None
        ctx.condition("Progressing", ConditionStatus.TRUE, "Resumed", f"resumed by {cmd.actor}")
        ctx.record(
            Decision.RESUMED, f"resumed by {cmd.actor}{why}", phase_from=previous, actor=cmd.actor
        )
    elif cmd.kind is CommandKind.PROMOTE and in_flight:
        ctx.status.human_override = f"promoted by {cmd.actor}{why}"
        ctx.record(Decision.HUMAN_OVERRIDE, ctx.status.human_override, actor=cmd.actor)
        _promote(ctx, ctx.status.human_override, actor=cmd.actor)


# --------------------------------------------------------------------------- phase handlers


def _on_pending(ctx: _Context) -> None:
    gates = ctx.obs.gates
    if gates is None:
        ctx.requeue(SHORT_REQUEUE_S)
        return
    if gates.rejections:
        reason = gates.summary()
        previous = _enter(ctx, Phase.REJECTED)
        ctx.status.message = f"rejected: {reason}"
        ctx.condition("Progressing", ConditionStatus.FALSE, "Rejected", reason)
        ctx.record(Decision.REJECTED, reason, phase_from=previous)
        return
    if gates.blocks:
        reason = gates.summary()
        if ctx.status.phase is not Phase.GATED or ctx.status.gate_reason != reason:
            previous = _enter(ctx, Phase.GATED)
            ctx.status.gate_reason = reason
            ctx.status.message = f"gated: {reason}"
            ctx.condition("Gated", ConditionStatus.TRUE, "GateClosed", reason)
            ctx.record(Decision.GATED, reason, phase_from=previous)
        retry = [r.retry_after for r in gates.blocks if r.retry_after is not None]
        wait = (min(retry) - ctx.obs.now).total_seconds() if retry else _interval(ctx)
        ctx.requeue(min(max(wait, SHORT_REQUEUE_S), _interval(ctx)))
        return
    if ctx.status.autonomy_level is AutonomyLevel.SHADOW:
        ctx.status.gate_reason = None  # only a human resume lets it ramp
        _pause(
            ctx,
            f"{_author(ctx)} is at autonomy level shadow in this lane: nothing moves "
            "until a human resumes the release (it then ramps supervised) or aborts it",
            condition_reason="AwaitingHuman",
        )
        return
    _start(ctx)


# Complexity D by design: the order of these checks is the safety policy (harm first, then
# autonomy, then the flag, then readiness and time); keeping it in one body keeps it visible.
def _on_progressing(ctx: _Context) -> None:
    obs, s = ctx.obs, ctx.status
    # Seeing the flag in force is a fact about exposure, not a decision: record it before
    # anything below can end the tick, so a rollback on this same tick still reports it.
    flag_ready = _note_flag_weight(ctx, s.weight)
    # Evidence of harm comes first: a crash loop or a failed check rolls back even when
    # the same tick also finds autonomy switched off.
    if obs.canary is not None and obs.canary.crash_reason and ctx.uses_replicas:
        _roll_back(
            ctx,
            f"canary is crash-looping: {obs.canary.crash_reason}",
            condition_reason="CanaryFailed",
        )
        return
    if _judge_measurements(ctx):
        return
    if obs.gates is not None and obs.gates.autonomy_off:
        reason = f"autonomy switched off: {obs.gates.summary()}"
        if ctx.lane.spec.gates.when_autonomy_off == "rollback":
            _roll_back(ctx, reason, condition_reason="AutonomyOff")
        else:
            s.gate_reason = reason
            _pause(ctx, reason, condition_reason="AutonomyOff")
        return
    if ctx.ramps_flag and obs.flag is not None and obs.flag.problem is not None:
        # A human (or another tool) changed the flag: stop, say so, and do not fight it.
        s.gate_reason = None  # only a human resume continues
        _pause(ctx, f"feature flag: {obs.flag.problem}", condition_reason="FlagEdited")
        return
    step = ctx.lane.spec.strategy.steps[s.current_step]
    started = s.step_started_at or obs.now
    elapsed = (obs.now - started).total_seconds()
    canary_ready = obs.canary.ready if obs.canary is not None else not ctx.uses_replicas
    if not (canary_ready and flag_ready):
        deadline = parse_duration(ctx.lane.spec.strategy.progress_deadline)
        if elapsed > deadline:
            what = "canary not ready" if not canary_ready else f"flag not at {s.weight}%"
            _roll_back(
                ctx,
                f"{what} after {elapsed:.0f}s (progressDeadline "
                f"{ctx.lane.spec.strategy.progress_deadline})",
                condition_reason="ProgressDeadlineExceeded",
            )
            return
        ctx.requeue(SHORT_REQUEUE_S)
        return
    min_duration = parse_duration(step.min_duration)
    if elapsed < min_duration:
        ctx.requeue(min(min_duration - elapsed, _interval(ctx)))
        return
    if step.analysis and not _all_checks_passed_at_step(ctx):
        if elapsed >= parse_duration(ctx.lane.spec.strategy.evidence_deadline):
            _end_at_evidence_deadline(ctx, elapsed)
            return
        if _evidence_out_of_reach(ctx):
            # Waiting for the deadline cannot change the answer: end as it would, now.
            _end_at_evidence_deadline(ctx, elapsed, out_of_reach=True)
            return
        ctx.requeue(_interval(ctx))
        return
    if s.current_step + 1 < ctx.steps_count:
        _go_to_step(ctx, s.current_step + 1, Decision.STEP_ADVANCED, Phase.PROGRESSING)
        return
    if s.autonomy_level is AutonomyLevel.SUPERVISED:
        s.gate_reason = None  # only a human promote (or resume) continues
        _pause(
            ctx,
            f"every check passed at full exposure ({s.weight}%); {_author(ctx)} is "
            "supervised in this lane: promotion waits for a human `changelane promote`",
            condition_reason="AwaitingPromotion",
        )
        return
    _promote(ctx, f"every check passed at full exposure ({s.weight}%)")


def _latest_at_step(s: LaneReleaseStatus) -> dict[str, Measurement]:
    return {m.check: m for m in s.measurements if m.step == s.current_step}


def _evidence_out_of_reach(ctx: _Context) -> bool:
    """A check's latest look at this step found the evidence to decide out of reach at
    this exposure however long the step runs (a one-pod canary that looks beyond the MDE,
    controller.core.analysis.robust.regression_reach). Once the release was resumed at
    this step (a human read that message and let it continue), the deadline decides. A
    lane whose deadline promotes waits for it: ending early there would move traffic onto
    a canary that looks beyond the MDE sooner than its author accepted."""
    if ctx.lane.spec.strategy.on_evidence_deadline == "promote":
        return False
    s = ctx.status
    progressing = next((c for c in s.conditions if c.type == "Progressing"), None)
    if progressing is not None and progressing.reason == "Resumed":
        return False
    latest = _latest_at_step(s)
    return any(
        m.out_of_reach and m.verdict is Verdict.INCONCLUSIVE
        for m in latest.values()
        if any(c.name == m.check and c.last_step == s.current_step for c in s.checks)
    )


def _end_at_evidence_deadline(ctx: _Context, elapsed: float, *, out_of_reach: bool = False) -> None:
    """A step that could not gather the evidence to pass ends as the lane says. The reason
    carries each unfinished check's latest measurement (what it saw, what it needs).
    ``out_of_reach``: ends before the deadline, because a check found that evidence out of
    reach at this step (the ending is the deadline's, only sooner)."""
    strategy, s = ctx.lane.spec.strategy, ctx.status
    latest = _latest_at_step(s)
    verdicts = {c.name: c.last_verdict if c.last_step == s.current_step else None
                for c in s.checks}  # fmt: skip
    unfinished = [
        latest[name].message if name in latest else f"check {name}: no measurement"
        for name in (c.name for c in ctx.lane.spec.analysis.checks)
        if verdicts.get(name) is not Verdict.PASS
    ]
    why = (
        "cannot gather the evidence to pass at this exposure"
        if out_of_reach
        else "without the evidence to pass"
    )
    reason = (
        f"step {s.current_step + 1} {why} after {elapsed:.0f}s "
        f"(evidenceDeadline {strategy.evidence_deadline}, onEvidenceDeadline "
        f"{strategy.on_evidence_deadline}): " + "; ".join(unfinished)
    )
    condition = "EvidenceOutOfReach" if out_of_reach else "EvidenceDeadline"
    action = strategy.on_evidence_deadline
    only_short = all(
        verdicts.get(c.name) in (Verdict.PASS, Verdict.INCONCLUSIVE)
        for c in ctx.lane.spec.analysis.checks
    )
    if action == "rollback":
        _roll_back(ctx, reason, condition_reason=condition)
    elif action == "promote" and only_short:
        # Nothing failed and nothing is missing: the lane accepts the shortfall.
        if s.current_step + 1 < ctx.steps_count:
            _go_to_step(ctx, s.current_step + 1, Decision.STEP_ADVANCED, Phase.PROGRESSING)
        else:
            s.human_override = f"lane policy: {reason}"
            _promote(ctx, s.human_override)
    else:
        s.gate_reason = None  # a human decides
        _pause(ctx, reason, condition_reason=condition)


def _author(ctx: _Context) -> str:
    agent, model = author_of(ctx.release)
    return f"agent {agent} (model {model})"


def _all_checks_passed_at_step(ctx: _Context) -> bool:
    return _checks_passed(ctx.lane, ctx.status)


def _judge_measurements(ctx: _Context) -> bool:
    """Fold this tick's measurements into the status; True when the phase changed."""
    s = ctx.status
    checks = {c.name: c for c in ctx.lane.spec.analysis.checks}
    worst: tuple[Outcome, str, Measurement] | None = None
    for m in ctx.obs.measurements:
        check = checks.get(m.check)
        if check is None or m.step != s.current_step:
            continue  # stale (an earlier step) or a check the lane no longer has
        current = next((c for c in s.checks if c.name == m.check), None)
        updated, outcome, reason = apply_measurement(check, current or CheckStatus(name=m.check), m)
        s.checks = [c for c in s.checks if c.name != m.check] + [updated]
        s.checks.sort(key=lambda c: c.name)
        kept = m.model_copy(update={"evidence": None})  # the check's status holds it
        s.measurements = [*s.measurements, kept][-MEASUREMENT_HISTORY:]
        s.last_analysis_at = ctx.obs.now
        ctx.record(Decision.MEASUREMENT, reason, evidence=(evidence_of(m),))
        if worst is None or outcome.severity > worst[0].severity:
            worst = (outcome, reason, m)
    if worst is None:
        return False
    outcome, reason, m = worst
    if outcome is Outcome.ROLLBACK:
        _roll_back(ctx, reason, evidence=(evidence_of(m),))
        return True
    if outcome is Outcome.PAUSE:
        _pause(ctx, reason, condition_reason="AnalysisLimitReached")
        return True
    if outcome is Outcome.HOLD:
        ctx.requeue(_interval(ctx))  # no advance: the step needs a Pass from every check
    return False


def evidence_of(m: Measurement) -> Evidence:
    """A measurement as the evidence an audit record carries."""
    return Evidence(
        check=m.check,
        verdict=m.verdict.value,
        canary=m.canary,
        baseline=m.baseline,
        threshold=m.threshold,
        alpha=m.alpha,
        p_value=m.p_value,
        statistic=m.statistic,
        query=m.query,
        message=m.message,
    )


def _on_paused(ctx: _Context) -> None:
    gates = ctx.obs.gates
    paused_by_gate = ctx.status.gate_reason is not None and ctx.status.step_started_at is not None
    if paused_by_gate and gates is not None and gates.passed:
        previous = _enter(ctx, Phase.PROGRESSING)
        ctx.status.gate_reason = None
        ctx.status.step_started_at = ctx.obs.now
        ctx.condition("Progressing", ConditionStatus.TRUE, "Resumed", "autonomy switched on")
        ctx.record(Decision.RESUMED, "autonomy switched back on", phase_from=previous)
        return
    ctx.requeue(_interval(ctx))


def _on_promoting(ctx: _Context) -> None:
    if ctx.obs.promotion_complete:
        _note_flag_weight(ctx, 100)
        previous = _enter(ctx, Phase.PROMOTED)
        ctx.status.weight = 0
        ctx.status.traffic_share = 0
        ctx.status.message = "promoted: the primary runs the new pod template"
        ctx.condition("Progressing", ConditionStatus.FALSE, "Promoted", ctx.status.message)
        ctx.record(
            Decision.PROMOTED,
            ctx.status.human_override or "promotion complete",
            phase_from=previous,
        )
        return
    ctx.do(PromoteCanary())  # idempotent: safe to repeat after a restart
    ctx.requeue(SHORT_REQUEUE_S)


def _on_rolling_back(ctx: _Context) -> None:
    if ctx.obs.rollback_complete:
        previous = _enter(ctx, Phase.ROLLED_BACK)
        ctx.status.message = f"rolled back: {ctx.status.rollback_reason}"
        ctx.record(
            Decision.ROLLED_BACK, ctx.status.rollback_reason or "rolled back", phase_from=previous
        )
        return
    if ctx.status.phase is Phase.ROLLING_BACK and not ctx.actions:
        _rollback_actions(ctx)  # idempotent: repeat until the runtime sees it done
    ctx.requeue(SHORT_REQUEUE_S)


_HANDLERS = {
    Phase.PENDING: _on_pending,
    Phase.GATED: _on_pending,
    Phase.PROGRESSING: _on_progressing,
    Phase.PAUSED: _on_paused,
    Phase.PROMOTING: _on_promoting,
    Phase.ROLLING_BACK: _on_rolling_back,
}
