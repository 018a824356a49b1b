from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from pydantic import ValidationError

from controller.core.dsse import IN_TOTO_PAYLOAD_TYPE, PREDICATE_TYPE, pae
from controller.core.gates.provenance import evaluate_provenance
from controller.core.gates.report import GateReport
from controller.core.models.release import Provenance, TestsEvidence
from controller.core.provenance_annotations import AGENT, CHANGE, provenance_from_annotations
from tests.unit.lane_fixtures import lane

COMPLETE = Provenance(
    agent="claude-code",
    model="claude-opus-4",
    change="https://github.com/acme/docs/pull/42",
    tests=TestsEvidence(result="passed", command="pytest -q"),
)


def failed(results: list[Any]) -> list[tuple[str, str]]:
    return [(r.gate, r.reason) for r in results if not r.passed]


def test_complete_provenance_passes() -> None:
    results = evaluate_provenance(lane(), COMPLETE)
    report = GateReport(tuple(results))
    assert report.passed, report.summary()
    assert {r.gate for r in results} == {"provenance", "agent"}


def test_each_missing_field_is_named_and_permanent() -> None:
    results = evaluate_provenance(lane(), Provenance(agent="claude-code", model="claude-opus-4"))
    assert failed(results) == [
        (
            "provenance",
            "missing change (expected annotation changelane.dev/change or trailer 'Change:' "
            "in changelane.dev/trailers)",
        ),
        (
            "provenance",
            "missing tests (expected annotation changelane.dev/tests or trailer 'Tests:' "
            "in changelane.dev/trailers)",
        ),
    ]
    assert all(r.permanent for r in results if not r.passed)


def test_reviewer_required_by_lane() -> None:
    strict = lane(**{"provenance.required": ["agent", "model", "change", "tests", "reviewer"]})
    assert [r for _, r in failed(evaluate_provenance(strict, COMPLETE))] == [
        "missing reviewer (expected annotation changelane.dev/reviewer or trailer "
        "'Reviewed-by:' in changelane.dev/trailers)"
    ]


def test_agent_always_needed_even_when_not_listed_required() -> None:
    relaxed = lane(**{"provenance.required": ["change"]})
    results = evaluate_provenance(relaxed, Provenance(change="abcdef1"))
    assert failed(results) == [
        (
            "provenance",
            "missing agent (expected annotation changelane.dev/agent or trailer "
            "'Assisted-by:' in changelane.dev/trailers)",
        )
    ]


def test_tests_must_have_passed_when_lane_requires() -> None:
    failing = COMPLETE.model_copy(update={"tests": TestsEvidence(result="failed", command="tox")})
    assert failed(evaluate_provenance(lane(), failing)) == [
        ("provenance", "tests result is 'failed'; lane docs-site requires 'passed' (command 'tox')")
    ]
    lenient = lane(**{"provenance.requireTestsPassed": False})
    assert failed(evaluate_provenance(lenient, failing)) == []


def test_agent_outside_allowed_list_and_model_wildcards() -> None:
    stranger = COMPLETE.model_copy(update={"agent": "rogue-bot"})
    assert failed(evaluate_provenance(lane(), stranger)) == [
        (
            "agent",
            "agent 'rogue-bot' is not allowed in lane docs-site (allowed: claude-code, docs-bot)",
        )
    ]
    wrong_model = COMPLETE.model_copy(update={"model": "gpt-5"})
    assert failed(evaluate_provenance(lane(), wrong_model)) == [
        (
            "agent",
            "model 'gpt-5' is not allowed for agent 'claude-code' in lane docs-site "
            "(allowed: claude-*)",
        )
    ]
    # docs-bot has no model restriction ("*" by default).
    docs_bot = COMPLETE.model_copy(update={"agent": "docs-bot", "model": "anything"})
    assert failed(evaluate_provenance(lane(), docs_bot)) == []
    # Agent ids take wildcards too.
    wild = lane(agents=[{"id": "ci-*", "models": ["m?"]}])
    ok = COMPLETE.model_copy(update={"agent": "ci-runner", "model": "m1"})
    assert failed(evaluate_provenance(wild, ok)) == []
    assert failed(evaluate_provenance(wild, ok.model_copy(update={"model": "m10"})))


def test_model_missing_for_model_restricted_agent_fails_safe() -> None:
    relaxed = lane(**{"provenance.required": ["agent", "change", "tests"]})
    no_model = COMPLETE.model_copy(update={"model": None})
    assert failed(evaluate_provenance(relaxed, no_model)) == [
        (
            "agent",
            "agent 'claude-code' declares no model, but lane docs-site allows it only with "
            "models claude-*",
        )
    ]


def test_parse_problems_reject_and_are_not_double_reported() -> None:
    parsed = provenance_from_annotations(
        {
            AGENT: "claude-code:claude-opus-4",
            CHANGE: "not a change",
            "changelane.dev/tests": "passed",
        }
    )
    results = evaluate_provenance(lane(), parsed.provenance, problems=parsed.problems)
    reasons = [r for _, r in failed(results)]
    assert len(reasons) == 1
    assert reasons[0].startswith("changelane.dev/change: 'not a change' is not a change reference")


# --- signatures ----------------------------------------------------------------------------


def _pem(public: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _envelope(
    sign: Any, provenance: Provenance, *, digest: str = "ab" * 32, b64: bool = True
) -> str:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "ghcr.io/acme/docs", "digest": {"sha256": digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": provenance.model_dump(mode="json", exclude_none=True),
    }
    payload = json.dumps(statement).encode()
    envelope = {
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [
            {
                "keyid": "ci",
                "sig": base64.b64encode(sign(pae(IN_TOTO_PAYLOAD_TYPE, payload))).decode(),
            }
        ],
    }
    text = json.dumps(envelope)
    return base64.b64encode(text.encode()).decode() if b64 else text


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


SHIPPED = ["sha256:" + "ab" * 32]  # the digest _envelope signs by default


def signature_results(
    signing_lane: Any, provenance: Provenance, **kw: Any
) -> list[tuple[str, str]]:
    kw.setdefault("subject_digests", SHIPPED)
    return [
        (g, r)
        for g, r in failed(evaluate_provenance(signing_lane, provenance, **kw))
        if g == "signature"
    ]


def test_valid_ed25519_signature_passes(ed_key: ed25519.Ed25519PrivateKey) -> None:
    signing = lane(**{"provenance.signaturePublicKey": _pem(ed_key.public_key())})
    signed = COMPLETE.model_copy(update={"signature": _envelope(ed_key.sign, COMPLETE)})
    results = evaluate_provenance(signing, signed, subject_digests=["sha256:" + "ab" * 32])
    assert GateReport(tuple(results)).passed
    assert any(r.gate == "signature" and r.passed for r in results)
    # Raw JSON envelopes are accepted as well as base64.
    raw = COMPLETE.model_copy(update={"signature": _envelope(ed_key.sign, COMPLETE, b64=False)})
    assert signature_results(signing, raw) == []


def test_valid_ecdsa_signature_passes() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signing = lane(**{"provenance.signaturePublicKey": _pem(key.public_key())})

    def sign(data: bytes) -> bytes:
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    signed = COMPLETE.model_copy(update={"signature": _envelope(sign, COMPLETE)})
    assert signature_results(signing, signed) == []


def test_bad_signatures_are_refused_permanently(ed_key: ed25519.Ed25519PrivateKey) -> None:
    signing = lane(**{"provenance.signaturePublicKey": _pem(ed_key.public_key())})
    other = ed25519.Ed25519PrivateKey.generate()
    cases = {
        "missing": COMPLETE,
        "wrong key": COMPLETE.model_copy(update={"signature": _envelope(other.sign, COMPLETE)}),
        "garbage": COMPLETE.model_copy(update={"signature": "%%%not base64%%%"}),
        "replayed for another change": COMPLETE.model_copy(
            update={
                "change": "https://github.com/acme/docs/pull/43",
                "signature": _envelope(ed_key.sign, COMPLETE),
            }
        ),
    }
    reasons = {}
    for name, provenance in cases.items():
        results = evaluate_provenance(signing, provenance)
        sig = [r for r in results if r.gate == "signature"]
        assert len(sig) == 1 and not sig[0].passed and sig[0].permanent, name
        reasons[name] = sig[0].reason
    assert "requires a signed in-toto statement" in reasons["missing"]
    assert "no signature in the envelope verifies" in reasons["wrong key"]
    assert "neither a JSON DSSE envelope nor base64" in reasons["garbage"]
    assert "signed statement says change" in reasons["replayed for another change"]
    # An image that the statement does not name is refused too.
    signed = COMPLETE.model_copy(update={"signature": _envelope(ed_key.sign, COMPLETE)})
    assert (
        "are not subjects"
        in signature_results(signing, signed, subject_digests=["sha256:" + "cd" * 32])[0][1]
    )


def test_tampered_payload_is_refused(ed_key: ed25519.Ed25519PrivateKey) -> None:
    signing = lane(**{"provenance.signaturePublicKey": _pem(ed_key.public_key())})
    envelope = json.loads(_envelope(ed_key.sign, COMPLETE, b64=False))
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["agent"] = "rogue-bot"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    tampered = COMPLETE.model_copy(update={"agent": "rogue-bot", "signature": json.dumps(envelope)})
    assert "no signature in the envelope verifies" in signature_results(signing, tampered)[0][1]


def test_lane_key_must_parse() -> None:
    with pytest.raises(ValidationError, match="not a PEM public key"):
        lane(**{"provenance.signaturePublicKey": "-----BEGIN PUBLIC KEY-----\nnope\n"})


def test_a_signing_lane_needs_digest_pinned_images(ed_key: ed25519.Ed25519PrivateKey) -> None:
    signing = lane(**{"provenance.signaturePublicKey": _pem(ed_key.public_key())})
    signed = COMPLETE.model_copy(update={"signature": _envelope(ed_key.sign, COMPLETE)})
    (result,) = signature_results(signing, signed, subject_digests=[])
    assert "must be pinned by digest (image@sha256:...)" in result[1]


def test_a_change_already_rolled_back_is_refused_with_that_reason() -> None:
    from controller.core.gates.provenance import evaluate_change_history

    docs = lane()
    result = evaluate_change_history(docs, COMPLETE, {COMPLETE.change or "": "site-abc"})
    assert not result.passed and result.permanent
    assert f"change {COMPLETE.change!r} was already rolled back (release site-abc)" in (
        result.reason
    )
    assert evaluate_change_history(docs, COMPLETE, {"other": "site-x"}).passed
