"""Stored objects and the apiserver's per-object rules: names, metadata, built-in defaults."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.sim.resources import ResourceType
from controller.sim.selectors import field_value, label_key_problem, label_value_problem

JsonDict = dict[str, Any]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

#: resources whose names must be DNS labels rather than subdomains
_LABEL_NAMED = frozenset({"namespaces", "services"})


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Stored:
    """An object as committed: its JSON and the few fields lookups need without parsing it."""

    namespace: str
    name: str
    uid: str
    rv: int
    raw: bytes
    labels: Mapping[str, str]
    owner_uids: tuple[str, ...]
    deleting: bool
    finalizers: tuple[str, ...]

    @classmethod
    def of(cls, obj: JsonDict) -> Stored:
        meta = obj["metadata"]
        return cls(
            namespace=meta.get("namespace", ""),
            name=meta["name"],
            uid=meta["uid"],
            rv=int(meta["resourceVersion"]),
            raw=dumps(obj),
            labels=dict(meta.get("labels") or {}),
            owner_uids=tuple(r["uid"] for r in meta.get("ownerReferences") or () if "uid" in r),
            deleting=bool(meta.get("deletionTimestamp")),
            finalizers=tuple(meta.get("finalizers") or ()),
        )

    def obj(self) -> JsonDict:
        """A fresh, mutable copy of the object."""
        value: JsonDict = json.loads(self.raw)
        return value

    def field(self, path: str) -> str:
        if path == "metadata.name":
            return self.name
        if path == "metadata.namespace":
            return self.namespace
        return field_value(self.obj(), path)


def name_problem(rtype: ResourceType, name: str) -> str | None:
    """Why ``name`` is not a valid object name for this resource, or None."""
    if rtype.custom:
        if name in {".", ".."} or "/" in name or "%" in name:
            return 'may not contain "/" or "%" and may not be "." or ".."'
        return None
    if rtype.plural in _LABEL_NAMED:
        if len(name) > 63 or not _DNS_LABEL.match(name):
            return (
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',"
                "  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            )
        return None
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            "'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return None


def metadata_problems(rtype: ResourceType, meta: JsonDict) -> list[tuple[str, str]]:
    """(field, message) for invalid names, labels and annotations."""
    out: list[tuple[str, str]] = []
    name = meta.get("name", "")
    problem = name_problem(rtype, name)
    if problem:
        out.append(("metadata.name", f'Invalid value: "{name}": {problem}'))
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        out.append(("metadata.labels", "Invalid value: must be a map of string to string"))
        labels = {}
    for key, value in labels.items():
        problem = label_key_problem(key)
        if problem:
            out.append(("metadata.labels", f'Invalid value: "{key}": {problem}'))
        if not isinstance(value, str):
            out.append((f"metadata.labels[{key}]", "Invalid value: must be a string"))
            continue
        problem = label_value_problem(value)
        if problem:
            out.append(("metadata.labels", f'Invalid value: "{value}": {problem}'))
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        out.append(("metadata.annotations", "Invalid value: must be a map of string to string"))
        annotations = {}
    for key, value in annotations.items():
        problem = label_key_problem(key)
        if problem:
            out.append(("metadata.annotations", f'Invalid value: "{key}": {problem}'))
        if not isinstance(value, str):
            out.append((f"metadata.annotations[{key}]", "Invalid value: must be a string"))
    return out


# --- built-in defaulting, as the apiserver's defaulters do for the fields we model ---------


def _default_container(container: JsonDict) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    if "imagePullPolicy" not in container:
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1]
        latest = ":" not in tag or tag.endswith(":latest")
        container["imagePullPolicy"] = "Always" if latest and "@" not in image else "IfNotPresent"
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def default_pod_spec(spec: JsonDict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _default_container(container)


def _default_workload(obj: JsonDict, *, deployment: bool) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    if deployment:
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                if isinstance(rolling, dict):
                    rolling.setdefault("maxUnavailable", "25%")
                    rolling.setdefault("maxSurge", "25%")
    template = spec.get("template")
    if isinstance(template, dict):
        template.setdefault("metadata", {})
        if isinstance(template.get("metadata"), dict):
            template["metadata"].setdefault("creationTimestamp", None)
        if isinstance(template.get("spec"), dict):
            default_pod_spec(template["spec"])


def _default_service(obj: JsonDict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])


def apply_builtin_defaults(rtype: ResourceType, obj: JsonDict) -> None:
    key = rtype.storage_key
    if key == "deployments.apps":
        _default_workload(obj, deployment=True)
    elif key == "replicasets.apps":
        _default_workload(obj, deployment=False)
    elif key == "pods":
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            default_pod_spec(spec)
    elif key == "services":
        _default_service(obj)
    elif key == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


Problems = list[tuple[str, str]]


def builtin_problems(rtype: ResourceType, obj: JsonDict, old: JsonDict | None) -> Problems:
    """The validation rules of built-in kinds the controller could trip over."""
    check = _BUILTIN_RULES.get(rtype.storage_key)
    return check(obj, old) if check is not None else []


def _workload_problems(obj: JsonDict, old: JsonDict | None) -> Problems:
    """Deployments and ReplicaSets: a selector that matches the template, immutable."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    template = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    out = _selector_problems(spec.get("selector"), template or {}, old)
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        out.append(
            ("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")
        )
    pod_spec = (template or {}).get("spec")
    if not isinstance(pod_spec, dict) or not pod_spec.get("containers"):
        out.append(("spec.template.spec.containers", "Required value"))
    return out


def _selector_problems(selector: Any, template: JsonDict, old: JsonDict | None) -> Problems:
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not isinstance(selector, dict) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        return [("spec.selector", "Required value")]
    from controller.sim.selectors import selector_from_spec

    out: Problems = []
    try:
        matches = selector_from_spec(selector).matches(labels)
    except (KeyError, TypeError):
        matches = False
        out.append(("spec.selector", "Invalid value: malformed label selector"))
    if not matches:
        out.append(
            (
                "spec.template.metadata.labels",
                f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
            )
        )
    if old is not None and (old.get("spec") or {}).get("selector") != selector:
        out.append(("spec.selector", f"Invalid value: {json.dumps(selector)}: field is immutable"))
    return out


def _pod_problems(obj: JsonDict, old: JsonDict | None) -> Problems:
    spec = obj.get("spec")
    if not isinstance(spec, dict) or not spec.get("containers"):
        return [("spec.containers", "Required value")]
    return []


def _configmap_problems(obj: JsonDict, old: JsonDict | None) -> Problems:
    out: Problems = []
    for name in ("data", "binaryData"):
        value = obj.get(name)
        if value is not None and not (
            isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        ):
            out.append((name, "Invalid value: must be a map of string to string"))
    return out


def _service_problems(obj: JsonDict, old: JsonDict | None) -> Problems:
    if old is None:
        return []
    old_ip = (old.get("spec") or {}).get("clusterIP")
    new_ip = (obj.get("spec") or {}).get("clusterIP")
    if old_ip and new_ip and new_ip != old_ip:
        return [("spec.clusterIP", f'Invalid value: "{new_ip}": field is immutable')]
    return []


_BUILTIN_RULES: dict[str, Callable[[JsonDict, JsonDict | None], Problems]] = {
    "deployments.apps": _workload_problems,
    "replicasets.apps": _workload_problems,
    "pods": _pod_problems,
    "configmaps": _configmap_problems,
    "services": _service_problems,
}


def generation_relevant(rtype: ResourceType, obj: Mapping[str, Any]) -> JsonDict:
    """The part of an object whose change bumps metadata.generation."""
    skip = {"metadata", "status"} if rtype.status_subresource else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip and k not in {"apiVersion", "kind"}}
