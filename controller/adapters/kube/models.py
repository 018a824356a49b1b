"""The official client's model classes as a source of schemas: they carry the Kubernetes
API's own field descriptions (pydantic models: ``model_json_schema``). The simulated API
server serves them to ``kubectl explain``; this is the one place that reaches into the
client for them."""

from __future__ import annotations

from typing import Any

from kubernetes.client import models


def client_model(group: str, version: str, kind: str) -> Any:
    """The client's model class for a built-in kind, or None when it has none."""
    version = version[:1].upper() + version[1:]
    if group == "events.k8s.io":
        names = [f"Events{version}{kind}"]
    elif group == "" and kind == "Event":
        names = [f"Core{version}{kind}"]
    else:
        names = [f"{version}{kind}"]
    return next((getattr(models, n) for n in names if hasattr(models, n)), None)


def object_meta_model() -> Any:
    return models.V1ObjectMeta
