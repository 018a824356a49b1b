"""The provenance gates: does the release carry what its lane requires, from an agent the
lane allows, and (where the lane declares a key) a valid signature?

Every failure here is permanent: the release's provenance will not change by waiting, so
the release is Rejected with one result per missing or bad field.

* gate ``provenance``: required fields present and well-formed, tests passed;
* gate ``agent``: agent (and model) matched by one of the lane's ``agents`` rules
  (shell-style wildcards, case-sensitive);
* gate ``signature``: the DSSE envelope verifies against the lane's key, its statement
  repeats this release's provenance and names, as subjects, the digests of the images the
  pod template runs (so a signing lane needs digest-pinned images);
* gate ``history``: the change was not already rolled back in an earlier release of the
  lane (a new attempt is a new change).

Problems binding the provenance to the pod template (``changelane.dev/images``, provenance
carried over from the previous template; see :mod:`controller.core.provenance_binding`)
arrive with the annotation problems and are reported by the ``provenance`` gate.

The agent identity is always needed, whether or not the lane lists ``agent`` as required:
the lane's allowed-agent list always applies, and an anonymous release is outside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

from controller.core import provenance_binding
from controller.core.dsse import Refused, load_public_key, verify_envelope
from controller.core.gates.report import GateResult
from controller.core.models.lane import AgentRule, ChangeLane, ProvenanceField
from controller.core.models.release import Provenance
from controller.core.provenance_annotations import (
    FIELD_ANNOTATION,
    FIELD_TRAILER,
    AnnotationProblem,
)

PROVENANCE = "provenance"
AGENT = "agent"
SIGNATURE = "signature"
HISTORY = "history"


def evaluate_provenance(
    lane: ChangeLane,
    provenance: Provenance,
    *,
    problems: Iterable[AnnotationProblem] = (),
    subject_digests: Sequence[str] = (),
) -> list[GateResult]:
    """One result per failed check, or passing results for the gates that ran.

    ``problems`` are those found while reading the annotations (a malformed field is
    refused even where the lane does not require it: a release whose record is garbled is
    not trusted). ``subject_digests`` (``sha256:...``), when given, must all be subjects of
    the signed statement.
    """
    policy = lane.spec.provenance
    problem_list = [
        p for p in problems if policy.bind_images or p.field != provenance_binding.IMAGES_FIELD
    ]
    failures: list[GateResult] = [
        GateResult(PROVENANCE, False, str(problem), permanent=True) for problem in problem_list
    ]
    # A field already reported as malformed is not reported again as missing.
    bad_fields = {p.field for p in problem_list if p.field}
    required = {f.value for f in policy.required} | {ProvenanceField.AGENT.value}
    for name in sorted(required - bad_fields, key=_FIELD_ORDER.index):
        if getattr(provenance, name) is None:
            failures.append(GateResult(PROVENANCE, False, _missing(name), permanent=True))
    tests = provenance.tests
    if policy.require_tests_passed and tests is not None and tests.result != "passed":
        failures.append(
            GateResult(
                PROVENANCE,
                False,
                f"tests result is {tests.result!r}; lane {lane.name} requires 'passed'"
                + (f" (command {tests.command!r})" if tests.command else ""),
                permanent=True,
            )
        )
    results = failures or [GateResult(PROVENANCE, True, "provenance complete")]
    if provenance.agent is not None:
        results.append(_agent_result(lane, provenance))
    if policy.signature_public_key is not None:
        results.append(_signature_result(lane, provenance, subject_digests))
    return results


_FIELD_ORDER = ["agent", "model", "change", "tests", "reviewer"]


def _missing(name: str) -> str:
    where = f"annotation {FIELD_ANNOTATION[name]}"
    trailer = FIELD_TRAILER.get(name)
    if trailer:
        where += f" or trailer '{trailer}:' in changelane.dev/trailers"
    return f"missing {name} (expected {where})"


def _agent_result(lane: ChangeLane, provenance: Provenance) -> GateResult:
    agent = provenance.agent or ""
    rules = [rule for rule in lane.spec.agents if fnmatchcase(agent, rule.id)]
    if not rules:
        allowed = ", ".join(rule.id for rule in lane.spec.agents)
        return GateResult(
            AGENT,
            False,
            f"agent {agent!r} is not allowed in lane {lane.name} (allowed: {allowed})",
            permanent=True,
        )
    if any(_model_allowed(rule, provenance.model) for rule in rules):
        return GateResult(AGENT, True, f"agent {agent!r} model {provenance.model!r} allowed")
    patterns = ", ".join(sorted({m for rule in rules for m in rule.models}))
    if provenance.model is None:
        reason = (
            f"agent {agent!r} declares no model, but lane {lane.name} allows it only with "
            f"models {patterns}"
        )
    else:
        reason = (
            f"model {provenance.model!r} is not allowed for agent {agent!r} in lane "
            f"{lane.name} (allowed: {patterns})"
        )
    return GateResult(AGENT, False, reason, permanent=True)


def _model_allowed(rule: AgentRule, model: str | None) -> bool:
    if "*" in rule.models:
        return True
    return model is not None and any(fnmatchcase(model, pattern) for pattern in rule.models)


def evaluate_change_history(
    lane: ChangeLane, provenance: Provenance, rolled_back: Mapping[str, str]
) -> GateResult:
    """``rolled_back`` maps each change reference of the lane's rolled-back releases to one
    such release. A release naming one of them carries a record that was already judged."""
    earlier = rolled_back.get(provenance.change or "")
    if earlier is not None:
        return GateResult(
            HISTORY,
            False,
            f"change {provenance.change!r} was already rolled back (release {earlier}) in "
            f"lane {lane.name}; expected a new change reference for a new attempt",
            permanent=True,
        )
    return GateResult(HISTORY, True, "change not rolled back before")


def _signature_result(
    lane: ChangeLane, provenance: Provenance, subject_digests: Sequence[str]
) -> GateResult:
    def refuse(reason: str) -> GateResult:
        return GateResult(SIGNATURE, False, reason, permanent=True)

    if provenance.signature is None:
        return refuse(
            f"lane {lane.name} requires a signed in-toto statement in annotation "
            f"{FIELD_ANNOTATION['signature']}; none found"
        )
    key_pem = lane.spec.provenance.signature_public_key or ""
    # The model validated the key already; a failure here would be a programming error.
    key = load_public_key(key_pem)
    outcome = verify_envelope(provenance.signature, key)
    if isinstance(outcome, Refused):
        return refuse(f"{FIELD_ANNOTATION['signature']}: {outcome.reason}")
    predicate = outcome.statement["predicate"]
    for name in ("agent", "model", "change", "reviewer"):
        signed = predicate.get(name)
        carried = getattr(provenance, name)
        if (name in ("agent", "change") or signed is not None) and signed != carried:
            return refuse(
                f"signed statement says {name} {signed!r} but the release carries {carried!r}"
            )
    signed_tests = predicate.get("tests")
    carried_tests = provenance.tests
    if (
        isinstance(signed_tests, dict)
        and carried_tests is not None
        and signed_tests.get("result") != carried_tests.result
    ):
        return refuse(
            f"signed statement says tests {signed_tests.get('result')!r} but the release "
            f"carries {carried_tests.result!r}"
        )
    if not subject_digests:
        return refuse(
            f"lane {lane.name} requires a signature, so the pod template's images must be "
            "pinned by digest (image@sha256:...) for the signed statement to name them"
        )
    subjects = _subject_digests(outcome.statement)
    unsigned = [d for d in subject_digests if d not in subjects]
    if unsigned:
        return refuse(f"image digests {unsigned} are not subjects of the signed statement")
    return GateResult(SIGNATURE, True, "signed in-toto statement verified")


def _subject_digests(statement: dict[str, object]) -> set[str]:
    found: set[str] = set()
    subjects = statement.get("subject")
    if isinstance(subjects, list):
        for subject in subjects:
            digest = subject.get("digest") if isinstance(subject, dict) else None
            if isinstance(digest, dict):
                found.update(f"{alg}:{value}" for alg, value in digest.items())
    return found


def author_allowed(lane: ChangeLane, agent: str | None, model: str | None) -> bool:
    """Whether the lane lets this agent ship with this model (the agent gate's rule)."""
    return _agent_result(lane, Provenance(agent=agent, model=model)).passed
