"""Objects and waits shared by the conformance tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

JsonDict = dict[str, Any]


def deployment(
    name: str, *, replicas: int = 2, image: str = "nginx:1.25", **annotations: str
) -> JsonDict:
    template_meta: JsonDict = {"labels": {"app": name}}
    if annotations:
        template_meta["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": template_meta,
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "ports": [{"containerPort": 80}],
                            "env": [{"name": "MODE", "value": "a"}],
                        }
                    ]
                },
            },
        },
    }


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> JsonDict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": data,
    }


def lane_release(name: str, namespace: str, **spec_extra: Any) -> JsonDict:
    return {
        "apiVersion": "changelane.dev/v1alpha1",
        "kind": "LaneRelease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "lane": "docs-site",
            "target": {"name": "web", "namespace": namespace},
            "from": {"podTemplateHash": "aaaa"},
            "to": {"podTemplateHash": "bbbb"},
            "provenance": {"agent": "claude-code", "model": "claude-x", "change": "pr-1"},
            **spec_extra,
        },
    }


def raw_request(
    api: ApiClient, method: str, path: str, body: bytes, content_type: str
) -> tuple[int, JsonDict]:
    """Send bytes as they are (the typed client would re-encode a broken body)."""
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    auth = api.configuration.auth_settings().get("BearerToken")
    if auth and auth.get("value"):
        headers[auth["key"]] = auth["value"]
    resp = api.rest_client.pool_manager.request(
        method, api.configuration.host + path, body=body, headers=headers
    )
    return resp.status, json.loads(resp.data)


def status_body(exc: ApiException) -> JsonDict:
    body: JsonDict = json.loads(exc.body)
    return body


def wait_until(
    predicate: Callable[[], bool], timeout: float = 15.0, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    assert predicate(), "condition not reached in time"
