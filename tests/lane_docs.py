"""The smallest useful ChangeLane document, shared by the in-memory reconciler tests and the
simulated-cluster harness: two 1 s steps, a 1 s interval and one critical threshold check."""

from __future__ import annotations

from typing import Any


def lane_doc(
    name: str, namespace: str, generation: int | None = None, **strategy: Any
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if generation is not None:
        metadata["generation"] = generation
    return {
        "apiVersion": "changelane.dev/v1alpha1",
        "kind": "ChangeLane",
        "metadata": metadata,
        "spec": {
            "selector": {"namespaces": [namespace], "matchLabels": {"changelane.dev/lane": name}},
            "agents": [{"id": "claude-code"}],
            "provenance": {"required": ["agent", "model", "change"]},
            "strategy": {
                "steps": [
                    {"weight": 50, "minDuration": "1s"},
                    {"weight": 100, "minDuration": "1s"},
                ],
                "progressDeadline": "20s",
                **strategy,
            },
            "analysis": {
                "interval": "1s",
                "checks": [
                    {
                        "name": "errors",
                        "kind": "threshold",
                        "query": 'x{namespace="{{ namespace }}"}',
                        "threshold": 0.05,
                        "critical": True,
                    }
                ],
            },
        },
    }
