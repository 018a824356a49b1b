"""Pod lifecycle in place of a kubelet: scheduled at once, Ready after a delay, or crash-looping.

Annotations on the pod (copied from the pod template) steer it:
``sim.changelane.dev/crash-loop: "<reason>"`` keeps every container in CrashLoopBackOff
with ``lastState.terminated.reason`` set to the reason and a growing restartCount;
``sim.changelane.dev/start-delay-seconds: "<n>"`` delays readiness by n seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]

CRASH_LOOP = "sim.changelane.dev/crash-loop"
START_DELAY = "sim.changelane.dev/start-delay-seconds"
NODE_NAME = "sim-node-1"
HOST_IP = "10.0.0.10"


@dataclass(frozen=True)
class PodPlan:
    """What the simulated kubelet should do with a pod next."""

    status: JsonDict | None  # new status to write, None when unchanged
    node_name: str | None  # set spec.nodeName when not yet bound
    requeue_after: float | None  # look again after this many seconds


def start_delay(pod: JsonDict, default: float) -> float:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(START_DELAY)
    try:
        return max(0.0, float(raw)) if raw is not None else default
    except ValueError:
        return default


def crash_reason(pod: JsonDict) -> str | None:
    reason = ((pod.get("metadata") or {}).get("annotations") or {}).get(CRASH_LOOP)
    return str(reason) if reason is not None else None


def _condition(kind: str, status: bool, now: str) -> JsonDict:
    return {
        "type": kind,
        "status": "True" if status else "False",
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }


def _conditions(old: list[JsonDict], wanted: dict[str, bool], now: str) -> list[JsonDict]:
    """Conditions with lastTransitionTime kept when the status did not flip."""
    by_type = {c.get("type"): c for c in old}
    out = []
    for kind, status in wanted.items():
        prev = by_type.get(kind)
        value = "True" if status else "False"
        if prev is not None and prev.get("status") == value:
            out.append(prev)
        else:
            out.append(_condition(kind, status, now))
    return out


# Complexity D by design: the simulated kubelet's one decision per pod (scheduled, started,
# crash-looping, ready, start delay), kept in one place so its timeline reads top to bottom.
def plan_pod(
    pod: JsonDict,
    *,
    now: str,
    elapsed: float,
    ready_delay: float,
    crash_interval: float,
    pod_ip: str,
) -> PodPlan:
    """Next status of ``pod``, ``elapsed`` seconds after the simulated kubelet first saw it."""
    spec = pod.get("spec") or {}
    status = dict(pod.get("status") or {})
    containers = [c.get("name", "") for c in spec.get("containers") or []]
    images = {c.get("name", ""): c.get("image", "") for c in spec.get("containers") or []}
    delay = start_delay(pod, ready_delay)
    crash = crash_reason(pod)
    started = elapsed >= delay
    old_statuses = {c.get("name"): c for c in status.get("containerStatuses") or []}
    statuses: list[JsonDict] = []
    requeue: float | None = None
    for name in containers:
        base = {"name": name, "image": images[name], "imageID": "", "started": False}
        if not started:
            base.update(
                ready=False,
                restartCount=0,
                state={"waiting": {"reason": "ContainerCreating"}},
            )
            requeue = delay - elapsed
        elif crash is not None:
            restarts = int((elapsed - delay) // max(crash_interval, 0.01)) + 1
            prev = old_statuses.get(name) or {}
            prev_restarts = int(prev.get("restartCount", 0))
            terminated = (prev.get("lastState") or {}).get("terminated")
            if restarts != prev_restarts or terminated is None:
                terminated = {
                    "exitCode": 1,
                    "reason": crash,
                    "startedAt": now,
                    "finishedAt": now,
                    "containerID": f"sim://{name}-{restarts}",
                }
            base.update(
                ready=False,
                restartCount=max(restarts, prev_restarts),
                state={
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off restarting failed container {name} in pod "
                        f"{pod['metadata']['name']}: {crash}",
                    }
                },
                lastState={"terminated": terminated},
            )
            requeue = crash_interval - ((elapsed - delay) % max(crash_interval, 0.01))
        else:
            prev = old_statuses.get(name) or {}
            running = (prev.get("state") or {}).get("running") or {"startedAt": now}
            base.update(
                ready=True,
                started=True,
                restartCount=0,
                state={"running": running},
                containerID=f"sim://{name}",
            )
        statuses.append(base)
    ready = started and crash is None
    new_status: JsonDict = {
        "phase": "Running" if started else "Pending",
        "conditions": _conditions(
            list(status.get("conditions") or []),
            {
                "PodReadyToStartContainers": True,
                "Initialized": True,
                "Ready": ready,
                "ContainersReady": ready,
                "PodScheduled": True,
            },
            now,
        ),
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": status.get("startTime") or now,
        "containerStatuses": statuses,
        "qosClass": status.get("qosClass", "BestEffort"),
    }
    changed = _comparable(new_status) != _comparable(status)
    return PodPlan(
        status=new_status if changed else None,
        node_name=None if spec.get("nodeName") else NODE_NAME,
        requeue_after=requeue,
    )


def _comparable(status: JsonDict) -> JsonDict:
    """Status without timestamps that alone should not cause a write."""
    out = dict(status)
    out.pop("startTime", None)
    out["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in status.get("conditions") or []
    ]
    out["containerStatuses"] = [
        {
            **{k: v for k, v in c.items() if k not in {"state", "lastState"}},
            "state": {
                k: {kk: vv for kk, vv in (v or {}).items() if kk != "startedAt"}
                for k, v in (c.get("state") or {}).items()
            },
            "lastState": bool(c.get("lastState")),
        }
        for c in status.get("containerStatuses") or []
    ]
    return out


def is_ready(pod: JsonDict) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False
