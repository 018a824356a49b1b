"""A PromQL template split by pod: the pod label added to every aggregation's ``by`` (pure).

``sum(increase(x{app="{{ workload }}"}[{{ window }}]))`` becomes ``sum by (pod)
(increase(...))``: the same question answered once per pod. It is the grouped per-lane
rewrite of :mod:`controller.core.promql_grouped` with the pod label as the grouping, and
refuses the same shapes. The label is an identifier the lane schema validates, never a
value from a release; values still go through :func:`controller.core.promql.render`.
"""

from __future__ import annotations

from controller.core.promql import SAMPLE_PARAMETERS, promql_syntax_error, render
from controller.core.promql_grouped import (
    _POSTFIX_MODIFIER,
    _REFUSED_CALLS,
    _group_aggregations,
    _outside_strings,
)


def pod_split_template(template: str, pod_label: str) -> str:
    """``template`` with ``pod_label`` in every aggregation's ``by``; raises ValueError
    with the reason when its shape does not allow that."""
    masked = _outside_strings(template)
    if _REFUSED_CALLS.search(masked):
        raise ValueError("it ranks or collapses series (topk, quantile, scalar, ...)")
    if _POSTFIX_MODIFIER.search(masked):
        raise ValueError("an aggregation's by/without follows its parenthesis")
    out, aggregations = _group_aggregations(template, pod_label)
    if isinstance(aggregations, str):
        raise ValueError(aggregations)
    if aggregations == 0:
        raise ValueError("it has no aggregation to split by pod (e.g. sum(...))")
    error = promql_syntax_error(render(out, dict(SAMPLE_PARAMETERS)))
    if error is not None:
        raise ValueError(f"its per-pod form does not parse ({error})")
    return out
