"""Reading the plain-dict objects the informers cache: what a reconcile needs to know about
a Deployment, a lane or a release, without deciding anything."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from controller.core import canary as mech
from controller.core.gates.policy import shadow_mode
from controller.core.models import ChangeLane, ChangeLaneStatus, LaneRelease
from controller.core.packed_status import unpacked
from controller.core.replica_plan import rollout_complete
from controller.runtime.ports import JsonDict

Key = tuple[str, str, str]  # (kind, namespace, name)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Caches:
    """Read access to the informers' caches (dicts keyed ``ns/name`` or ``name``)."""

    lanes: Callable[[], list[JsonDict]]
    deployment: Callable[[str, str], JsonDict | None]
    releases: Callable[[], list[JsonDict]]
    deployments: Callable[[], list[JsonDict]] = list
    #: Indexed, parsed-once views (controller.runtime.indexes); without them, scans.
    indexed_lane_releases: Callable[[str], list[LaneRelease]] | None = None
    indexed_workload_releases: Callable[[str, str], list[LaneRelease]] | None = None
    parse: Callable[[JsonDict], LaneRelease | None] | None = None
    #: A lane's releases as its gates read them (``ReleaseIndex.for_gates``).
    indexed_gate_releases: Callable[[str], list[LaneRelease]] | None = None
    #: One cached LaneRelease by namespace and name; without it, reconciles GET it.
    release: Callable[[str, str], JsonDict | None] | None = None

    def lane(self, name: str) -> JsonDict | None:
        return next((r for r in self.lanes() if meta(r).get("name") == name), None)

    def releases_of(self, namespace: str, workload: str) -> list[LaneRelease]:
        """The readable releases of one workload (an unreadable one is handled by its own
        reconcile)."""
        if self.indexed_workload_releases is not None:
            return self.indexed_workload_releases(namespace, workload)
        out = []
        for raw in self.releases():
            if meta(raw).get("namespace") != namespace:
                continue
            if (spec(raw).get("target") or {}).get("name") != workload:
                continue
            rel = parse_release(raw)
            if rel is not None:
                out.append(rel)
        return out

    def lane_releases(self, lane: str) -> list[LaneRelease]:
        if self.indexed_lane_releases is not None:
            return self.indexed_lane_releases(lane)
        return releases_in_lane(self.releases(), lane)

    def gate_releases(self, lane: str) -> list[LaneRelease]:
        """The lane's releases with current names, specs, phases and start and finish
        times (what the gates read); other status fields may be older."""
        if self.indexed_gate_releases is not None:
            return self.indexed_gate_releases(lane)
        return self.lane_releases(lane)

    def parse_release(self, raw: JsonDict) -> LaneRelease | None:
        """``raw`` parsed (once per resourceVersion when the index is wired in)."""
        return (self.parse or parse_release)(raw)


def meta(obj: JsonDict) -> JsonDict:
    found: JsonDict = obj.get("metadata") or {}
    return found


def spec(obj: JsonDict) -> JsonDict:
    found: JsonDict = obj.get("spec") or {}
    return found


def parse_lane(raw: JsonDict) -> ChangeLane:
    """The lane with its status (suspension, resumedAt). A status that does not parse does
    not hide a valid lane; it is dropped, keeping only a suspension (fail safe)."""
    try:
        return ChangeLane.model_validate(raw)
    except ValidationError:
        lane = ChangeLane.model_validate({k: v for k, v in raw.items() if k != "status"})
        if (raw.get("status") or {}).get("suspended") is True:
            lane.status = ChangeLaneStatus(
                suspended=True, suspended_reason="suspended (the lane status does not parse)"
            )
        return lane


def releases_in_lane(raws: list[JsonDict], lane: str) -> list[LaneRelease]:
    """The readable releases of one lane."""
    out = []
    for raw in raws:
        if spec(raw).get("lane") == lane:
            rel = parse_release(raw)
            if rel is not None:
                out.append(rel)
    return out


def parse_release(raw: JsonDict) -> LaneRelease | None:
    try:
        return LaneRelease.model_validate(unpacked(raw))  # a cached copy's history is packed
    except ValidationError:
        return None


def native(lane: ChangeLane) -> bool:
    """Lanes whose workloads the controller does not adopt (no primary/canary split)."""
    return shadow_mode(lane) or lane.spec.strategy.flag_only


def current_hash(dep: JsonDict) -> str:
    """The hash of the pod template the Deployment asks for now."""
    return mech.template_hash(spec(dep)["template"])


def template_hash_of(dep: JsonDict) -> str | None:
    """The template hash a primary was last given (its annotation)."""
    value = (meta(dep).get("annotations") or {}).get(mech.TEMPLATE_HASH_ANNOTATION)
    return str(value) if value is not None else None


def total_replicas(primary: JsonDict) -> int:
    annotated = (meta(primary).get("annotations") or {}).get(mech.TOTAL_REPLICAS_ANNOTATION)
    try:
        return max(1, int(annotated)) if annotated else int(spec(primary).get("replicas") or 1)
    except ValueError:
        return int(spec(primary).get("replicas") or 1)


def replicas(dep: JsonDict) -> int:
    return int(spec(dep).get("replicas") or 0)


def rolled_out(dep: JsonDict) -> bool:
    """Rolled out as ``kubectl rollout status`` judges it (core.replica_plan)."""
    return rollout_complete(dep)


def selector_of(dep: JsonDict) -> str:
    """The Deployment's ``matchLabels`` as a label-selector string."""
    labels = (spec(dep).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in labels.items())
