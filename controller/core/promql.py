"""PromQL templates: parsing, validation and injection-safe rendering (pure).

A template names parameters Flagger-style, ``{{ namespace }}``. Two kinds exist:

- *label parameters* (namespace, workload, track, revision, lane, pod) come from objects
  that agents and users control, so they may only appear inside a double-quoted PromQL
  string and are escaped as a label value when rendered. A value containing ``"``, ``}``,
  ``\\`` or a newline therefore stays inside its string and cannot change the query.
  Single-quoted and backtick strings are refused: a backtick string has no escapes at all,
  and one quoting rule is easier to get right than three. In a string matched with ``=~``
  or ``!~`` the value is regex-escaped first (as Go's ``regexp.QuoteMeta``), so
  ``docs.site`` matches ``docs.site`` and not ``docsXsite``.
- *duration parameters* (window, interval) are produced by the controller and must match
  the PromQL duration grammar; anything else is rejected rather than rendered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import promql_parser

from controller.core.text import unsafe_character

LABEL_PARAMETERS = frozenset({"namespace", "workload", "track", "revision", "lane", "pod"})
DURATION_PARAMETERS = frozenset({"window", "interval"})
KNOWN_PARAMETERS = LABEL_PARAMETERS | DURATION_PARAMETERS

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_PROMQL_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


class TemplateError(ValueError):
    """A template that cannot be rendered safely; the message says why."""


@dataclass(frozen=True)
class Placeholder:
    name: str
    start: int
    end: int
    quoted: bool
    #: The quote character of the string it sits in (``"``, ``'``, `````), or None.
    quote: str | None = None
    #: Inside a string matched with ``=~`` or ``!~``: the value is a regex.
    regex: bool = False


def placeholders(template: str) -> list[Placeholder]:
    """Every ``{{ name }}`` in the template, with whether it sits inside a string literal."""
    found: list[Placeholder] = []
    quote: str | None = None
    regex = False
    i = 0
    while i < len(template):
        if quote is None:
            match = _PLACEHOLDER.match(template, i)
            if match:
                found.append(Placeholder(match.group(1), match.start(), match.end(), False))
                i = match.end()
                continue
            if template[i] in "\"'`":
                quote = template[i]
                regex = template[:i].rstrip().endswith(("=~", "!~"))
        else:
            match = _PLACEHOLDER.match(template, i)
            if match:
                found.append(
                    Placeholder(
                        match.group(1), match.start(), match.end(), True, quote=quote, regex=regex
                    )
                )
                i = match.end()
                continue
            if template[i] == "\\" and quote != "`":
                i += 2
                continue
            if template[i] == quote:
                quote = None
        i += 1
    if quote is not None:
        raise TemplateError("unterminated string literal in PromQL template")
    return found


def template_problems(template: str) -> list[str]:
    """Human-readable problems with a template; empty when it is safe to render and, with
    sample values, parses as PromQL."""
    problems = placement_problems(template)
    return problems or parse_problems(template)


def placement_problems(template: str) -> list[str]:
    """Problems with where the template's parameters sit (unknown, unquoted, ...)."""
    if len(template) > MAX_TEMPLATE_LENGTH:
        return [f"template is {len(template)} characters; expected at most {MAX_TEMPLATE_LENGTH}"]
    try:
        found = placeholders(template)
    except TemplateError as exc:
        return [str(exc)]
    problems: list[str] = []
    for p in found:
        if p.name not in KNOWN_PARAMETERS:
            problems.append(
                f"unknown template parameter {{{{ {p.name} }}}}; "
                f"expected one of {', '.join(sorted(KNOWN_PARAMETERS))}"
            )
        elif p.name in LABEL_PARAMETERS and p.quoted and p.quote != '"':
            problems.append(
                f"parameter {{{{ {p.name} }}}} is inside a {_QUOTE_NAMES[p.quote or '']} "
                "string, which cannot be escaped safely; expected a double-quoted label "
                f'value, e.g. namespace="{{{{ {p.name} }}}}"'
            )
        elif p.name in LABEL_PARAMETERS and not p.quoted:
            problems.append(
                f"parameter {{{{ {p.name} }}}} must be inside a double-quoted label value, "
                f'e.g. namespace="{{{{ {p.name} }}}}"'
            )
        elif p.name in DURATION_PARAMETERS and p.quoted:
            problems.append(
                f"parameter {{{{ {p.name} }}}} is a duration and must not be quoted, "
                f"e.g. [{{{{ {p.name} }}}}]"
            )
    return problems


_QUOTE_NAMES = {"'": "single-quoted", "`": "backtick", "": ""}
#: Values a template is rendered with to check, offline, that it parses as PromQL.
SAMPLE_PARAMETERS: Mapping[str, str] = {
    **{name: f"sample-{name}" for name in LABEL_PARAMETERS},
    "window": "5m",
    "interval": "30s",
}
MAX_TEMPLATE_LENGTH = 8192


def parse_problems(template: str) -> list[str]:
    """The template rendered with sample values must parse as PromQL; a broken template
    (``[{{ window }}m]``, a missing ``}``) is refused here instead of at query time."""
    try:
        query = render(template, SAMPLE_PARAMETERS)
    except TemplateError as exc:
        return [str(exc)]
    error = promql_syntax_error(query)
    return (
        [] if error is None else [f"does not parse as PromQL ({error}) when rendered as {query!r}"]
    )


def promql_syntax_error(query: str) -> str | None:
    """Why ``query`` is not PromQL, or None (parsed offline by ``promql-parser``)."""
    try:
        promql_parser.parse(query)
    except Exception as exc:  # the parser raises ValueError; nothing else may escape
        return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return None


_STRING_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_REGEX_META = re.compile(r"([\\.+*?()|\[\]{}^$])")


def escape_label_value(value: str) -> str:
    """Escape a value for use inside a double-quoted PromQL string.

    Control and format characters become ``\\uXXXX`` escapes (PromQL strings take Go's);
    a lone surrogate, which no escape can carry, becomes U+FFFD.
    """
    out: list[str] = []
    for char in value:
        if char in _STRING_ESCAPES:
            out.append(_STRING_ESCAPES[char])
        elif "\ud800" <= char <= "\udfff":
            out.append("\\ufffd")
        elif unsafe_character(char):
            code = ord(char)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


def escape_regex(value: str) -> str:
    """``value`` as an RE2 regex that matches exactly itself (Go's ``regexp.QuoteMeta``)."""
    return _REGEX_META.sub(r"\\\1", value)


def escape_regex_label_value(value: str) -> str:
    """Escape a value that will be matched with ``=~`` so it only matches itself."""
    return escape_label_value(escape_regex(value))


#: A parameter's value: one string, or a set of literal strings that a ``=~`` matcher
#: accepts any of (each regex-escaped, so none can widen the match beyond itself).
ParamValue = str | tuple[str, ...]


def literal_alternation(values: tuple[str, ...]) -> str:
    """A regex matching exactly one of ``values``, each escaped (RE2 ``QuoteMeta``)."""
    return "^(?:" + "|".join(escape_regex(v) for v in values) + ")$"


def render(template: str, parameters: Mapping[str, ParamValue]) -> str:
    """Render a template; raises ``TemplateError`` rather than produce an unsafe query."""
    problems = placement_problems(template)
    if problems:
        raise TemplateError("; ".join(problems))
    out: list[str] = []
    pos = 0
    for p in placeholders(template):
        if p.name not in parameters:
            raise TemplateError(f"no value for template parameter {{{{ {p.name} }}}}")
        value = parameters[p.name]
        out.append(template[pos : p.start])
        if isinstance(value, tuple):
            if not p.regex:
                raise TemplateError(
                    f"{{{{ {p.name} }}}} is a set of values: it must be matched with =~ or !~"
                )
            out.append(escape_label_value(literal_alternation(value)))
        elif p.name in DURATION_PARAMETERS:
            if not _PROMQL_DURATION.fullmatch(value):
                raise TemplateError(f"{p.name}={value!r} is not a PromQL duration")
            out.append(value)
        elif p.regex:
            out.append(escape_regex_label_value(value))
        else:
            out.append(escape_label_value(value))
        pos = p.end
    out.append(template[pos:])
    return "".join(out)
