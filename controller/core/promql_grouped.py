"""The grouped form of a check's PromQL template: one query for every release of a lane (pure).

A single-release template selects one workload and one track with equality matchers,
``app="{{ workload }}", track="{{ track }}"``, and aggregates them into one series. Its
grouped form answers for every release of a lane at once:

- each of those matchers becomes a regex matcher, ``app=~"{{ workload }}"``, and the
  parameter is rendered as a *set* of names (an anchored alternation of regex-escaped
  literals, :func:`controller.core.promql.literal_alternation`), so a name still matches
  only itself and every value still goes through :func:`controller.core.promql.render`;
- every aggregation keeps the labels that tell the releases apart: ``sum(...)`` becomes
  ``sum by (namespace, app, track) (...)`` and ``sum by (le) (...)`` becomes
  ``sum by (le, namespace, app, track) (...)``, so the answer has one series per
  namespace, workload and track.

Only templates whose shape makes that rewrite exact are grouped; anything else
(``{{ revision }}`` or ``{{ pod }}``, ``without``, a ``by`` after the parenthesis, an
aggregation that ranks or collapses series such as ``topk`` or ``scalar``) keeps being
queried once per release, as before. The rewritten template must parse as PromQL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from controller.core.promql import (
    SAMPLE_PARAMETERS,
    ParamValue,
    placeholders,
    promql_syntax_error,
    render,
)

#: The parameters a grouped query answers for many values of, in result-label order.
GROUP_PARAMETERS = ("namespace", "workload", "track")
#: Parameters that differ per release and cannot be shared by one grouped query.
PER_RELEASE_PARAMETERS = frozenset({"revision", "pod"})

_LABEL_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*\"$")
_AGGREGATION = re.compile(
    r"\b(sum|avg|min|max|count|group|stddev|stdvar)\s*(?:\b(by|without)\s*\(([^)]*)\)\s*)?\("
)
_REFUSED_CALLS = re.compile(
    r"\b(topk|bottomk|quantile|count_values|limitk|scalar|vector|absent)\s*\("
)
_POSTFIX_MODIFIER = re.compile(r"\)\s*(by|without)\s*\(")


@dataclass(frozen=True)
class GroupedTemplate:
    """A template rewritten to answer for many releases, and which result label carries
    each group parameter (``{"namespace": "namespace", "workload": "app", ...}``)."""

    template: str
    labels: Mapping[str, str]

    def render(
        self,
        *,
        namespaces: tuple[str, ...],
        workloads: tuple[str, ...],
        tracks: tuple[str, ...],
        window: str,
        lane: str,
    ) -> str:
        values: dict[str, ParamValue] = {
            "namespace": namespaces,
            "workload": workloads,
            "track": tracks,
            "window": window,
            "interval": window,
            "lane": lane,
        }
        return render(self.template, values)


def grouped_template(template: str) -> GroupedTemplate | str:
    """The grouped form of ``template``, or why it has none (then it is queried per
    release)."""
    if _REFUSED_CALLS.search(_outside_strings(template)):
        return "it ranks or collapses series (topk, quantile, scalar, ...)"
    if _POSTFIX_MODIFIER.search(_outside_strings(template)):
        return "an aggregation's by/without follows its parenthesis"
    try:
        found = placeholders(template)
    except ValueError as exc:
        return str(exc)
    labels: dict[str, str] = {}
    rewrites: list[int] = []  # positions of the "=" to turn into "=~"
    for p in found:
        if p.name in PER_RELEASE_PARAMETERS:
            return f"it names {{{{ {p.name} }}}}, which differs per release"
        if p.name not in GROUP_PARAMETERS:
            continue
        match = _LABEL_BEFORE.search(template, 0, p.start)
        closes = template[p.end : p.end + 1] == '"'
        if p.regex or p.quote != '"' or match is None or not closes:
            return f'{{{{ {p.name} }}}} is not a whole label="{{{{ {p.name} }}}}" matcher'
        label = match.group(1)
        if labels.setdefault(p.name, label) != label:
            return f"{{{{ {p.name} }}}} is matched against two labels"
        rewrites.append(template.index("=", match.start(), p.start))
    missing = [name for name in GROUP_PARAMETERS if name not in labels]
    if missing:
        return f"it does not select by {', '.join(missing)}"
    grouping = ", ".join(labels[name] for name in GROUP_PARAMETERS)
    out = template
    for pos in sorted(rewrites, reverse=True):
        out = out[:pos] + "=~" + out[pos + 1 :]
    out, aggregations = _group_aggregations(out, grouping)
    if aggregations == 0:
        return "it has no aggregation to group (e.g. sum(...))"
    if isinstance(aggregations, str):
        return aggregations
    sample: dict[str, ParamValue] = dict(SAMPLE_PARAMETERS)
    sample.update({name: ("a", "b") for name in GROUP_PARAMETERS})
    error = promql_syntax_error(render(out, sample))
    if error is not None:
        return f"its grouped form does not parse ({error})"
    return GroupedTemplate(out, labels)


def _group_aggregations(template: str, grouping: str) -> tuple[str, int | str]:
    """Add ``grouping`` to every aggregation's ``by``; refuse ``without``."""
    masked = _outside_strings(template)
    count = 0
    pieces: list[str] = []
    pos = 0
    for match in _AGGREGATION.finditer(masked):
        op, modifier, existing = match.group(1), match.group(2), match.group(3)
        if modifier == "without":
            return template, f"{op} without (...) may drop the labels that tell releases apart"
        labels = [x.strip() for x in (existing or "").split(",") if x.strip()]
        labels += [x for x in grouping.split(", ") if x not in labels]
        pieces.append(template[pos : match.start()])
        pieces.append(f"{op} by ({', '.join(labels)}) (")
        pos = match.end()
        count += 1
    pieces.append(template[pos:])
    return "".join(pieces), count


def _outside_strings(template: str) -> str:
    """``template`` with the inside of every string literal blanked (same length), so that
    a label value never looks like syntax."""
    out = list(template)
    quote: str | None = None
    i = 0
    while i < len(template):
        char = template[i]
        if quote is None:
            if char in "\"'`":
                quote = char
        elif char == "\\" and quote != "`":
            out[i] = " "
            if i + 1 < len(template):
                out[i + 1] = " "
            i += 2
            continue
        elif char == quote:
            quote = None
        else:
            out[i] = " "
        i += 1
    return "".join(out)
