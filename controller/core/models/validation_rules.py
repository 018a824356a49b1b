"""CRD validation rules (``x-kubernetes-validations``, CEL) for what a schema cannot say,
each with a Python twin (pure).

The CEL text goes into the generated CRD, so a real API server refuses, for example, a
ChangeLane whose weights do not increase. The twin is what the simulated cluster
evaluates for the same rule (it has no CEL interpreter): a rule without a twin would not
be enforced there, so every rule here has one, and a test checks the twins against the
pydantic validators they mirror. The CEL uses the Kubernetes ``lists`` library
(``isSorted``, Kubernetes 1.27+).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    cel: str
    message: str
    twin: Callable[[Any], bool]

    def schema(self) -> dict[str, str]:
        return {"rule": self.cel, "message": self.message}


def _weights_increase(strategy: Mapping[str, Any]) -> bool:
    weights = [step.get("weight") for step in strategy.get("steps") or []]
    return all(a < b for a, b in itertools.pairwise(weights))


def _last_step_analysed(strategy: Mapping[str, Any]) -> bool:
    steps = strategy.get("steps") or []
    return not steps or steps[-1].get("analysis", True) is not False


WEIGHTS_INCREASE = Rule(
    "self.steps.map(s, s.weight).isSorted() && "
    "self.steps.all(s, self.steps.exists_one(t, t.weight == s.weight))",
    "steps[].weight must increase from one step to the next",
    _weights_increase,
)
LAST_STEP_ANALYSED = Rule(
    "!has(self.steps[size(self.steps) - 1].analysis) || self.steps[size(self.steps) - 1].analysis",
    "the last step's analysis must be true: nothing promotes without a pass at full exposure",
    _last_step_analysed,
)
FLAG_ONLY_NEEDS_RAMP = Rule(
    "!has(self.flagOnly) || !self.flagOnly || has(self.flagRamp)",
    "flagOnly needs flagRamp",
    lambda s: not s.get("flagOnly") or "flagRamp" in s,
)
GATEWAY_NEEDS_ROUTE = Rule(
    "!has(self.mode) || self.mode != 'gatewayAPI' || has(self.httpRoute)",
    "mode gatewayAPI needs httpRoute",
    lambda t: t.get("mode") != "gatewayAPI" or bool(t.get("httpRoute")),
)
WINDOW_ORDERED = Rule(
    "self.end > self.start",
    "a change window's end must be after its start",
    lambda w: str(w.get("end", "")) > str(w.get("start", "")),
)
CHECK_NAMES_UNIQUE = Rule(
    "self.checks.all(c, self.checks.exists_one(d, d.name == c.name))",
    "checks[].name must be unique",
    lambda a: len({c.get("name") for c in a.get("checks") or []}) == len(a.get("checks") or []),
)
SELECTOR_NOT_EMPTY = Rule(
    "(has(self.matchLabels) && size(self.matchLabels) > 0) || "
    "(has(self.matchExpressions) && size(self.matchExpressions) > 0)",
    "needs matchLabels or matchExpressions; an empty selector would adopt every Deployment",
    lambda s: bool(s.get("matchLabels")) or bool(s.get("matchExpressions")),
)
VALUES_MATCH_OPERATOR = Rule(
    "self.operator in ['Exists', 'DoesNotExist'] ? (!has(self.values) || size(self.values) == 0)"
    " : (has(self.values) && size(self.values) > 0)",
    "operators In and NotIn need values; Exists and DoesNotExist take none",
    lambda r: (
        not r.get("values")
        if r.get("operator") in ("Exists", "DoesNotExist")
        else bool(r.get("values"))
    ),
)

#: Every rule by its CEL text: what the simulated cluster looks its twins up by.
RULES: dict[str, Rule] = {
    r.cel: r
    for r in (
        WEIGHTS_INCREASE,
        LAST_STEP_ANALYSED,
        FLAG_ONLY_NEEDS_RAMP,
        GATEWAY_NEEDS_ROUTE,
        WINDOW_ORDERED,
        CHECK_NAMES_UNIQUE,
        SELECTOR_NOT_EMPTY,
        VALUES_MATCH_OPERATOR,
    )
}


def validations(*rules: Rule) -> dict[str, Any]:
    """``json_schema_extra`` carrying ``rules`` into the generated CRD."""
    return {"x-kubernetes-validations": [r.schema() for r in rules]}
