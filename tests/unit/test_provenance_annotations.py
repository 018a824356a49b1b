from __future__ import annotations

import json

from controller.core.provenance_annotations import (
    AGENT,
    CHANGE,
    MODEL,
    REVIEWER,
    TESTS,
    TRAILERS,
    provenance_from_annotations,
)

GOOD = {
    AGENT: "claude-code",
    MODEL: "claude-opus-4",
    CHANGE: "https://github.com/acme/docs/pull/42",
    TESTS: "passed; cmd=pytest -q; report=https://ci.example/run/7",
    REVIEWER: "alice@example.com",
}


def test_dedicated_annotations() -> None:
    parsed = provenance_from_annotations(GOOD)
    assert parsed.problems == ()
    p = parsed.provenance
    assert (p.agent, p.model, p.change, p.reviewer) == (
        "claude-code",
        "claude-opus-4",
        "https://github.com/acme/docs/pull/42",
        "alice@example.com",
    )
    assert p.tests is not None
    assert (p.tests.result, p.tests.command, p.tests.report) == (
        "passed",
        "pytest -q",
        "https://ci.example/run/7",
    )
    assert parsed.sources["tests"] == TESTS


def test_tests_as_json() -> None:
    value = json.dumps({"result": "failed", "command": "make test", "report": "s3://r/1"})
    parsed = provenance_from_annotations({TESTS: value})
    assert parsed.problems == ()
    assert parsed.provenance.tests is not None
    assert parsed.provenance.tests.result == "failed"
    assert parsed.provenance.tests.command == "make test"


def test_trailers() -> None:
    trailers = (
        "Assisted-by: claude-code:claude-opus-4 [ripgrep] [pytest]\n"
        "Reviewed-by: Alice <alice@example.com>\n"
        "Signed-off-by: Bob <bob@example.com>\n"
        "Change: https://github.com/x/y/pull/1\n"
        "Tests: passed; cmd=pytest -q\n"
    )
    parsed = provenance_from_annotations({TRAILERS: trailers})
    assert parsed.problems == ()
    p = parsed.provenance
    assert (p.agent, p.model, p.reviewer, p.change) == (
        "claude-code",
        "claude-opus-4",
        "Alice <alice@example.com>",
        "https://github.com/x/y/pull/1",
    )
    assert p.tests is not None and p.tests.result == "passed"
    assert parsed.sources["agent"].startswith(TRAILERS)


def test_agent_colon_model_in_agent_annotation() -> None:
    parsed = provenance_from_annotations({AGENT: "docs-bot:gpt-x"})
    assert parsed.problems == ()
    assert (parsed.provenance.agent, parsed.provenance.model) == ("docs-bot", "gpt-x")


def test_trailer_agreeing_with_annotation_is_fine_but_conflict_is_a_problem() -> None:
    same = provenance_from_annotations(
        {AGENT: "claude-code", TRAILERS: "Assisted-by: claude-code:m1"}
    )
    assert same.problems == ()
    assert same.provenance.model == "m1"
    clash = provenance_from_annotations({AGENT: "claude-code", TRAILERS: "Assisted-by: other:m1"})
    assert len(clash.problems) == 1
    problem = clash.problems[0]
    assert problem.field == "agent"
    assert problem.key.startswith(TRAILERS)
    assert "'other' conflicts with 'claude-code' from changelane.dev/agent" in problem.message
    assert clash.provenance.agent == "claude-code"


def test_one_megabyte_value_is_refused_cheaply_and_named() -> None:
    huge = "a" * (1024 * 1024)
    parsed = provenance_from_annotations({**GOOD, CHANGE: huge, TRAILERS: huge})
    messages = [str(p) for p in parsed.problems]
    assert messages == [
        f"{CHANGE}: value is 1048576 characters long; expected at most 2048",
        f"{TRAILERS}: value is 1048576 characters long; expected at most 16384",
    ]
    assert parsed.provenance.change is None
    assert parsed.provenance.agent == "claude-code"  # one bad item never stops the others


def test_non_utf8_bytes() -> None:
    parsed = provenance_from_annotations({AGENT: b"claude-\xff\xfe", MODEL: b"claude-opus-4"})
    assert [str(p) for p in parsed.problems] == [
        f"{AGENT}: is not valid UTF-8 (byte 7); expected UTF-8 text"
    ]
    assert parsed.provenance.model == "claude-opus-4"


def test_surrogate_escaped_and_replacement_characters() -> None:
    escaped = b"claude-\xff".decode("utf-8", "surrogateescape")
    for bad in (escaped, "claude-\ufffd"):
        parsed = provenance_from_annotations({AGENT: bad})
        assert len(parsed.problems) == 1
        assert parsed.problems[0].key == AGENT
        assert "invalid bytes at character 7" in parsed.problems[0].message


def test_control_characters() -> None:
    parsed = provenance_from_annotations(
        {REVIEWER: "alice\x1b[31m", TRAILERS: "Change: abcdef1\nReviewed-by: a\x00b"}
    )
    assert [str(p) for p in parsed.problems] == [
        f"{REVIEWER}: contains control character U+001B at character 5; expected printable text",
        f"{TRAILERS}: contains control character U+0000 at character 30; expected printable "
        "text (newlines separate trailers)",
    ]


def test_malformed_values_each_named() -> None:
    parsed = provenance_from_annotations(
        {
            AGENT: "claude code",
            MODEL: "",
            CHANGE: "fix the thing",
            TESTS: "maybe; cmd=pytest",
            TRAILERS: "this line is prose\nAssisted-by: bot:",
        }
    )
    got = {(p.key, p.field) for p in parsed.problems}
    assert got == {
        (AGENT, "agent"),
        (MODEL, "model"),
        (CHANGE, "change"),
        (TESTS, "tests"),
        (TRAILERS, None),
        (f"{TRAILERS} (Assisted-by, line 2)", "model"),
    }
    by_key = {p.key: p.message for p in parsed.problems}
    assert "expected a commit SHA" in by_key[CHANGE]
    assert "'maybe' is not one of passed, failed, unknown" in by_key[TESTS]
    assert "expected 'Token: value'" in by_key[TRAILERS]


def test_bad_tests_json() -> None:
    for value, fragment in (
        ("{not json", "is not valid JSON"),
        ('{"result": "passed", "extra": 1}', "unknown keys ['extra']"),
        ('{"result": 3}', "result 3"),
    ):
        parsed = provenance_from_annotations({TESTS: value})
        assert len(parsed.problems) == 1, value
        assert fragment in parsed.problems[0].message
        assert parsed.provenance.tests is None


def test_commit_sha_change() -> None:
    parsed = provenance_from_annotations({CHANGE: "0123abc" * 5 + "01234"})
    assert parsed.problems == ()
    assert parsed.provenance.change == "0123abc" * 5 + "01234"
