"""Label-selector matching, as Kubernetes defines it; the one implementation, used by lane
selection and by the simulated API server (which also parses selector strings)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: ``matchExpressions`` operators, as the selector-string operators they mean.
API_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def requirement_matches(
    key: str, operator: str, values: Iterable[str], labels: Mapping[str, str]
) -> bool:
    """One requirement: ``operator`` is ``=``, ``!=``, ``in``, ``notin``, ``exists`` or ``!``
    (does not exist); a ``matchExpressions`` operator (``In``, ...) is accepted too."""
    op = API_OPERATORS.get(operator, operator)
    present = key in labels
    value = labels.get(key)
    if op == "exists":
        return present
    if op == "!":
        return not present
    wanted = tuple(values)
    if op in ("=", "in"):
        return present and value in wanted
    if op in ("!=", "notin"):
        return not present or value not in wanted
    raise ValueError(f"unknown label selector operator {operator!r}")
