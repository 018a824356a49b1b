"""Label selectors (equality- and set-based) and field selectors, parsed as kube parses them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.core.selectors import API_OPERATORS, requirement_matches
from controller.sim.errors import ApiError, bad_request

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY_RE = re.compile(
    rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}$"
)
_LABEL_VALUE_RE = re.compile(rf"^({_NAME})?$")


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key, or None."""
    prefix, _, name = key.rpartition("/")
    if not _LABEL_KEY_RE.match(key) or len(name) > 63 or len(prefix) > 253:
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or None."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _LABEL_VALUE_RE.match(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
            "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return None


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return requirement_matches(self.key, self.operator, self.values, labels)


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


EVERYTHING = LabelSelector()

_TOKEN_RE = re.compile(r"\s*(\(|\)|,|!=|==|=|!|[^\s(),=!]+)")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise bad_request(f"unable to parse requirement: unexpected input at {text[pos:]!r}")
        out.append(match.group(1))
        pos = match.end()
    return out


def _selector_error(text: str, why: str) -> ApiError:
    return bad_request(f"unable to parse requirement: {why}")


# Complexity D by design: a hand-written tokenizer's state machine for kube's selector
# grammar (=, ==, !=, in, notin, exists, !), with the apiserver's error for each bad form.
def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse ``a=b,c!=d,e in (f,g),!h,i``; raises 400 ``ApiError`` like the apiserver."""
    if not text or not text.strip():
        return EVERYTHING
    tokens = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def expect_key(tok: str) -> str:
        problem = label_key_problem(tok)
        if problem:
            raise _selector_error(text, f'key: Invalid value: "{tok}": {problem}')
        return tok

    def expect_value(tok: str, key: str) -> str:
        problem = label_value_problem(tok)
        if problem:
            raise _selector_error(text, f'values[0][{key}]: Invalid value: "{tok}": {problem}')
        return tok

    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            if i + 1 >= len(tokens):
                raise _selector_error(text, "found '', expected: identifier after '!'")
            reqs.append(Requirement(expect_key(tokens[i + 1]), "!"))
            i += 2
        elif tok in {",", "(", ")", "=", "==", "!="}:
            raise _selector_error(
                text, f"found '{tok}', expected: !, identifier, or 'end of string'"
            )
        else:
            key = expect_key(tok)
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ","
            if nxt == ",":
                reqs.append(Requirement(key, "exists"))
                i += 1
            elif nxt in {"=", "==", "!="}:
                value = tokens[i + 2] if i + 2 < len(tokens) else ""
                if value in {",", "(", ")", "=", "==", "!=", "!"}:
                    if value == ",":
                        value = ""
                        i -= 1
                    else:
                        raise _selector_error(text, f"found '{value}', expected: identifier")
                op = "!=" if nxt == "!=" else "="
                reqs.append(Requirement(key, op, (expect_value(value, key),)))
                i += 3
            elif nxt.lower() in {"in", "notin"}:
                if i + 2 >= len(tokens) or tokens[i + 2] != "(":
                    raise _selector_error(text, "found '', expected: '('")
                j = i + 3
                values: list[str] = []
                while j < len(tokens) and tokens[j] != ")":
                    if tokens[j] != ",":
                        values.append(expect_value(tokens[j], key))
                    j += 1
                if j >= len(tokens):
                    raise _selector_error(text, "found '', expected: ')'")
                if not values:
                    values = [""]
                reqs.append(Requirement(key, nxt.lower(), tuple(values)))
                i = j + 1
            else:
                raise _selector_error(
                    text, f"found '{nxt}', expected: in, notin, =, ==, !=, gt, lt"
                )
        if i < len(tokens):
            if tokens[i] != ",":
                raise _selector_error(
                    text, f"found '{tokens[i]}', expected: ',' or 'end of string'"
                )
            i += 1
            if i == len(tokens):
                raise _selector_error(text, "found '', expected: identifier after ','")
    return LabelSelector(tuple(reqs))


def selector_from_spec(spec: Mapping[str, Any] | None) -> LabelSelector:
    """A ``metav1.LabelSelector`` (matchLabels / matchExpressions) as a matcher."""
    if not spec:
        return EVERYTHING
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (spec.get("matchLabels") or {}).items()]
    for expr in spec.get("matchExpressions") or []:
        reqs.append(
            Requirement(
                expr["key"], API_OPERATORS[expr["operator"]], tuple(expr.get("values") or ())
            )
        )
    return LabelSelector(tuple(reqs))


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    value: str
    negate: bool


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, lookup: Callable[[str], str]) -> bool:
        return all((lookup(r.field) == r.value) != r.negate for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def parse_field_selector(text: str | None, supported: frozenset[str]) -> FieldSelector:
    """Parse ``metadata.name=x,status.phase!=Running`` for fields the resource supports."""
    if not text or not text.strip():
        return FieldSelector()
    reqs: list[FieldRequirement] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        negate = "!=" in part
        sep = "!=" if negate else ("==" if "==" in part else "=")
        if sep not in part:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, _, value = part.partition(sep)
        field = field.strip()
        if field not in supported:
            raise bad_request(f"field label not supported: {field}")
        reqs.append(FieldRequirement(field, value.strip(), negate))
    return FieldSelector(tuple(reqs))


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string value a field selector compares against (``""`` when absent)."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)
