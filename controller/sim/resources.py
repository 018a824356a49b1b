"""The resource types the simulated cluster serves: built-ins plus CRD-backed kinds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controller.sim.schemas import CrdSchema

JsonDict = dict[str, Any]

_META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
_CLUSTER_META_FIELDS = frozenset({"metadata.name"})

_EVENT_FIELDS = frozenset(
    {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)
_POD_FIELDS = frozenset(
    {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    }
)


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass(frozen=True)
class ResourceType:
    """One REST resource (``deployments.apps/v1``) and the semantics its storage follows."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    scale_subresource: bool = False
    #: metadata.generation is kept and bumped on every change outside metadata/status
    tracks_generation: bool = False
    #: custom resources: no strategic merge patch, unconditional update refused
    custom: bool = False
    extra_field_selectors: frozenset[str] = frozenset()
    schema: CrdSchema | None = None
    printer_columns: tuple[PrinterColumn, ...] = ()
    #: a view of another resource's storage (events.k8s.io events are core events)
    storage_alias: str | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """Storage key: ``deployments.apps``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def storage_key(self) -> str:
        return self.storage_alias or self.key

    @property
    def field_selectors(self) -> frozenset[str]:
        base = _META_FIELDS if self.namespaced else _CLUSTER_META_FIELDS
        return base | self.extra_field_selectors

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def verbs(self) -> list[str]:
        return ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _col(name: str, type_: str, path: str, priority: int = 0, fmt: str = "") -> PrinterColumn:
    return PrinterColumn(name=name, type=type_, json_path=path, priority=priority, format=fmt)


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        "", "v1", "namespaces", "namespace", "Namespace", namespaced=False,
        short_names=("ns",), status_subresource=True,
    ),
    ResourceType(
        "", "v1", "pods", "pod", "Pod", short_names=("po",), categories=("all",),
        status_subresource=True, extra_field_selectors=_POD_FIELDS,
    ),
    ResourceType(
        "", "v1", "services", "service", "Service", short_names=("svc",),
        categories=("all",), status_subresource=True,
    ),
    ResourceType(
        "", "v1", "events", "event", "Event", short_names=("ev",),
        extra_field_selectors=_EVENT_FIELDS,
    ),
    ResourceType("", "v1", "configmaps", "configmap", "ConfigMap", short_names=("cm",)),
    ResourceType(
        "apps", "v1", "deployments", "deployment", "Deployment", short_names=("deploy",),
        categories=("all",), status_subresource=True, scale_subresource=True,
        tracks_generation=True,
    ),
    ResourceType(
        "apps", "v1", "replicasets", "replicaset", "ReplicaSet", short_names=("rs",),
        categories=("all",), status_subresource=True, scale_subresource=True,
        tracks_generation=True,
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "lease", "Lease"),
    ResourceType(
        "events.k8s.io", "v1", "events", "event", "Event", short_names=("ev",),
        storage_alias="events",
        extra_field_selectors=frozenset(
            {f"regarding.{f.split('.', 1)[1]}" for f in _EVENT_FIELDS if "." in f}
            | {"reason", "reportingController", "type"}
        ),
    ),
    ResourceType(
        "gateway.networking.k8s.io", "v1", "httproutes", "httproute", "HTTPRoute",
        categories=("gateway-api",), status_subresource=True, tracks_generation=True,
        custom=True,
        printer_columns=(
            _col("Hostnames", "string", ".spec.hostnames"),
            _col("Age", "date", ".metadata.creationTimestamp"),
        ),
    ),
    ResourceType(
        "core.openfeature.dev", "v1beta1", "featureflags", "featureflag", "FeatureFlag",
        status_subresource=True, tracks_generation=True, custom=True,
        printer_columns=(_col("Age", "date", ".metadata.creationTimestamp"),),
    ),
)  # fmt: skip


@dataclass
class Registry:
    """Lookup of resource types by group/version/plural and by the names kubectl accepts."""

    types: list[ResourceType] = field(default_factory=list)

    def add(self, rtype: ResourceType) -> None:
        self.types = [
            t
            for t in self.types
            if not (
                t.group == rtype.group and t.version == rtype.version and t.plural == rtype.plural
            )
        ]
        self.types.append(rtype)

    def extend(self, rtypes: Iterable[ResourceType]) -> None:
        for rtype in rtypes:
            self.add(rtype)

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        for t in self.types:
            if t.group == group and t.version == version and t.plural == plural:
                return t
        return None

    def resolve(self, name: str) -> ResourceType:
        """``deployments``, ``deployments.apps``, ``deploy``, ``Deployment`` -> the type."""
        lowered = name.lower()
        plural, _, group = lowered.partition(".")
        for t in self.types:
            if group and t.group != group:
                continue
            if t.storage_alias and not group:
                continue
            names = {t.plural, t.singular, t.kind.lower(), *t.short_names}
            if plural in names:
                return t
        raise KeyError(f"unknown resource {name!r}")

    def by_storage_key(self, key: str) -> ResourceType:
        for t in self.types:
            if t.key == key:
                return t
        raise KeyError(key)

    def groups(self) -> dict[str, list[str]]:
        """Group name -> served versions (core group is ``""``)."""
        out: dict[str, list[str]] = {}
        for t in self.types:
            versions = out.setdefault(t.group, [])
            if t.version not in versions:
                versions.append(t.version)
        return out


def default_registry() -> Registry:
    return Registry(list(BUILTIN_TYPES))
