"""``changelane bench fuzz``: hostile and broken input against every input path.

Three corpora, all generated from a seed so a failure reproduces:

* **lanes**: a valid ChangeLane, mutated. Most mutations carry an oracle (the API server
  would refuse this: duplicate key, NaN, non-DNS name, ``weight: true``, broken PromQL, ...,
  or it would accept it: ``description: 2001-02-30``), the rest are random byte edits where
  only "no crash" is checked. Every lane goes through :func:`controller.lanefiles.check_text`,
  the path ``lanes validate`` and the loader take.
* **annotation maps**: pod-template annotations mixing valid provenance with hostile values
  (control characters raw and JSON-escaped, lone surrogates, deep JSON, values at and over
  their size limits, 16 KB trailers), through the path the controller takes when it records
  a release (:func:`controller.core.gates.lane.release_spec_from_template`) and the gate.
* **injection corpus**: hostile label values rendered into templates (``=`` and ``=~``);
  the rendered query is parsed offline and its selectors compared with what the template
  meant. ``tests/integration/test_injection_prometheus.py`` replays the same corpus against
  a real Prometheus.

A *crash* is an exception (or an "internal error" problem); a *wrong accept* is an input
the oracle says must be refused that was accepted, or any accepted text that still holds a
control character; a *changed selector* is a rendered query whose matchers differ from the
template's.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import heapq
import random
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import promql_parser
import yaml

from controller.core.gates.lane import release_spec_from_template
from controller.core.gates.provenance import evaluate_provenance
from controller.core.models.lane import ChangeLane
from controller.core.promql import escape_regex, render
from controller.core.provenance_annotations import (
    AGENT,
    CHANGE,
    MAX_LEN,
    MODEL,
    REVIEWER,
    SIGNATURE,
    TESTS,
    TRAILERS,
    provenance_from_annotations,
)
from controller.core.text import first_unsafe
from controller.lanefiles import check_text

BASE_LANE: dict[str, Any] = {
    "apiVersion": "changelane.dev/v1alpha1",
    "kind": "ChangeLane",
    "metadata": {"name": "docs-site"},
    "spec": {
        "description": "Public documentation site.",
        "selector": {
            "namespaces": ["docs"],
            "matchLabels": {"app.kubernetes.io/part-of": "docs-site"},
        },
        "agents": [{"id": "claude-code", "models": ["claude-*"]}],
        "provenance": {"required": ["agent", "model", "change", "tests"]},
        "gates": {"maxConcurrentReleases": 2, "autonomyBudget": {"maxChangeFailureRate": 0.34}},
        "strategy": {
            "steps": [
                {"weight": 10, "minDuration": "1m"},
                {"weight": 50, "minDuration": "2m"},
                {"weight": 100, "minDuration": "2m"},
            ],
            "progressDeadline": "5m",
        },
        "analysis": {
            "interval": "30s",
            "checks": [
                {
                    "name": "error-rate",
                    "kind": "sequential",
                    "errorsQuery": 'sum(increase(http_requests_total{namespace="{{ namespace }}",'
                    ' app="{{ workload }}", code=~"5.."}[{{ window }}]))',
                    "totalQuery": 'sum(increase(http_requests_total{namespace="{{ namespace }}",'
                    ' app="{{ workload }}"}[{{ window }}]))',
                    "critical": True,
                },
                {
                    "name": "latency",
                    "kind": "threshold",
                    "query": 'histogram_quantile(0.95, sum by (le) (rate(latency_bucket{pod=~"'
                    '{{ workload }}-.*"}[{{ window }}])))',
                    "threshold": 0.5,
                },
            ],
        },
    },
}

BAD_NAMES = ["Docs", "docs_site", "docs-", "-docs", "docs site", "a" * 254, "dócs", "docs..x"]
BAD_LABELS = [("bad key", "x"), ("a/b/c", "x"), ("app", "x y"), ("app", "-x"), ("a" * 64, "x")]
BAD_DURATIONS = ["99999999999999999999999h", "200h", "1d", "5", "-1m", "1m30", "m", "1.5m"]
BAD_TEMPLATES = [
    'rate(x{app="{{ workload }}"}[{{ window }}m])',
    'rate(x{app="{{ workload }}"[{{ window }}])',
    "rate(x{app='{{ workload }}'}[{{ window }}])",
    "rate(x{app=`{{ workload }}`}[{{ window }}])",
    "rate(x{app={{ workload }}}[{{ window }}])",
    'rate(x{app="{{ nope }}"}[{{ window }}])',
    'rate(x{app="{{ workload }}"}["{{ window }}"])',
    'sum(rate(x{app="{{ workload }}"}[{{ window }}])',
    'rate(x{app="{{ workload }}}[{{ window }}])',
]
BAD_SCALARS = ["!!int abc", "!!bool maybe", "!!timestamp junk", "!!float x", "!!binary AAA="]
COERCIONS = [
    ("steps", "weight", True),
    ("steps", "weight", "10"),
    ("steps", "weight", 10.5),
    ("check", "critical", "true"),
    ("check", "minSamples", "50"),
    ("check", "threshold", "0.5"),
]
HOSTILE_TEXT = [
    "\x00",
    "\x1b[2J\x1b[H",
    "\u202e",
    "\x9b31m",
    "\u0007",
    "\r",
    "\ufeff",
    "\ud800",
    "\udfff",
]
JSON_ESCAPES = ["\\u0000", "\\u001b[2J", "\\ud800", "\\u202e", "\\u0007"]

#: Label values an agent or user could put in a namespace, workload or revision name.
INJECTION_CORPUS: tuple[str, ...] = (
    'web"} or vector(1) or up{job="',
    'web"}) or vector(42) #',
    "'}) or vector(42) #",
    "`}) or vector(42) #",
    "web\\",
    "web\\\\",
    'web\n"} or vector(1)',
    'web\\"} or vector(1) or x{a="',
    "docs.site",
    "docs.*",
    ".*",
    "web|api",
    "(web)",
    "[a-z]+",
    "web$",
    "^web",
    "a{1,3}",
    "web+",
    "web?",
    "\\d",
    "{{ namespace }}",
    "}}",
    "web\x1b[2J",
    "web\x00",
    "web\u202e",
    "we\tb",
    "wéb",
    "😀",
    "",
)

#: Templates the corpus is rendered into: ``(template, op)`` with ``{{ workload }}`` the
#: hostile parameter, matched with ``=``, ``!=``, ``=~`` (exactly and as a prefix) or ``!~``.
INJECTION_TEMPLATES: tuple[str, ...] = (
    'count by (value) (probe{namespace="docs", value="{{ workload }}"})',
    'count by (value) (probe{value!="{{ workload }}", namespace="docs"})',
    'count by (value) (probe{namespace="docs", value=~"{{ workload }}"})',
    'count by (value) (probe{namespace="docs", value=~"{{ workload }}.*"})',
    'count by (value) (probe{namespace="docs", value!~"{{ workload }}"})',
)


@dataclass
class CorpusResult:
    name: str
    inputs: int = 0
    crashes: int = 0
    wrong_accepts: int = 0
    wrong_rejects: int = 0
    worst_ms: float = 0.0
    #: The slowest inputs parsed again (best of 3): a one-off stall of a loaded machine
    #: is not the parser's cost.
    worst_retimed_ms: float = 0.0
    median_ms: float = 0.0
    examples: list[str] = field(default_factory=list)

    def note(self, what: str, example: object) -> None:
        if len(self.examples) < 5:
            self.examples.append(f"{what}: {example!r:.300}")


# ------------------------------------------------------------------ lanes


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)


def _set_in_check(doc: dict[str, Any], rng: random.Random, key: str, value: Any) -> None:
    rng.choice(doc["spec"]["analysis"]["checks"])[key] = value


def _set_in_step(doc: dict[str, Any], rng: random.Random, key: str, value: Any) -> None:
    rng.choice(doc["spec"]["strategy"]["steps"])[key] = value


Mutation = Callable[[random.Random, dict[str, Any]], str]


def _valid(rng: random.Random, doc: dict[str, Any]) -> str:
    return _dump(doc)


def _date_description(rng: random.Random, doc: dict[str, Any]) -> str:
    doc["spec"]["description"] = "PLACEHOLDER"
    value = rng.choice(["2001-02-30", "2001-02-03", "2001-02-03T04:05:06Z", "2001-13-45"])
    return _dump(doc).replace("PLACEHOLDER", value)


def _hostile_description(rng: random.Random, doc: dict[str, Any]) -> str:
    doc["spec"]["description"] = "docs " + rng.choice(HOSTILE_TEXT[:7])
    return _dump(doc)


def _duplicate_key(rng: random.Random, doc: dict[str, Any]) -> str:
    text = _dump(doc)
    where = rng.choice(["top", "metadata", "step"])
    if where == "top":
        return text + "kind: ChangeLane\n"
    if where == "metadata":
        return text.replace("  name: docs-site\n", "  name: docs-site\n  name: other\n", 1)
    return text.replace("weight: 10\n", "weight: 10\n    weight: 20\n", 1)


def _empty(rng: random.Random, doc: dict[str, Any]) -> str:
    return rng.choice(["", "\n", "# only a comment\n", "---\n", "--- \n...\n", "null\n"])


def _bad_name(rng: random.Random, doc: dict[str, Any]) -> str:
    doc["metadata"]["name"] = rng.choice(BAD_NAMES)
    return _dump(doc)


def _non_finite(rng: random.Random, doc: dict[str, Any]) -> str:
    target = rng.choice(["threshold", "maxRatio", "alpha", "rate"])
    special = rng.choice([".nan", ".NaN", ".inf", "-.inf", ".Inf"])
    if target == "rate":
        doc["spec"]["gates"]["autonomyBudget"]["maxChangeFailureRate"] = 123.25
    else:
        doc["spec"]["analysis"]["checks"][1][target] = 123.25
    return _dump(doc).replace("123.25", special)


def _bad_label(rng: random.Random, doc: dict[str, Any]) -> str:
    key, value = rng.choice(BAD_LABELS)
    where = rng.choice(["selector", "metadata", "expression"])
    if where == "selector":
        doc["spec"]["selector"]["matchLabels"][key] = value
    elif where == "metadata":
        doc["metadata"]["labels"] = {key: value}
    else:
        doc["spec"]["selector"]["matchExpressions"] = [
            {"key": key, "operator": "In", "values": [value]}
        ]
    return _dump(doc)


def _coercion(rng: random.Random, doc: dict[str, Any]) -> str:
    where, key, value = rng.choice(COERCIONS)
    if where == "steps":
        _set_in_step(doc, rng, key, value)
    else:
        _set_in_check(doc, rng, key, value)
    return _dump(doc)


def _bad_duration(rng: random.Random, doc: dict[str, Any]) -> str:
    value = rng.choice(BAD_DURATIONS)
    target = rng.choice(["step", "deadline", "interval", "check"])
    if target == "step":
        _set_in_step(doc, rng, "minDuration", value)
    elif target == "deadline":
        doc["spec"]["strategy"]["progressDeadline"] = value
    elif target == "interval":
        doc["spec"]["analysis"]["interval"] = value
    else:
        _set_in_check(doc, rng, "interval", value)
    return _dump(doc)


def _weights_not_increasing(rng: random.Random, doc: dict[str, Any]) -> str:
    steps = doc["spec"]["strategy"]["steps"]
    if rng.random() < 0.5:
        steps.reverse()
    else:
        steps[1]["weight"] = steps[0]["weight"]
    return _dump(doc)


def _broken_promql(rng: random.Random, doc: dict[str, Any]) -> str:
    check = doc["spec"]["analysis"]["checks"][1]
    check["query"] = rng.choice(BAD_TEMPLATES)
    return _dump(doc)


def _bad_scalar(rng: random.Random, doc: dict[str, Any]) -> str:
    doc["spec"]["description"] = "PLACEHOLDER"
    return _dump(doc).replace("PLACEHOLDER", rng.choice(BAD_SCALARS))


def _deep(rng: random.Random, doc: dict[str, Any]) -> str:
    depth = rng.choice([40, 200, 1000, 5000])
    opener, closer = rng.choice([("[", "]"), ("{a: ", "}")])
    doc["spec"]["description"] = "PLACEHOLDER"
    return _dump(doc).replace("PLACEHOLDER", opener * depth + "1" + closer * depth)


def _unknown_field(rng: random.Random, doc: dict[str, Any]) -> str:
    rng.choice([doc["spec"], doc["spec"]["strategy"], doc["spec"]["gates"]])["maxWieght"] = 5
    return _dump(doc)


def _alias_bomb(rng: random.Random, doc: dict[str, Any]) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, rng.choice([9, 12, 20])):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    doc["spec"]["description"] = "PLACEHOLDER"
    bomb = "\n".join("  " + line for line in lines)
    return _dump(doc).replace("  description: PLACEHOLDER", "  description: x\n  bomb:\n" + bomb)


def _random_edit(rng: random.Random, doc: dict[str, Any]) -> str:
    text = _dump(doc)
    alphabet = "{}[]:,'\"!&*#|>-?%@` \n\t\\.0123456789abcxyz" + "".join(HOSTILE_TEXT[:5])
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(text) + 1)
        action = rng.random()
        if action < 0.4:
            text = text[:at] + "".join(rng.choices(alphabet, k=rng.randint(1, 6))) + text[at:]
        elif action < 0.8:
            text = text[:at] + text[at + rng.randint(1, 20) :]
        else:
            span = text[at : at + rng.randint(1, 40)]
            text = text[:at] + span * rng.randint(2, 30) + text[at:]
    return text


#: (name, oracle, mutation): True = the API server would accept it, False = refuse it,
#: None = no oracle (only crashes and time are judged).
LANE_MUTATIONS: tuple[tuple[str, bool | None, Mutation], ...] = (
    ("valid", True, _valid),
    ("date-description", True, _date_description),
    ("control-characters-in-description", True, _hostile_description),
    ("duplicate-key", False, _duplicate_key),
    ("empty-file", False, _empty),
    ("non-dns-name", False, _bad_name),
    ("nan-inf", False, _non_finite),
    ("bad-label", False, _bad_label),
    ("coercion", False, _coercion),
    ("bad-duration", False, _bad_duration),
    ("weights-not-increasing", False, _weights_not_increasing),
    ("broken-promql", False, _broken_promql),
    ("bad-tagged-scalar", False, _bad_scalar),
    ("deep-nesting", False, _deep),
    ("unknown-field", False, _unknown_field),
    ("alias-bomb", False, _alias_bomb),
    ("random-edit", None, _random_edit),
    ("random-edit", None, _random_edit),
    ("random-edit", None, _random_edit),
)


def generate_lanes(count: int, seed: int) -> Iterator[tuple[str, bool | None, str]]:
    rng = random.Random(seed)  # noqa: S311 (reproducible test input, not secrets)
    for _ in range(count):
        name, oracle, mutate = rng.choice(LANE_MUTATIONS)
        yield name, oracle, mutate(rng, copy.deepcopy(BASE_LANE))


def fuzz_lanes(count: int, seed: int) -> CorpusResult:
    result = CorpusResult("lanes")
    times: list[float] = []
    slow = _Slowest()
    for name, oracle, text in generate_lanes(count, seed):
        result.inputs += 1
        started = time.perf_counter()
        try:
            lanes, problems = check_text(text, "fuzz.yaml")
        except Exception as exc:
            result.crashes += 1
            result.note(f"crash ({name}) {exc!r}", text[:200])
            continue
        finally:
            times.append(time.perf_counter() - started)
            slow.add(times[-1], functools.partial(check_text, text, "fuzz.yaml"))
        lines = [str(p) for p in problems]
        if any(line and "internal error" in line for line in lines):
            result.crashes += 1
            result.note(f"internal error ({name})", lines)
        unsafe = [line for line in lines if first_unsafe(line) is not None]
        if unsafe:
            result.wrong_accepts += 1
            result.note(f"control character in output ({name})", unsafe[0])
        accepted = bool(lanes) and not problems
        if oracle is False and accepted:
            result.wrong_accepts += 1
            result.note(f"wrong accept ({name})", text[:300])
        elif oracle is True and not accepted:
            result.wrong_rejects += 1
            result.note(f"wrong reject ({name})", lines[:2])
    _timing(result, times, slow)
    return result


# ------------------------------------------------------------------ annotation maps

VALID_VALUES: Mapping[str, tuple[str, ...]] = {
    AGENT: ("claude-code", "claude-code:claude-opus-4", "claude-code:claude-opus-4 [tool]"),
    MODEL: ("claude-opus-4", "claude-sonnet-4.5"),
    CHANGE: ("https://github.com/acme/docs/pull/42", "0123abcdef0123abcdef"),
    TESTS: (
        "passed; cmd=pytest -q; report=https://ci.example/run/7",
        '{"result": "passed", "command": "pytest -q"}',
        "failed",
    ),
    REVIEWER: ("alice@example.com", "Alice <alice@example.com>"),
    TRAILERS: (
        "Assisted-by: claude-code:claude-opus-4\nChange: https://github.com/acme/docs/pull/42",
        "Tests: passed; cmd=pytest\nReviewed-by: Bob <bob@example.com>",
    ),
    SIGNATURE: ("e30=", "{}"),
}


def _hostile_value(rng: random.Random, key: str) -> tuple[str | bytes, bool]:
    """A hostile value for ``key`` and whether it must be refused outright."""
    kind = rng.randrange(10)
    base = rng.choice(VALID_VALUES[key])
    if kind == 0:
        at = rng.randrange(len(base) + 1)
        return base[:at] + rng.choice(HOSTILE_TEXT) + base[at:], True
    if kind == 1 and key == TESTS:
        escape = rng.choice(JSON_ESCAPES)
        return f'{{"result": "passed", "command": "pytest{escape}"}}', True
    if kind == 2:
        opener = rng.choice(['{"":', "[", '{"result":'])
        return opener * rng.choice([10, 200, 1024, 3000]), True
    if kind == 3:
        limit = MAX_LEN[key]
        return "a" * (limit + rng.choice([1, 100, 10_000])), True
    if kind == 4 and key in (AGENT, TRAILERS):
        filler = " " * rng.choice([100, 5000, 16_000])
        line = "Assisted-by: a" + filler + rng.choice(["x", "[", "[]", " [x"])
        return line[: MAX_LEN[key]], False
    if kind == 5:
        return rng.choice([b"\xff\xfe", b"ok\x80", b"ok"]), False
    if kind == 6:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randint(1, 60))), False
    if kind == 7 and key == TRAILERS:
        lines = [rng.choice(["Assisted-by", "Change", "Tests", "X"]) + ": " + base for _ in "..."]
        return "\n".join(lines * rng.randint(1, 50))[: MAX_LEN[key]], False
    return base, False


def generate_annotation_maps(count: int, seed: int) -> Iterator[tuple[dict[str, Any], set[str]]]:
    rng = random.Random(seed)  # noqa: S311 (reproducible test input, not secrets)
    keys = list(VALID_VALUES)
    for _ in range(count):
        annotations: dict[str, Any] = {}
        must_refuse: set[str] = set()
        for key in rng.sample(keys, rng.randint(1, len(keys))):
            if rng.random() < 0.5:
                annotations[key] = rng.choice(VALID_VALUES[key])
            else:
                annotations[key], refuse = _hostile_value(rng, key)
                if refuse:
                    must_refuse.add(key)
        if rng.random() < 0.2:
            annotations["changelane.dev/flag"] = rng.choice(["docs.new-nav", "\x1b[2J", "x" * 300])
        yield annotations, must_refuse


_FIELD_OF = {AGENT: "agent", MODEL: "model", CHANGE: "change", TESTS: "tests", REVIEWER: "reviewer"}


def fuzz_annotations(count: int, seed: int, lane: ChangeLane) -> CorpusResult:
    result = CorpusResult("annotation maps")
    times: list[float] = []
    slow = _Slowest()
    for annotation_map, must_refuse in generate_annotation_maps(count, seed):
        result.inputs += 1
        template = {"metadata": {"annotations": annotation_map}}
        started = time.perf_counter()
        try:
            spec = release_spec_from_template(template)
            provenance = spec["provenance"]
            sources = provenance_from_annotations(annotation_map).sources
            evaluate_provenance(
                lane,
                _provenance_model(provenance),
                problems=(),
            )
        except Exception as exc:
            result.crashes += 1
            result.note(f"crash {exc!r}", annotation_map)
            continue
        finally:
            times.append(time.perf_counter() - started)
            slow.add(times[-1], functools.partial(release_spec_from_template, template))
        for text in _strings(spec):
            if first_unsafe(text, allow="\n\t") is not None:
                result.wrong_accepts += 1
                result.note("control character accepted", text[:120])
                break
        for key in must_refuse:
            name, raw = _FIELD_OF.get(key), annotation_map[key]
            if name is None or not isinstance(raw, str) or name == "tests":
                continue  # tests evidence is judged by the control-character check above
            if sources.get(name) == key:
                result.wrong_accepts += 1
                result.note(f"{key} accepted", raw)
    _timing(result, times, slow)
    return result


def _provenance_model(wire: Mapping[str, Any]) -> Any:
    from controller.core.models.release import Provenance

    return Provenance.model_validate(wire)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield str(key)
            yield from _strings(child)
    elif isinstance(value, list):
        for child in value:
            yield from _strings(child)


# ------------------------------------------------------------------ injection corpus


def selectors(expr: Any) -> list[tuple[str | None, list[tuple[str, str, str]]]]:
    """Every vector selector of a parsed query: (metric name, [(label, op, value)])."""
    found: list[tuple[str | None, list[tuple[str, str, str]]]] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, promql_parser.VectorSelector):
            matchers = [(m.name, str(m.op), m.value) for m in node.matchers.matchers]
            found.append((node.name, sorted(matchers)))
            continue
        for attr in ("lhs", "rhs", "expr", "vector_selector", "param", "args"):
            child = getattr(node, attr, None)
            if isinstance(child, list):
                stack.extend(child)
            elif child is not None:
                stack.append(child)
    return found


def expected_value(template: str, hostile: str) -> str:
    """The matcher value the template means for ``hostile``: the value itself, or (in a
    regex matcher) the regex that matches exactly it."""
    regex = "=~" in template or "!~" in template
    # A lone surrogate cannot travel in a query; the renderer sends U+FFFD instead.
    hostile = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in hostile)
    value = escape_regex(hostile) if regex else hostile
    suffix = ".*" if "}}.*" in template else ""
    return value + suffix


def check_injection(template: str, hostile: str) -> str | None:
    """Why the rendered query's selectors differ from the template's, or None."""
    try:
        query = render(template, {"workload": hostile})
        parsed = promql_parser.parse(query)
    except Exception as exc:
        return f"does not render or parse: {exc}"
    reference = selectors(promql_parser.parse(render(template, {"workload": "web"})))
    got = selectors(parsed)
    if len(got) != len(reference) or type(parsed) is not type(
        promql_parser.parse(render(template, {"workload": "web"}))
    ):
        return f"query shape changed: {query!r}"
    (name, matchers), (ref_name, ref_matchers) = got[0], reference[0]
    if name != ref_name or [(n, o) for n, o, _ in matchers] != [(n, o) for n, o, _ in ref_matchers]:
        return f"selector changed: {query!r}"
    value = next(v for n, _, v in matchers if n == "value")
    if value != expected_value(template, hostile):
        return f"value {value!r} is not {expected_value(template, hostile)!r}: {query!r}"
    return None


def fuzz_injection() -> CorpusResult:
    result = CorpusResult("injection corpus")
    times: list[float] = []
    slow = _Slowest()
    for template in INJECTION_TEMPLATES:
        for hostile in (*INJECTION_CORPUS, "\ud800web"):
            result.inputs += 1
            started = time.perf_counter()
            try:
                problem = check_injection(template, hostile)
            except Exception as exc:
                result.crashes += 1
                result.note(f"crash {exc!r}", hostile)
                continue
            finally:
                times.append(time.perf_counter() - started)
                slow.add(times[-1], functools.partial(check_injection, template, hostile))
            if problem is not None:
                result.wrong_accepts += 1
                result.note("selector changed", problem)
    _timing(result, times, slow)
    return result


# ------------------------------------------------------------------ driver


class _Slowest:
    """The few slowest inputs, kept to be timed again."""

    def __init__(self, keep: int = 5) -> None:
        self.keep = keep
        self.items: list[tuple[float, int, Callable[[], object]]] = []

    def add(self, seconds: float, again: Callable[[], object]) -> None:
        if len(self.items) < self.keep or seconds > self.items[0][0]:
            heapq.heappush(self.items, (seconds, id(again), again))
            if len(self.items) > self.keep:
                heapq.heappop(self.items)

    def retimed(self) -> float:
        worst = 0.0
        for _, _, again in self.items:
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                with contextlib.suppress(Exception):
                    again()
                best = min(best, time.perf_counter() - started)
            worst = max(worst, best)
        return worst


def _timing(result: CorpusResult, times: list[float], slow: _Slowest) -> None:
    if times:
        result.worst_ms = round(max(times) * 1000, 2)
        result.median_ms = round(statistics.median(times) * 1000, 3)
        result.worst_retimed_ms = round(slow.retimed() * 1000, 2)


def run(*, lanes: int = 10_000, annotations: int = 10_000, seed: int = 1) -> dict[str, Any]:
    from controller.core.models.lane import ChangeLane

    lane = ChangeLane.model_validate(BASE_LANE)
    results = [
        fuzz_lanes(lanes, seed),
        fuzz_annotations(annotations, seed, lane),
        fuzz_injection(),
    ]
    return {
        "seed": seed,
        "corpora": [asdict(r) for r in results],
        "crashes": sum(r.crashes for r in results),
        "wrong_accepts": sum(r.wrong_accepts for r in results),
        "worst_ms": max(r.worst_ms for r in results),
        "worst_retimed_ms": max(r.worst_retimed_ms for r in results),
    }


def table(result: Mapping[str, Any]) -> str:
    header = (
        f"{'corpus':<18}{'inputs':>8}{'crashes':>9}{'wrong accepts':>15}"
        f"{'wrong rejects':>15}{'median ms':>11}{'worst ms':>10}{'worst re-timed':>16}"
    )
    lines = [f"changelane bench fuzz (seed {result['seed']})", header, "-" * len(header)]
    for c in result["corpora"]:
        lines.append(
            f"{c['name']:<18}{c['inputs']:>8}{c['crashes']:>9}{c['wrong_accepts']:>15}"
            f"{c['wrong_rejects']:>15}{c['median_ms']:>11}{c['worst_ms']:>10}"
            f"{c['worst_retimed_ms']:>16}"
        )
    for c in result["corpora"]:
        for example in c["examples"]:
            lines.append(f"  {c['name']}: {example}")
    return "\n".join(lines)
