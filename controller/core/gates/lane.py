"""What the lane gates need from a lane's releases, and what a new release carries (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from controller.core import labels
from controller.core.gates.provenance import evaluate_change_history, evaluate_provenance
from controller.core.gates.report import GateResult
from controller.core.models import ChangeLane, LaneRelease, LaneReleaseSpec, Phase
from controller.core.provenance_annotations import AnnotationProblem, provenance_from_annotations
from controller.core.provenance_binding import binding_problems, image_digests

IN_FLIGHT = frozenset({Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING, Phase.ROLLING_BACK})
FINISHED = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK})
#: A passing gate result that reports a broken flag source (last good definitions in use).
FLAG_SOURCE = "flagSource"
FLAG_ANNOTATION = labels.FLAG


def finished_outcomes(releases: Iterable[LaneRelease], resumed_at: datetime | None) -> list[str]:
    """Outcomes (phases) of the finished releases, oldest first, that count against the
    autonomy budget: those that finished after the lane was last resumed."""
    finished = sorted(
        (r for r in releases if r.status.phase in FINISHED and r.status.finished_at),
        key=lambda r: r.status.finished_at or datetime.min.replace(tzinfo=UTC),
    )
    return [
        r.status.phase.value
        for r in finished
        if resumed_at is None or (r.status.finished_at and r.status.finished_at > resumed_at)
    ]


def provenance_gate_results(
    lane: ChangeLane, spec: LaneReleaseSpec, lane_releases: Iterable[LaneRelease] = ()
) -> list[GateResult]:
    """The provenance, agent, signature and history gates of one release: what the
    controller evaluates, and what ``changelane provenance check`` prints."""
    problems = [AnnotationProblem(p.key, p.message, p.field) for p in spec.provenance_problems]
    results = list(
        evaluate_provenance(
            lane,
            spec.provenance,
            problems=problems,
            subject_digests=image_digests(spec.to_revision.images),
        )
    )
    results.append(
        evaluate_change_history(lane, spec.provenance, rolled_back_changes(lane_releases))
    )
    return results


def rolled_back_changes(releases: Iterable[LaneRelease]) -> dict[str, str]:
    """Change reference -> a rolled-back release that carried it."""
    return {
        r.spec.provenance.change: r.name
        for r in releases
        if r.status.phase is Phase.ROLLED_BACK and r.spec.provenance.change
    }


def release_spec_from_template(
    template: dict[str, Any], previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Provenance (and the flag to ramp) for a new LaneRelease, from pod-template
    annotations, bound to the template (and checked against the ``previous`` template the
    workload ran). Never raises; every problem is kept for the gate to report."""
    try:
        metadata = template.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise TypeError(f"annotations are a {type(annotations).__name__}")
        parsed = provenance_from_annotations(annotations)
        problems = [*parsed.problems, *binding_problems(template, previous)]
    except Exception as exc:  # a poison template must still become a Rejected release
        return _unreadable_template(exc)
    out: dict[str, Any] = {
        "provenance": parsed.provenance.to_wire(),
        "provenanceProblems": [_problem_wire(p) for p in problems],
    }
    flag = annotations.get(FLAG_ANNOTATION)
    if isinstance(flag, str) and 0 < len(flag) <= 253 and flag.isprintable():
        out["flag"] = {"key": flag}
    return out


def _problem_wire(problem: AnnotationProblem) -> dict[str, str]:
    wire = {"key": problem.key, "message": problem.message, "field": problem.field}
    return {k: v for k, v in wire.items() if v}


def _unreadable_template(exc: Exception) -> dict[str, Any]:
    problem = AnnotationProblem(
        "metadata.annotations",
        f"cannot be read ({type(exc).__name__}: {str(exc)[:200]}); expected a map of strings",
    )
    return {"provenance": {}, "provenanceProblems": [_problem_wire(problem)]}
