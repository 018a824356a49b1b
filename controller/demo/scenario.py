"""What the demo applies: a lane, a workload, and the agent-authored releases it ships."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "demo"
LANE = "docs-demo"
WORKLOAD = "docs"


def lane(gates: dict[str, Any] | None = None, **strategy: Any) -> dict[str, Any]:
    """A docs lane with short steps, so the demo finishes in about a minute.
    ``gates`` and ``strategy`` add to (or replace) the lane's gates and strategy fields."""
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
            "gates": {"maxConcurrentReleases": 1, **(gates or {})},
            "strategy": {
                "steps": [
                    {"weight": 20, "minDuration": "6s"},
                    {"weight": 50, "minDuration": "6s"},
                    {"weight": 100, "minDuration": "6s"},
                ],
                "progressDeadline": "60s",
                **strategy,
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


def agent_annotations(
    change: str, image: str, tests: str = "passed; cmd=pytest -q", agent: str = "claude-code"
) -> dict[str, str]:
    """What the agent's pipeline writes on the pod template: who, which change, the tests
    evidence and the images this release ships (docs/release-provenance.md)."""
    return {
        "changelane.dev/agent": agent,
        "changelane.dev/model": "claude-opus-4",
        "changelane.dev/change": change,
        "changelane.dev/tests": tests,
        "changelane.dev/images": image,
    }


DEFAULT_RELEASES = (
    DemoRelease(
        "good: fix typos in the install guide",
        "registry.example/docs:1.1",
        "promote",
        agent_annotations("https://git.example/docs/pull/101", "registry.example/docs:1.1"),
    ),
    DemoRelease(
        "bad: new search page that fails a quarter of its requests",
        "registry.example/docs:1.2-bad",
        "rollback",
        agent_annotations("https://git.example/docs/pull/102", "registry.example/docs:1.2-bad"),
    ),
)


# --------------------------------------------------------------------------- scenarios

FLAG_KEY = "docs.new-search"
FLAG_CONFIGMAP = "docs-flags"


def flag_definitions() -> dict[str, Any]:
    """The docs site's feature flags, as flagd definitions in a ConfigMap."""
    return {
        "flags": {
            FLAG_KEY: {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
            }
        }
    }


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    releases: tuple[DemoRelease, ...]
    lane: dict[str, Any] = field(default_factory=lane)
    #: The lane's kill-switch flag in the demo's flagd file.
    autonomy_on: bool = True
    #: flagd definitions for a ConfigMap the lane ramps flags in (flag-ramp).
    flags: dict[str, Any] | None = None

    def lane_doc(self) -> dict[str, Any]:
        return copy.deepcopy(self.lane)


def _scenarios() -> dict[str, Scenario]:
    good = DEFAULT_RELEASES[0]
    bad = DEFAULT_RELEASES[1]
    return {
        "default": Scenario(
            "default", "one good release promoted, one bad release rolled back", DEFAULT_RELEASES
        ),
        "missing-provenance": Scenario(
            "missing-provenance",
            "a release without model, change reference or tests evidence is rejected",
            (
                DemoRelease(
                    "unattributed: no model, no change reference, no tests evidence",
                    "registry.example/docs:1.3",
                    "reject",
                    {"changelane.dev/agent": "claude-code"},
                ),
            ),
        ),
        "autonomy-off": Scenario(
            "autonomy-off",
            "the lane's kill-switch flag is off: the release is held, nothing moves",
            (DemoRelease(good.label, good.image, "gate", good.annotations),),
            autonomy_on=False,
        ),
        "flag-ramp": Scenario(
            "flag-ramp",
            "a release that names a feature flag: the flag ramps in step with the canary",
            (
                DemoRelease(
                    "flagged: new search behind docs.new-search",
                    "registry.example/docs:1.4",
                    "promote",
                    {
                        **agent_annotations(
                            "https://git.example/docs/pull/104", "registry.example/docs:1.4"
                        ),
                        "changelane.dev/flag": FLAG_KEY,
                    },
                ),
            ),
            lane=lane(flagRamp={"target": "configMap", "name": FLAG_CONFIGMAP}),
            flags=flag_definitions(),
        ),
        "lane-suspend": Scenario(
            "lane-suspend",
            "two failed releases in a row spend the lane's autonomy budget: the next is held",
            (
                bad,
                DemoRelease(
                    "bad again: a search page that fails its requests",
                    "registry.example/docs:1.5-bad",
                    "rollback",
                    agent_annotations(
                        "https://git.example/docs/pull/105", "registry.example/docs:1.5-bad"
                    ),
                ),
                DemoRelease(
                    "good, but the lane is suspended: held until a human resumes it",
                    "registry.example/docs:1.6",
                    "gate",
                    agent_annotations(
                        "https://git.example/docs/pull/106", "registry.example/docs:1.6"
                    ),
                ),
            ),
            lane=lane(
                gates={"autonomyBudget": {"maxChangeFailureRate": 0.34, "window": 3}},
            ),
        ),
        "earned-autonomy": Scenario(
            "earned-autonomy",
            "two agents in one lane: the one whose releases roll back is demoted to "
            "supervised alone; the other keeps promoting on its own",
            (
                DemoRelease(
                    bad.label + " (by flaky-bot)",
                    bad.image,
                    "rollback",
                    agent_annotations(
                        "https://git.example/docs/pull/107",
                        "registry.example/docs:1.2-bad",
                        agent="flaky-bot",
                    ),
                ),
                DemoRelease(
                    "bad again (by flaky-bot)",
                    "registry.example/docs:1.7-bad",
                    "rollback",
                    agent_annotations(
                        "https://git.example/docs/pull/108",
                        "registry.example/docs:1.7-bad",
                        agent="flaky-bot",
                    ),
                ),
                DemoRelease(
                    "good (by claude-code): still autonomous, promoted on its own",
                    "registry.example/docs:1.8",
                    "promote",
                    agent_annotations(
                        "https://git.example/docs/pull/109", "registry.example/docs:1.8"
                    ),
                ),
                DemoRelease(
                    "good (by flaky-bot), now supervised: ramps, then waits for a "
                    "human `changelane promote`",
                    "registry.example/docs:1.9",
                    "await-promotion",
                    agent_annotations(
                        "https://git.example/docs/pull/110",
                        "registry.example/docs:1.9",
                        agent="flaky-bot",
                    ),
                ),
            ),
            lane=_earned_autonomy_lane(),
        ),
    }


def _earned_autonomy_lane() -> dict[str, Any]:
    doc = lane(
        gates={
            "agentAutonomy": {
                "entryLevel": "autonomous",
                "graduate": {"minReleases": 5, "maxChangeFailureUpper": 0.2},
                "demote": {"rollbacks": 2, "ofLast": 3},
            }
        }
    )
    doc["spec"]["agents"].append({"id": "flaky-bot", "models": ["claude-*"]})
    return doc


SCENARIOS = _scenarios()
