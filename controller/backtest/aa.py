"""A/A backtests: the lane against the service's own noise (pure).

In a period with no release every pod runs the same version, so any difference between
two groups of pods is noise. We pretend ``k`` pods are the canary and the rest the
baseline, replay the lane, and repeat over many splits and periods: every rollback is a
false one.

The lane's queries pick an arm with a label matcher on ``{{ track }}`` or
``{{ revision }}``; for an A/A run that matcher becomes ``pod=~"{{ pod }}"`` and the pod
parameter is the arm's pods as a set of literal values, which
``controller.core.promql.render`` turns into an anchored alternation of regex-escaped names
(escaped again as a label value, as every parameter is). A template that selects its arm
any other way cannot be split, and the A/A run says so instead of comparing the whole
service with itself.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass

from controller.core.analysis import ReleaseParams
from controller.core.analysis.sample import Track
from controller.core.models import AnalysisCheck
from controller.core.promql import ParamValue, placeholders

ARM_PARAMETERS = ("track", "revision")
POD_MATCHER = 'pod=~"{{ pod }}"'
_MATCHER_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*$")
_TEMPLATE_FIELDS = ("query", "baseline_query", "errors_query", "total_query")


class SplitError(ValueError):
    """A check whose queries cannot be split by pod; the message names it and says why."""


def split_template(template: str) -> str:
    """``template`` with every ``label="{{ track }}"``/``{{ revision }}`` matcher replaced by
    a pod matcher; raises ``SplitError`` when there is none or one is not a plain ``=``."""
    spans: list[tuple[int, int]] = []
    for p in placeholders(template):
        if p.name not in ARM_PARAMETERS:
            continue
        quoted_alone = template[p.start - 1 : p.start] == '"' and template[p.end : p.end + 1] == '"'
        match = _MATCHER_BEFORE.search(template, 0, max(0, p.start - 1))
        if not quoted_alone or match is None or match.group(2) != "=":
            raise SplitError(
                f"{{{{ {p.name} }}}} must be a whole label value matched with =, "
                f'e.g. track="{{{{ {p.name} }}}}", to split the arm by pod'
            )
        spans.append((match.start(), p.end + 1))
    if not spans:
        raise SplitError(
            "the query does not select its arm with {{ track }} or {{ revision }}, so the "
            "pods cannot be split into a pretend canary and baseline"
        )
    out = template
    for a, b in sorted(spans, reverse=True):
        out = out[:a] + POD_MATCHER + out[b:]
    return out


def split_check(check: AnalysisCheck) -> AnalysisCheck:
    """The check with its arm matchers on pods; ``SplitError`` names the check."""
    update: dict[str, str] = {}
    for name in _TEMPLATE_FIELDS:
        template = getattr(check, name)
        if template is None:
            continue
        try:
            update[name] = split_template(template)
        except SplitError as exc:
            wire = "".join(w.capitalize() if i else w for i, w in enumerate(name.split("_")))
            raise SplitError(f"check {check.name}, {wire}: {exc}") from None
    return check.model_copy(update=update)


@dataclass(frozen=True)
class SplitParams(ReleaseParams):
    """Release parameters whose arms are groups of pods rather than tracks."""

    canary_pods: tuple[str, ...] = ()
    baseline_pods: tuple[str, ...] = ()

    def for_track(self, track: Track, window_seconds: int) -> dict[str, ParamValue]:
        values = super().for_track(track, window_seconds)
        values["pod"] = self.canary_pods if track is Track.CANARY else self.baseline_pods
        return values


def pod_splits(
    pods: tuple[str, ...], canary_pods: int, count: int, seed: int
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Up to ``count`` distinct (canary, baseline) splits with ``canary_pods`` in the canary;
    every split when there are no more than ``count``, a seeded sample otherwise."""
    pods = tuple(sorted(pods))
    if len(pods) < 2 or not 1 <= canary_pods < len(pods):
        return []
    combos = list(itertools.combinations(range(len(pods)), canary_pods))
    if len(combos) > count:
        combos = random.Random(seed).sample(combos, count)  # noqa: S311 (sampling, not secrets)
    out = []
    for chosen in combos:
        canary = tuple(pods[i] for i in chosen)
        out.append((canary, tuple(p for p in pods if p not in canary)))
    return out


def series_selector(query: str, marker: str) -> str | None:
    """The vector selector (``name{...}``) in ``query`` whose matchers contain ``marker``,
    for asking Prometheus which pods have series; None when there is none."""
    at = query.find(marker)
    if at < 0:
        return None
    opened: list[int] = []
    quote: str | None = None
    i = 0
    while i < len(query):
        ch = query[i]
        if quote is not None:
            if ch == "\\" and quote != "`":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch == "{":
            opened.append(i)
        elif ch == "}" and opened:
            left = opened.pop()
            if left < at < i:
                name_start = left
                while name_start > 0 and (
                    query[name_start - 1].isalnum() or query[name_start - 1] in "_:"
                ):
                    name_start -= 1
                return query[name_start : i + 1]
        i += 1
    return None
