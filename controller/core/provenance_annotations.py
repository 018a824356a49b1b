"""Read a release's provenance from its Deployment annotations.

CI (or the agent's harness) records who made a change and with what evidence as
annotations on the Deployment (usually on its pod template, so every rollout carries its
own). Two spellings are accepted:

* one annotation per field, under ``changelane.dev/``::

    changelane.dev/agent:     claude-code            (or "claude-code:claude-opus-4")
    changelane.dev/model:     claude-opus-4
    changelane.dev/change:    https://github.com/acme/docs/pull/42   (or a commit SHA)
    changelane.dev/tests:     passed; cmd=pytest -q; report=https://ci.example/run/7
                              (or JSON: {"result": "passed", "command": "...", "report": "..."})
    changelane.dev/reviewer:  alice@example.com
    changelane.dev/signature: <base64 DSSE envelope of an in-toto statement>

* git trailers, copied verbatim from the commit message, in ``changelane.dev/trailers``::

    Assisted-by: claude-code:claude-opus-4
    Reviewed-by: Alice <alice@example.com>
    Change: https://github.com/acme/docs/pull/42
    Tests: passed; cmd=pytest -q

A dedicated annotation wins over a trailer; when both are present and disagree, that is a
problem (someone's record is wrong, and the gate refuses to guess which). Parsing never
raises: every bad value becomes a :class:`AnnotationProblem` naming the annotation key and
what was expected, so the gate can reject the release with a precise reason.

Over 400 lines on purpose: one parser per field with its size limit and its message, and
the two spellings (annotations, trailers) reconciled in one place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from controller.core import bounded_json
from controller.core.models.release import Provenance, TestsEvidence
from controller.core.text import first_unsafe, unsafe_character

PREFIX = "changelane.dev/"
AGENT = PREFIX + "agent"
MODEL = PREFIX + "model"
CHANGE = PREFIX + "change"
TESTS = PREFIX + "tests"
REVIEWER = PREFIX + "reviewer"
SIGNATURE = PREFIX + "signature"
TRAILERS = PREFIX + "trailers"

#: The annotation that carries each provenance field, for messages.
FIELD_ANNOTATION = {
    "agent": AGENT,
    "model": MODEL,
    "change": CHANGE,
    "tests": TESTS,
    "reviewer": REVIEWER,
    "signature": SIGNATURE,
}
#: The git trailer that may carry each field instead.
FIELD_TRAILER = {
    "agent": "Assisted-by",
    "model": "Assisted-by",
    "change": "Change",
    "tests": "Tests",
    "reviewer": "Reviewed-by",
}

# Size limits: far above any honest value, far below anything that could hurt. A value over
# its limit is refused before any further parsing, so a 1 MB annotation costs one len().
MAX_LEN = {
    AGENT: 253,
    MODEL: 253,
    CHANGE: 2048,
    TESTS: 4096,
    REVIEWER: 512,
    SIGNATURE: 65536,
    TRAILERS: 16384,
}

_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@+-]*$")
#: ``alice@example.com``, ``alice`` or ``Alice Liddell <alice@example.com>``.
_REVIEWER = re.compile(
    r"^(?:[\w .,'()-]{1,200} )?<[^\s<>]{1,253}>$|^[A-Za-z0-9][A-Za-z0-9._/@+-]{0,252}$"
)
_COMMIT_SHA = re.compile(r"^[0-9a-f]{7,64}$")
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")
_TRAILER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$")
_TestsResult = Literal["passed", "failed", "unknown"]
_TESTS_RESULTS: dict[str, _TestsResult] = {
    "passed": "passed",
    "failed": "failed",
    "unknown": "unknown",
}
_Put = Callable[[str, object, str], None]
_TESTS_KEYS = {"cmd": "command", "command": "command", "report": "report"}


@dataclass(frozen=True)
class AnnotationProblem:
    """One annotation that could not be used, and why."""

    key: str
    message: str
    field: str | None = None  # the provenance field it was meant to fill

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass(frozen=True)
class ParsedProvenance:
    provenance: Provenance
    problems: tuple[AnnotationProblem, ...] = ()
    #: Where each field came from (annotation key, or "trailers: Assisted-by"), for audit.
    sources: Mapping[str, str] = field(default_factory=dict)


def provenance_from_annotations(annotations: Mapping[str, str | bytes]) -> ParsedProvenance:
    """Provenance carried by ``annotations``, with every problem found on the way."""
    problems: list[AnnotationProblem] = []
    values: dict[str, str] = {}
    for key in (*FIELD_ANNOTATION.values(), TRAILERS):
        if key not in annotations:
            continue
        text = _clean_text(key, annotations[key], problems, multiline=key == TRAILERS)
        if text is not None:
            values[key] = text

    found: dict[str, object] = {}
    sources: dict[str, str] = {}

    def put(name: str, value: object, source: str) -> None:
        if name in found and found[name] != value:
            problems.append(
                AnnotationProblem(
                    source,
                    f"{name} {_show(value)} conflicts with {_show(found[name])} "
                    f"from {sources[name]}; expected one consistent value",
                    name,
                )
            )
            return
        found.setdefault(name, value)
        sources.setdefault(name, source)

    # Dedicated annotations first: they win over trailers.
    if AGENT in values:
        agent, model = _parse_agent(AGENT, values[AGENT], problems)
        if agent is not None:
            put("agent", agent, AGENT)
        if model is not None and MODEL not in values:
            put("model", model, AGENT)
    if MODEL in values:
        model = _parse_identifier(MODEL, "model", values[MODEL], problems)
        if model is not None:
            put("model", model, MODEL)
    if CHANGE in values:
        change = _parse_change(CHANGE, values[CHANGE], problems)
        if change is not None:
            put("change", change, CHANGE)
    if TESTS in values:
        tests = _parse_tests(TESTS, values[TESTS], problems)
        if tests is not None:
            put("tests", tests, TESTS)
    if REVIEWER in values:
        reviewer = _parse_reviewer(REVIEWER, values[REVIEWER], problems)
        if reviewer is not None:
            put("reviewer", reviewer, REVIEWER)
    if SIGNATURE in values:
        signature = values[SIGNATURE].strip()
        if signature:
            put("signature", signature, SIGNATURE)
        else:
            problems.append(
                AnnotationProblem(SIGNATURE, "is empty; expected a DSSE envelope", "signature")
            )
    if TRAILERS in values:
        _parse_trailers(values[TRAILERS], problems, put)

    provenance = Provenance(
        agent=_as_str(found.get("agent")),
        model=_as_str(found.get("model")),
        change=_as_str(found.get("change")),
        tests=found["tests"] if isinstance(found.get("tests"), TestsEvidence) else None,
        reviewer=_as_str(found.get("reviewer")),
        signature=_as_str(found.get("signature")),
    )
    return ParsedProvenance(provenance, tuple(problems), sources)


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _show(value: object) -> str:
    if isinstance(value, TestsEvidence):
        return repr(value.result)
    return repr(value)


def _clean_text(
    key: str, raw: str | bytes, problems: list[AnnotationProblem], *, multiline: bool
) -> str | None:
    """The annotation's text, or None after recording why it cannot be used."""
    limit = MAX_LEN[key]
    size = len(raw)
    if size > limit:
        unit = "bytes" if isinstance(raw, bytes) else "characters"
        problems.append(
            AnnotationProblem(key, f"value is {size} {unit} long; expected at most {limit}")
        )
        return None
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            problems.append(
                AnnotationProblem(
                    key, f"is not valid UTF-8 (byte {err.start}); expected UTF-8 text"
                )
            )
            return None
    else:
        text = raw
    for index, char in enumerate(text):
        if char == "\t" or (char == "\n" and multiline):
            continue
        if "\ud800" <= char <= "\udfff" or char == "\ufffd":
            # A lone surrogate is how Python carries undecodable bytes in a str
            # (surrogateescape); U+FFFD is what a lenient decoder left in their place.
            problems.append(
                AnnotationProblem(
                    key, f"contains invalid bytes at character {index}; expected UTF-8 text"
                )
            )
            return None
        if unsafe_character(char):
            problems.append(
                AnnotationProblem(
                    key,
                    f"contains control character U+{ord(char):04X} at character {index}; "
                    "expected printable text"
                    + (" (newlines separate trailers)" if multiline else ""),
                )
            )
            return None
    return text


def _parse_identifier(
    key: str, name: str, text: str, problems: list[AnnotationProblem]
) -> str | None:
    value = text.strip()
    if _IDENTIFIER.fullmatch(value) and len(value) <= 253:
        return value
    problems.append(
        AnnotationProblem(
            key,
            f"{name} {value[:80]!r} is not an identifier; expected letters, digits and . _ / @ + -",
            name,
        )
    )
    return None


def _parse_agent(
    key: str, text: str, problems: list[AnnotationProblem]
) -> tuple[str | None, str | None]:
    """``agent`` or ``agent:model`` (the ``Assisted-by`` form). Trailing ``[tool]`` ignored."""
    value = _strip_tool_suffixes(text.strip())
    agent_text, sep, model_text = value.partition(":")
    if sep and not model_text.strip():
        problems.append(
            AnnotationProblem(key, f"{value!r} has an empty model; expected agent:model", "model")
        )
        return _parse_identifier(key, "agent", agent_text, problems), None
    agent = _parse_identifier(key, "agent", agent_text, problems)
    model = _parse_identifier(key, "model", model_text, problems) if sep else None
    return agent, model


def _strip_tool_suffixes(value: str) -> str:
    """``agent:model [tool] [tool2]`` -> ``agent:model``, in linear time (the regex this
    replaces backtracked quadratically on long runs of spaces)."""
    while value.endswith("]"):
        start = value.rfind("[")
        if start <= 0 or not value[start - 1].isspace() or "]" in value[start:-1]:
            break
        value = value[:start].rstrip()
    return value


def _parse_change(key: str, text: str, problems: list[AnnotationProblem]) -> str | None:
    value = text.strip()
    if _COMMIT_SHA.fullmatch(value) or _URL.fullmatch(value):
        return value
    problems.append(
        AnnotationProblem(
            key,
            f"{value[:80]!r} is not a change reference; expected a commit SHA "
            "(7-64 lowercase hex digits) or an http(s) URL of the pull request",
            "change",
        )
    )
    return None


def _parse_reviewer(key: str, text: str, problems: list[AnnotationProblem]) -> str | None:
    value = " ".join(text.split())
    if value and _REVIEWER.fullmatch(value):
        return value
    what = f"{value[:80]!r} is not an identity" if value else "is empty"
    problems.append(
        AnnotationProblem(
            key,
            f"{what}; expected the reviewer's identity, e.g. alice@example.com or "
            "'Alice <alice@example.com>'",
            "reviewer",
        )
    )
    return None


def _parse_tests(key: str, text: str, problems: list[AnnotationProblem]) -> TestsEvidence | None:
    """``passed; cmd=pytest -q; report=URL`` or a JSON object with result/command/report."""
    value = text.strip()
    if value.startswith("{"):
        return _parse_tests_json(key, value, problems)
    head, *parts = (part.strip() for part in value.split(";"))
    result = _TESTS_RESULTS.get(head.lower())
    if result is None:
        problems.append(
            AnnotationProblem(
                key,
                f"result {head[:40]!r} is not one of passed, failed, unknown; expected e.g. "
                "'passed; cmd=pytest -q; report=https://...' or a JSON object",
                "tests",
            )
        )
        return None
    extras: dict[str, str] = {}
    for part in parts:
        if not part:
            continue
        name, sep, part_value = part.partition("=")
        target = _TESTS_KEYS.get(name.strip().lower())
        if not sep or target is None or not part_value.strip():
            problems.append(
                AnnotationProblem(
                    key, f"{part[:40]!r} is not cmd=... or report=...; expected key=value", "tests"
                )
            )
            return None
        extras[target] = part_value.strip()
    return TestsEvidence(
        result=result,
        command=extras.get("command"),
        report=extras.get("report"),
    )


def _parse_tests_json(
    key: str, value: str, problems: list[AnnotationProblem]
) -> TestsEvidence | None:
    expected = 'expected {"result": "passed"|"failed"|"unknown", "command": str, "report": str}'
    try:
        data = bounded_json.loads(value, max_depth=4)
    except ValueError as err:
        problems.append(AnnotationProblem(key, f"is not valid JSON ({err}); {expected}", "tests"))
        return None
    if not isinstance(data, dict):
        problems.append(
            AnnotationProblem(key, f"is a JSON {type(data).__name__}; {expected}", "tests")
        )
        return None
    unknown = sorted(set(data) - {"result", "command", "cmd", "report"})
    result = data.get("result")
    command = data.get("command", data.get("cmd"))
    report = data.get("report")
    if (
        unknown
        or not isinstance(result, str)
        or result.lower() not in _TESTS_RESULTS
        or not isinstance(command, str | None)
        or not isinstance(report, str | None)
    ):
        what = f"unknown keys {unknown}" if unknown else f"result {result!r}"
        problems.append(AnnotationProblem(key, f"has {what}; {expected}", "tests"))
        return None
    for name, text in (("command", command), ("report", report)):
        # JSON escapes (\u0000, \u001b, \ud800) decode into exactly the characters the
        # raw-text check refused: check again after decoding.
        at = first_unsafe(text or "", allow="\t")
        if at is not None:
            problems.append(
                AnnotationProblem(
                    key,
                    f"{name} contains control character U+{ord((text or '')[at]):04X} at "
                    f"character {at} (after JSON decoding); expected printable text",
                    "tests",
                )
            )
            return None
    return TestsEvidence(result=_TESTS_RESULTS[result.lower()], command=command, report=report)


def _parse_trailers(text: str, problems: list[AnnotationProblem], put: _Put) -> None:
    source = TRAILERS
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _TRAILER_LINE.fullmatch(line.strip())
        if match is None:
            problems.append(
                AnnotationProblem(
                    source,
                    f"line {number} {line[:60]!r} is not a trailer; expected 'Token: value'",
                )
            )
            continue
        trailer, value = match.group(1).lower(), match.group(2)
        where = f"{source} ({match.group(1)}, line {number})"
        if trailer == "assisted-by":
            agent, model = _parse_agent(where, value, problems)
            if agent is not None:
                put("agent", agent, where)
            if model is not None:
                put("model", model, where)
        elif trailer == "reviewed-by":
            reviewer = _parse_reviewer(where, value, problems)
            if reviewer is not None:
                put("reviewer", reviewer, where)
        elif trailer == "change":
            change = _parse_change(where, value, problems)
            if change is not None:
                put("change", change, where)
        elif trailer == "tests":
            tests = _parse_tests(where, value, problems)
            if tests is not None:
                put("tests", tests, where)
        # Any other trailer (Signed-off-by, Co-authored-by, ...) is ordinary commit
        # metadata, not provenance: ignored.
