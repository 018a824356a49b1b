"""Just enough of Kubernetes' protobuf encoding to read the review requests kubectl sends.

client-go's typed clients (``kubectl auth can-i``, ``kubectl auth whoami``) send built-in
kinds as ``application/vnd.kubernetes.protobuf``: the 4-byte magic ``k8s\\0``, then a
``runtime.Unknown`` whose ``raw`` field holds the object's message. The reply may be JSON
(the clients accept both). Only the fields the review APIs read are decoded.
"""

from __future__ import annotations

from typing import Any

from controller.sim.errors import bad_request

JsonDict = dict[str, Any]
MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# message field number -> (JSON name, nested schema or None for a string)
Schema = dict[int, tuple[str, "Schema | None"]]
_RESOURCE_ATTRIBUTES: Schema = {
    1: ("namespace", None),
    2: ("verb", None),
    3: ("group", None),
    4: ("version", None),
    5: ("resource", None),
    6: ("subresource", None),
    7: ("name", None),
}
_NON_RESOURCE_ATTRIBUTES: Schema = {1: ("path", None), 2: ("verb", None)}
_ACCESS_SPEC: Schema = {
    1: ("resourceAttributes", _RESOURCE_ATTRIBUTES),
    2: ("nonResourceAttributes", _NON_RESOURCE_ATTRIBUTES),
}
_RULES_SPEC: Schema = {1: ("namespace", None)}
SCHEMAS: dict[str, Schema] = {
    "SelfSubjectAccessReview": {2: ("spec", _ACCESS_SPEC)},
    "SelfSubjectRulesReview": {2: ("spec", _RULES_SPEC)},
    "SelfSubjectReview": {},
}
_TYPE_META: Schema = {1: ("apiVersion", None), 2: ("kind", None)}


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise bad_request("protobuf: truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, at = _varint(data, at)
            out.append((number, value))
        elif wire == 2:
            length, at = _varint(data, at)
            out.append((number, data[at : at + length]))
            at += length
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise bad_request(f"protobuf: unsupported wire type {wire}")
    return out


def _message(data: bytes, schema: Schema) -> JsonDict:
    out: JsonDict = {}
    for number, value in _fields(data):
        if number not in schema or not isinstance(value, bytes):
            continue
        name, nested = schema[number]
        out[name] = value.decode("utf-8", "replace") if nested is None else _message(value, nested)
    return out


def decode(body: bytes) -> JsonDict:
    """The review object in a protobuf request body, as JSON."""
    if not body.startswith(MAGIC):
        raise bad_request("protobuf: missing the k8s envelope")
    unknown = dict((n, v) for n, v in _fields(body[len(MAGIC) :]) if isinstance(v, bytes))
    type_meta = _message(unknown.get(1, b""), _TYPE_META)
    kind = str(type_meta.get("kind") or "")
    if kind not in SCHEMAS:
        raise bad_request(f"protobuf: the simulated cluster does not decode {kind or 'this kind'}")
    return {**type_meta, **_message(unknown.get(2, b""), SCHEMAS[kind])}
