"""PromQL templates: parsing, validation and injection-safe rendering (pure).

A template names parameters Flagger-style, ``{{ namespace }}``. Two kinds exist:

- *label parameters* (namespace, workload, track, revision, lane, pod) come from objects
  that agents and users control, so they may only appear inside a double-quoted PromQL
  string and are escaped as a label value when rendered. A value containing ``"``, ``}``,
  ``\\`` or a newline therefore stays inside its string and cannot change the query.
- *duration parameters* (window, interval) are produced by the controller and must match
  the PromQL duration grammar; anything else is rejected rather than rendered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

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


def placeholders(template: str) -> list[Placeholder]:
    """Every ``{{ name }}`` in the template, with whether it sits inside a string literal."""
    found: list[Placeholder] = []
    quote: str | None = None
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
        else:
            match = _PLACEHOLDER.match(template, i)
            if match:
                found.append(Placeholder(match.group(1), match.start(), match.end(), True))
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
    """Human-readable problems with a template; empty when it is safe to render."""
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


def escape_label_value(value: str) -> str:
    """Escape a value for use inside a double-quoted PromQL string."""
    return (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )


def escape_regex_label_value(value: str) -> str:
    """Escape a value that will be matched with ``=~`` so it only matches itself."""
    return escape_label_value(re.escape(value))


def render(template: str, parameters: Mapping[str, str]) -> str:
    """Render a template; raises ``TemplateError`` rather than produce an unsafe query."""
    problems = template_problems(template)
    if problems:
        raise TemplateError("; ".join(problems))
    out: list[str] = []
    pos = 0
    for p in placeholders(template):
        if p.name not in parameters:
            raise TemplateError(f"no value for template parameter {{{{ {p.name} }}}}")
        value = parameters[p.name]
        out.append(template[pos : p.start])
        if p.name in DURATION_PARAMETERS:
            if not _PROMQL_DURATION.fullmatch(value):
                raise TemplateError(f"{p.name}={value!r} is not a PromQL duration")
            out.append(value)
        else:
            out.append(escape_label_value(value))
        pos = p.end
    out.append(template[pos:])
    return "".join(out)
