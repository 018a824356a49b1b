"""``as=Table`` responses: the columns ``kubectl get`` shows, computed server-side."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from controller.core.formatting import parse_api_time
from controller.sim.resources import PrinterColumn, ResourceType

JsonDict = dict[str, Any]
Cell = Any
RowFn = Callable[[JsonDict], list[Cell]]

_NAME = PrinterColumn("Name", "string", ".metadata.name", "Name must be unique within a namespace.")
_AGE = PrinterColumn("Age", "string", ".metadata.creationTimestamp", "CreationTimestamp")


def _age(obj: JsonDict) -> str:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    return human_age(stamp) if stamp else "<unknown>"


def human_age(stamp: str) -> str:
    then = parse_api_time(stamp)
    if then is None:
        return "<unknown>"
    seconds = max(0, int((datetime.now(UTC) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600 * 3:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _pod_row(obj: JsonDict) -> list[Cell]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    total = len(spec.get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    reason = status.get("reason") or status.get("phase", "Unknown")
    for c in statuses:
        waiting = (c.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    return [
        obj["metadata"]["name"], f"{ready}/{total}", reason, restarts, _age(obj),
        status.get("podIP") or "<none>", spec.get("nodeName") or "<none>",
    ]  # fmt: skip


def _deploy_row(obj: JsonDict) -> list[Cell]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        obj["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(obj),
    ]


def _rs_row(obj: JsonDict) -> list[Cell]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        obj["metadata"]["name"], spec.get("replicas", 0), status.get("replicas", 0),
        status.get("readyReplicas", 0), _age(obj),
    ]  # fmt: skip


def _svc_row(obj: JsonDict) -> list[Cell]:
    spec = obj.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    return [
        obj["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP", "<none>"),
        "<none>", ports or "<none>", _age(obj),
    ]  # fmt: skip


def _event_row(obj: JsonDict) -> list[Cell]:
    involved = obj.get("involvedObject") or {}
    last = obj.get("lastTimestamp") or obj.get("eventTime") or ""
    return [
        human_age(str(last)[:19] + "Z") if last else "<unknown>",
        obj.get("type", ""), obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        obj.get("message", ""),
    ]  # fmt: skip


_BUILTIN: dict[str, tuple[list[tuple[str, str, int]], RowFn]] = {
    "pods": (
        [("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0),
         ("Restarts", "string", 0), ("Age", "string", 0), ("IP", "string", 1),
         ("Node", "string", 1)],
        _pod_row,
    ),
    "deployments.apps": (
        [("Name", "string", 0), ("Ready", "string", 0), ("Up-to-date", "string", 0),
         ("Available", "string", 0), ("Age", "string", 0)],
        _deploy_row,
    ),
    "replicasets.apps": (
        [("Name", "string", 0), ("Desired", "integer", 0), ("Current", "integer", 0),
         ("Ready", "integer", 0), ("Age", "string", 0)],
        _rs_row,
    ),
    "services": (
        [("Name", "string", 0), ("Type", "string", 0), ("Cluster-IP", "string", 0),
         ("External-IP", "string", 0), ("Port(s)", "string", 0), ("Age", "string", 0)],
        _svc_row,
    ),
    "configmaps": (
        [("Name", "string", 0), ("Data", "integer", 0), ("Age", "string", 0)],
        lambda o: [
            o["metadata"]["name"],
            len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            _age(o),
        ],
    ),
    "namespaces": (
        [("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)],
        lambda o: [o["metadata"]["name"], (o.get("status") or {}).get("phase", ""), _age(o)],
    ),
    "events": (
        [("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0),
         ("Object", "string", 0), ("Message", "string", 0)],
        _event_row,
    ),
    "leases.coordination.k8s.io": (
        [("Name", "string", 0), ("Holder", "string", 0), ("Age", "string", 0)],
        lambda o: [o["metadata"]["name"], (o.get("spec") or {}).get("holderIdentity", ""), _age(o)],
    ),
}  # fmt: skip


_SEGMENT = re.compile(r"\.?([A-Za-z0-9_\-]+)|\[(-?\d*)(:?)(-?\d*)\]")


def json_path_value(obj: Any, path: str) -> Any:
    """Evaluate the simple JSONPath subset printer columns use (``.a.b``, ``[0]``, ``[-1:]``)."""
    node: Any = obj
    pos = 0
    text = path.strip().lstrip("{").rstrip("}").strip()
    while pos < len(text) and node is not None:
        match = _SEGMENT.match(text, pos)
        if match is None:
            return None
        pos = match.end()
        key, start, colon, end = match.groups()
        if key is not None:
            node = node.get(key) if isinstance(node, dict) else None
        elif isinstance(node, list):
            if colon:
                sliced = node[int(start) if start else None : int(end) if end else None]
                node = sliced[0] if len(sliced) == 1 else sliced
            else:
                idx = int(start)
                node = node[idx] if -len(node) <= idx < len(node) else None
        else:
            return None
    return node


def _cell(value: Any, column: PrinterColumn) -> Cell:
    if value is None:
        return None
    if column.type == "date" and isinstance(value, str):
        return human_age(value)
    if isinstance(value, list | dict):
        import json

        return json.dumps(value)
    return value


def columns(rtype: ResourceType) -> list[JsonDict]:
    if rtype.storage_key in _BUILTIN and not rtype.storage_alias:
        spec = _BUILTIN[rtype.storage_key][0]
        return [
            {
                "name": n,
                "type": t,
                "format": "name" if n == "Name" else "",
                "description": n,
                "priority": p,
            }
            for n, t, p in spec
        ]
    cols = [_NAME, *rtype.printer_columns] if rtype.printer_columns else [_NAME, _AGE]
    return [
        {
            "name": c.name,
            "type": "string" if c.type == "date" else c.type,
            "format": "name" if c is _NAME else c.format,
            "description": c.description or c.name,
            "priority": c.priority,
        }
        for c in cols
    ]


def row_cells(rtype: ResourceType, obj: JsonDict) -> list[Cell]:
    if rtype.storage_key in _BUILTIN and not rtype.storage_alias:
        return _BUILTIN[rtype.storage_key][1](obj)
    if not rtype.printer_columns:
        return [obj["metadata"]["name"], _age(obj)]
    return [obj["metadata"]["name"]] + [
        _cell(json_path_value(obj, c.json_path), c) for c in rtype.printer_columns
    ]


def partial_metadata(obj: JsonDict) -> JsonDict:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def table(
    rtype: ResourceType,
    objs: list[JsonDict],
    *,
    resource_version: str,
    include_object: str = "Metadata",
    continue_token: str | None = None,
    with_columns: bool = True,
) -> JsonDict:
    rows = []
    for obj in objs:
        row: JsonDict = {"cells": row_cells(rtype, obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    meta: JsonDict = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    out: JsonDict = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
    if with_columns:
        out["columnDefinitions"] = columns(rtype)
    out["rows"] = rows
    return out
