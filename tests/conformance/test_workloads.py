"""Deployments as the Deployment controller runs them: ReplicaSets per pod template,
pods that turn Ready, status and conditions, rollouts, scale to zero, and (simulated
cluster only) crash-looping and slow-starting pods."""

from __future__ import annotations

from kubernetes import client

from controller.sim.cluster import SimCluster
from tests.conformance.helpers import deployment, wait_until


def _rollout_complete(apps: client.AppsV1Api, namespace: str, name: str) -> bool:
    dep = apps.read_namespaced_deployment(name, namespace)
    st = dep.status
    if st is None:
        return False
    want = dep.spec.replicas
    return bool(
        st.observed_generation == dep.metadata.generation
        and (st.updated_replicas or 0) == want
        and (st.ready_replicas or 0) == want
        and (st.available_replicas or 0) == want
        and (st.replicas or 0) == want
    )


def _owned_replicasets(
    apps: client.AppsV1Api, namespace: str, name: str
) -> list[client.V1ReplicaSet]:
    uid = apps.read_namespaced_deployment(name, namespace).metadata.uid
    return [
        rs
        for rs in apps.list_namespaced_replica_set(namespace, label_selector=f"app={name}").items
        if any(ref.uid == uid for ref in rs.metadata.owner_references or [])
    ]


def test_deployment_rolls_out_replicaset_and_ready_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=2))
    wait_until(lambda: _rollout_complete(apps, namespace, "web"), timeout=60)
    (rs,) = _owned_replicasets(apps, namespace, "web")
    pod_hash = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{pod_hash}"
    assert rs.spec.selector.match_labels == {"app": "web", "pod-template-hash": pod_hash}
    pods = core.list_namespaced_pod(namespace, label_selector=f"pod-template-hash={pod_hash}")
    assert len(pods.items) == 2
    for pod in pods.items:
        assert pod.status.phase == "Running"
        ready = {c.type: c.status for c in pod.status.conditions}
        assert ready["Ready"] == "True"
        assert pod.metadata.owner_references[0].uid == rs.metadata.uid
    conditions = {
        c.type: c for c in apps.read_namespaced_deployment("web", namespace).status.conditions
    }
    assert conditions["Available"].status == "True"
    assert conditions["Progressing"].reason == "NewReplicaSetAvailable"


def test_new_pod_template_rolls_to_new_replicaset_and_scales_old_down(
    apps: client.AppsV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("roll", replicas=2))
    wait_until(lambda: _rollout_complete(apps, namespace, "roll"), timeout=60)
    (first,) = _owned_replicasets(apps, namespace, "roll")
    apps.patch_namespaced_deployment(
        "roll",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}},
    )
    wait_until(lambda: _rollout_complete(apps, namespace, "roll"), timeout=60)
    sets = {rs.metadata.name: rs for rs in _owned_replicasets(apps, namespace, "roll")}
    assert len(sets) == 2
    assert sets[first.metadata.name].spec.replicas == 0
    (new,) = [rs for name, rs in sets.items() if name != first.metadata.name]
    assert new.spec.replicas == 2
    assert new.spec.template.spec.containers[0].image == "nginx:2"
    revisions = {
        rs.metadata.name: rs.metadata.annotations["deployment.kubernetes.io/revision"]
        for rs in sets.values()
    }
    assert revisions == {first.metadata.name: "1", new.metadata.name: "2"}


def test_scaling_to_zero_removes_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("zero", replicas=2))
    wait_until(lambda: _rollout_complete(apps, namespace, "zero"), timeout=60)
    apps.patch_namespaced_deployment_scale("zero", namespace, {"spec": {"replicas": 0}})
    wait_until(
        lambda: (
            not [
                p
                for p in core.list_namespaced_pod(namespace, label_selector="app=zero").items
                if p.metadata.deletion_timestamp is None
            ]
        ),
        timeout=60,
    )
    wait_until(lambda: _rollout_complete(apps, namespace, "zero"), timeout=60)


def test_deleting_deployment_collects_replicasets_and_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("gc", replicas=1))
    wait_until(lambda: _rollout_complete(apps, namespace, "gc"), timeout=60)
    apps.delete_namespaced_deployment("gc", namespace)
    wait_until(
        lambda: (
            not apps.list_namespaced_replica_set(namespace, label_selector="app=gc").items
            and not core.list_namespaced_pod(namespace, label_selector="app=gc").items
        ),
        timeout=60,
    )


def test_crash_loop_annotation_keeps_pods_unready_with_the_reason(
    sim: SimCluster, apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    body = deployment("crash", replicas=1, **{"sim.changelane.dev/crash-loop": "OOMKilled"})
    apps.create_namespaced_deployment(namespace, body)

    def restarted_twice() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="app=crash").items
        statuses = [c for p in pods for c in (p.status.container_statuses or [])]
        return bool(statuses) and all(c.restart_count >= 2 for c in statuses)

    wait_until(restarted_twice, timeout=20)
    (pod,) = core.list_namespaced_pod(namespace, label_selector="app=crash").items
    (container,) = pod.status.container_statuses
    assert container.state.waiting.reason == "CrashLoopBackOff"
    assert container.last_state.terminated.reason == "OOMKilled"
    assert container.ready is False
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"
    dep = apps.read_namespaced_deployment("crash", namespace)
    assert not dep.status.ready_replicas
    assert dep.status.unavailable_replicas == 1


def test_crash_looping_rollout_keeps_old_replicas_serving(
    sim: SimCluster, apps: client.AppsV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("keep", replicas=4))
    wait_until(lambda: _rollout_complete(apps, namespace, "keep"), timeout=60)
    apps.patch_namespaced_deployment(
        "keep",
        namespace,
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"sim.changelane.dev/crash-loop": "Error"}}
                }
            }
        },
    )
    wait_until(
        lambda: (
            (apps.read_namespaced_deployment("keep", namespace).status.updated_replicas or 0) >= 1
        ),
        timeout=30,
    )
    status = apps.read_namespaced_deployment("keep", namespace).status
    # maxUnavailable 25% of 4 = 1: at least 3 stay available while the new pods never get ready
    assert (status.available_replicas or 0) >= 3
    assert not _rollout_complete(apps, namespace, "keep")


def test_start_delay_annotation_delays_readiness(
    sim: SimCluster, apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    body = deployment("slow", replicas=1, **{"sim.changelane.dev/start-delay-seconds": "1.5"})
    apps.create_namespaced_deployment(namespace, body)
    wait_until(lambda: bool(core.list_namespaced_pod(namespace, label_selector="app=slow").items))
    (pod,) = core.list_namespaced_pod(namespace, label_selector="app=slow").items
    assert pod.status.phase == "Pending"
    wait_until(lambda: _rollout_complete(apps, namespace, "slow"), timeout=20)
