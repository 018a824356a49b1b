"""A release record the API refused, made recordable (so a poison template is Rejected
with its reason instead of failing its Deployment's reconcile forever)."""

from __future__ import annotations

import json
from typing import Any

from controller.core.text import printable

JsonDict = dict[str, Any]


def refused_reason(exc: Exception) -> str:
    """The API server's message for a refused write (an ``ApiError``: ``.status``,
    ``.reason``, ``.body``), made safe to show."""
    message = str(getattr(exc, "reason", "") or "")
    try:
        body = json.loads(getattr(exc, "body", None) or "{}")
        message = str(body.get("message") or message)
    except (ValueError, TypeError, AttributeError):
        pass
    status = getattr(exc, "status", "?")
    return printable(f"the API refused the release record (HTTP {status}): {message}")[:1000]


def unrecordable_release(body: JsonDict, exc: Exception) -> JsonDict:
    """``body`` without the values the API refused: no provenance, one problem saying why.
    The provenance gate rejects it with that reason."""
    spec = {k: v for k, v in body["spec"].items() if k in ("lane", "target", "from", "to")}
    spec["provenance"] = {}
    spec["provenanceProblems"] = [{"key": "release", "message": refused_reason(exc)}]
    return {**body, "spec": spec}
