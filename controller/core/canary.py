"""Canary mechanics, Flagger-style, as pure functions over Deployment manifests (dicts).

When a lane adopts Deployment ``web``, a stable copy ``web-primary`` takes the traffic and
``web`` itself becomes the canary, scaled to zero between releases. A new pod template on
``web`` is a release; its canary replicas grow with the step weight beside the untouched
primary, both behind the Service's selector (replica-weighted traffic). Promotion copies
the template into the primary.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any

from controller.core import labels
from controller.core.models import ChangeLane
from controller.core.selectors import requirement_matches

JsonDict = dict[str, Any]

PRIMARY_SUFFIX = "-primary"
TRACK_LABEL = labels.TRACK
LANE_ANNOTATION = labels.LANE
TEMPLATE_HASH_ANNOTATION = labels.TEMPLATE_HASH
TOTAL_REPLICAS_ANNOTATION = labels.TOTAL_REPLICAS
MANAGED_BY_LABEL = labels.MANAGED_BY
#: The pod label that says which copy a pod belongs to, with the values ``{{ track }}``
#: renders in PromQL templates (docs/traffic-shares.md).
METRICS_TRACK_LABEL = "track"
CANARY_TRACK, BASELINE_TRACK = "canary", "baseline"

#: Annotations on the pod template that say who made the change, not what runs; they are
#: excluded from the template hash so re-annotating does not look like a new release.
_NON_SPEC_PREFIXES = (labels.PREFIX, "kubectl.kubernetes.io/")


def primary_name(name: str) -> str:
    return f"{name}{PRIMARY_SUFFIX}"


def is_primary(deployment: JsonDict) -> bool:
    labels = deployment.get("metadata", {}).get("labels") or {}
    return bool(labels.get(TRACK_LABEL) == "primary")


def template_hash(template: JsonDict) -> str:
    """A stable hash of what would run: the pod template minus provenance annotations."""
    t = copy.deepcopy(template)
    annotations = t.get("metadata", {}).get("annotations") or {}
    kept = {k: v for k, v in annotations.items() if not k.startswith(_NON_SPEC_PREFIXES)}
    if t.get("metadata") is not None:
        t["metadata"]["annotations"] = kept
        labels = t["metadata"].get("labels") or {}
        if labels.get(METRICS_TRACK_LABEL) in (CANARY_TRACK, BASELINE_TRACK):
            # Ours (set on each copy's pods), not part of what the release runs.
            t["metadata"]["labels"] = {k: v for k, v in labels.items() if k != METRICS_TRACK_LABEL}
    canonical = json.dumps(t, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def images(template: JsonDict) -> list[str]:
    return [str(c.get("image", "")) for c in template.get("spec", {}).get("containers", [])]


def canary_replicas(total: int, weight: int) -> int:
    """Canary replicas for a weight: ``weight`` percent of the primary's, at least one."""
    if weight <= 0 or total <= 0:
        return 0
    return max(1, math.ceil(total * weight / 100))


def build_primary(original: JsonDict, total_replicas: int, lane: str) -> JsonDict:
    """The stable copy of an adopted Deployment: same template, its own selector."""
    meta = original["metadata"]
    spec = copy.deepcopy(original["spec"])
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[TRACK_LABEL] = "primary"
    spec["selector"] = selector
    template = spec["template"]
    template_labels = template.setdefault("metadata", {}).setdefault("labels", {})
    template_labels[TRACK_LABEL] = "primary"
    template_labels[METRICS_TRACK_LABEL] = BASELINE_TRACK
    spec["replicas"] = total_replicas
    labels = dict(meta.get("labels") or {})
    labels[TRACK_LABEL] = "primary"
    labels[MANAGED_BY_LABEL] = "changelane"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": primary_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": {
                LANE_ANNOTATION: lane,
                TEMPLATE_HASH_ANNOTATION: template_hash(original["spec"]["template"]),
                TOTAL_REPLICAS_ANNOTATION: str(total_replicas),
            },
        },
        "spec": spec,
    }


def promoted_template(primary: JsonDict, canary_template: JsonDict) -> JsonDict:
    """The canary's pod template, relabelled for the primary."""
    template = copy.deepcopy(canary_template)
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    labels[TRACK_LABEL] = "primary"
    labels[METRICS_TRACK_LABEL] = BASELINE_TRACK
    return template


# --------------------------------------------------------------------------- lane selection


def lane_selects(lane: ChangeLane, namespace: str, labels: dict[str, str]) -> bool:
    sel = lane.spec.selector
    if namespace not in sel.namespaces:
        return False
    if any(labels.get(k) != v for k, v in sel.match_labels.items()):
        return False
    return all(
        requirement_matches(r.key, r.operator, r.values, labels) for r in sel.match_expressions
    )


def lanes_for(lanes: list[ChangeLane], namespace: str, labels: dict[str, str]) -> list[ChangeLane]:
    """Every lane that selects a workload; more than one is a conflict the caller reports."""
    return sorted(
        (lane for lane in lanes if lane_selects(lane, namespace, labels)), key=lambda ln: ln.name
    )
