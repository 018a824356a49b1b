"""Offline verification of a DSSE envelope carrying an in-toto statement.

A lane may declare a public key (``spec.provenance.signaturePublicKey``, PEM, Ed25519 or
ECDSA P-256/P-384). A release then carries, in ``changelane.dev/signature``, a DSSE
envelope (https://github.com/secure-systems-lab/dsse) whose payload is an in-toto
statement (``https://in-toto.io/Statement/v1``) with predicate type
:data:`PREDICATE_TYPE`; the predicate repeats the provenance (agent, model, change, ...),
so a signature made for one change cannot vouch for another.

Pure computation (no I/O): ``cryptography`` only does the arithmetic.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from controller.core import bounded_json

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
PREDICATE_TYPE = "https://changelane.dev/provenance/v1"

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


def load_public_key(pem: str) -> PublicKey:
    """The key in ``pem``; raises ``ValueError`` saying what was expected."""
    try:
        key = serialization.load_pem_public_key(pem.encode("utf-8"))
    except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError) as err:
        raise ValueError(f"not a PEM public key ({err})") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SECP256R1 | ec.SECP384R1
    ):
        return key
    raise ValueError(f"{type(key).__name__} keys are not supported; expected Ed25519 or P-256/384")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Verified:
    statement: dict[str, Any]


@dataclass(frozen=True)
class Refused:
    reason: str


def verify_envelope(signature: str, key: PublicKey) -> Verified | Refused:
    """Check the envelope's signature with ``key`` and return the statement it carries."""
    envelope = _decode_envelope(signature)
    if isinstance(envelope, Refused):
        return envelope
    payload_type = envelope.get("payloadType")
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        return Refused(f"payloadType {payload_type!r}; expected {IN_TOTO_PAYLOAD_TYPE!r}")
    payload = _b64(envelope.get("payload"))
    signatures = envelope.get("signatures")
    if payload is None or not isinstance(signatures, list) or not signatures:
        return Refused("envelope needs a base64 payload and at least one signature")
    signed = pae(payload_type, payload)
    if not any(_verifies(key, _b64(_sig_field(s)), signed) for s in signatures):
        return Refused("no signature in the envelope verifies with the lane's public key")
    try:
        statement = bounded_json.loads(payload)
    except ValueError:
        return Refused("signed payload is not JSON; expected an in-toto statement")
    if not isinstance(statement, dict) or statement.get("_type") not in STATEMENT_TYPES:
        return Refused(f"signed payload is not an in-toto statement ({STATEMENT_TYPES[0]})")
    if statement.get("predicateType") != PREDICATE_TYPE:
        return Refused(
            f"predicateType {statement.get('predicateType')!r}; expected {PREDICATE_TYPE!r}"
        )
    if not isinstance(statement.get("predicate"), dict):
        return Refused("statement has no predicate object")
    return Verified(statement)


def _decode_envelope(signature: str) -> dict[str, Any] | Refused:
    text = signature.strip()
    if not text.startswith("{"):
        raw = _b64(text)
        if raw is None:
            return Refused("is neither a JSON DSSE envelope nor base64 of one")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Refused("base64 does not decode to UTF-8 JSON; expected a DSSE envelope")
    try:
        envelope = bounded_json.loads(text)
    except ValueError:
        return Refused("is not JSON; expected a DSSE envelope")
    if not isinstance(envelope, dict):
        return Refused("is not a JSON object; expected a DSSE envelope")
    return envelope


def _sig_field(entry: object) -> object:
    return entry.get("sig") if isinstance(entry, dict) else None


def _b64(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        padded = value + "=" * (-len(value) % 4)
        if "-" in value or "_" in value:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _verifies(key: PublicKey, sig: bytes | None, data: bytes) -> bool:
    if sig is None:
        return False
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, data)
        else:
            digest: hashes.HashAlgorithm = (
                hashes.SHA384() if isinstance(key.curve, ec.SECP384R1) else hashes.SHA256()
            )
            key.verify(sig, data, ec.ECDSA(digest))
    except (InvalidSignature, ValueError):
        return False
    return True
