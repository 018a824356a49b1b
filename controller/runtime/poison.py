"""A release record the API refused, made recordable (so a poison template is Rejected
with its reason instead of failing its Deployment's reconcile forever)."""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client.exceptions import ApiException

from controller.core.text import printable

JsonDict = dict[str, Any]


def refused_reason(exc: ApiException) -> str:
    """The API server's message for a refused write, made safe to show."""
    message = str(exc.reason or "")
    try:
        body = json.loads(exc.body or "{}")
        message = str(body.get("message") or message)
    except (ValueError, TypeError, AttributeError):
        pass
    return printable(f"the API refused the release record (HTTP {exc.status}): {message}")[:1000]


def unrecordable_release(body: JsonDict, exc: ApiException) -> JsonDict:
    """``body`` without the values the API refused: no provenance, one problem saying why.
    The provenance gate rejects it with that reason."""
    spec = {k: v for k, v in body["spec"].items() if k in ("lane", "target", "from", "to")}
    spec["provenance"] = {}
    spec["provenanceProblems"] = [{"key": "release", "message": refused_reason(exc)}]
    return {**body, "spec": spec}
