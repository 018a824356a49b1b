"""What the demo applies: a lane, a workload, and the agent-authored releases it ships."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAMESPACE = "demo"
LANE = "docs-demo"
WORKLOAD = "docs"


def lane() -> dict[str, Any]:
    """A docs lane with short steps, so the demo finishes in about a minute."""
    traffic = 'namespace="{{ namespace }}", app="{{ workload }}", track="{{ track }}"'
    return {
        "apiVersion": "changelane.dev/v1alpha1",
        "kind": "ChangeLane",
        "metadata": {"name": LANE},
        "spec": {
            "description": "Demo: the docs site, shipped by agents, guarded by its error rate.",
            "selector": {"namespaces": [NAMESPACE], "matchLabels": {"changelane.dev/lane": LANE}},
            "agents": [{"id": "claude-code", "models": ["claude-*"]}],
            "provenance": {"required": ["agent", "model", "change", "tests"]},
            "gates": {"maxConcurrentReleases": 1},
            "strategy": {
                "steps": [
                    {"weight": 20, "minDuration": "6s"},
                    {"weight": 50, "minDuration": "6s"},
                    {"weight": 100, "minDuration": "6s"},
                ],
                "progressDeadline": "60s",
            },
            "analysis": {
                "interval": "3s",
                "checks": [
                    {
                        "name": "error-rate",
                        "kind": "sequential",
                        "errorsQuery": "sum(increase(http_requests_total{"
                        + traffic
                        + ', code=~"5.."}[{{ window }}]))',
                        "totalQuery": "sum(increase(http_requests_total{"
                        + traffic
                        + "}[{{ window }}]))",
                        "threshold": 0.05,
                        "minSamples": 60,
                        "critical": True,
                    },
                ],
            },
        },
    }


def deployment(image: str = "registry.example/docs:1.0") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": WORKLOAD,
            "namespace": NAMESPACE,
            "labels": {"changelane.dev/lane": LANE, "app": WORKLOAD},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": WORKLOAD}},
            "template": {
                "metadata": {"labels": {"app": WORKLOAD}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


@dataclass(frozen=True)
class DemoRelease:
    label: str
    image: str
    expected: str  # "promote" | "rollback" | ...
    annotations: dict[str, str]


def agent_annotations(change: str, tests: str = "passed; cmd=pytest -q") -> dict[str, str]:
    return {
        "changelane.dev/agent": "claude-code",
        "changelane.dev/model": "claude-opus-4",
        "changelane.dev/change": change,
        "changelane.dev/tests": tests,
    }


DEFAULT_RELEASES = (
    DemoRelease(
        "good: fix typos in the install guide",
        "registry.example/docs:1.1",
        "promote",
        agent_annotations("https://git.example/docs/pull/101"),
    ),
    DemoRelease(
        "bad: new search page that fails a quarter of its requests",
        "registry.example/docs:1.2-bad",
        "rollback",
        agent_annotations("https://git.example/docs/pull/102"),
    ),
)
