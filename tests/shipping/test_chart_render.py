"""The chart renders, lints and validates for the defaults and the variants people use."""

from __future__ import annotations

import json
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from controller import crds
from tests.shipping.chartlib import (
    CHART,
    KUBE_VERSIONS,
    NAMESPACE,
    RELEASE,
    example_lanes,
    kinds,
    object_problems,
    only,
    render,
)
from tests.shipping.variants import VARIANTS

FULLNAME = f"{RELEASE}-changelane"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_rendered_object_is_valid(chart: helm_python.Chart, variant: str) -> None:
    objs = render(chart, VARIANTS[variant])
    assert objs
    problems = [p for r in objs for p in object_problems(r.obj)]
    assert problems == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_lint_is_clean(variant: str) -> None:
    report = helm_python.lint(CHART, VARIANTS[variant], strict=True, namespace=NAMESPACE)
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert serious == [] and report["errors"] == []


def test_default_objects(chart: helm_python.Chart) -> None:
    objs = render(chart)
    assert kinds(objs) == sorted(
        [
            "ClusterRole",
            "ClusterRole",  # viewer, for people
            "ClusterRole",  # operator, for people
            "ClusterRoleBinding",
            "ConfigMap",  # the Grafana dashboard
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    )
    for r in objs:
        if r.kind not in ("ClusterRole", "ClusterRoleBinding", "ChangeLane"):
            assert r.obj["metadata"]["namespace"] == NAMESPACE, r.template


def test_default_controller_flags_follow_the_runtime_contract(chart: helm_python.Chart) -> None:
    deployment = only(render(chart), "Deployment")
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/changelane/changelane:0.1.0"
    assert container["args"] == [
        f"--namespace-lease={NAMESPACE}",
        "--lease-name=changelane-leader",
        "--shards=2",  # replicaCount: each replica owns one shard of the lanes
        "--shard-lease-prefix=changelane",
        "--metrics-port=8080",
        "--audit-log=/var/lib/changelane/audit.jsonl",
        "--prometheus-url=http://prometheus-operated.monitoring.svc:9090",
        "--flag-provider=flagd",
        "--flagd-host=flagd.flagd.svc.cluster.local",
        "--flagd-port=8013",
        "--keep-releases=20",
        "--log-level=info",
    ]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    assert container["ports"] == [
        {"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"}
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/tmp": "tmp", "/var/lib/changelane": "audit"}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["tmp"] and "emptyDir" in volumes["audit"]


def test_service_and_service_monitor_select_the_controller(chart: helm_python.Chart) -> None:
    objs = render(chart, VARIANTS["everything-on"])
    deployment = only(objs, "Deployment")
    service = only(objs, "Service")
    monitor = only(objs, "ServiceMonitor")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http-metrics"]
    assert [p["name"] for p in service["spec"]["ports"]] == ["http-metrics"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_prometheus_rule_embeds_the_checked_rules_file(chart: helm_python.Chart) -> None:
    rule = only(render(chart, VARIANTS["everything-on"]), "PrometheusRule")
    shipped = yaml.safe_load((CHART / "files" / "alert-rules.yaml").read_text(encoding="utf-8"))
    assert rule["spec"] == shipped


def test_dashboard_configmap_carries_the_dashboard(chart: helm_python.Chart) -> None:
    cm = only(render(chart), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "files" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    assert json.loads(cm["data"]["changelane.json"]) == shipped


def test_lanes_from_values_become_change_lanes(chart: helm_python.Chart) -> None:
    lanes = example_lanes()
    assert len(lanes) >= 2
    rendered = [r.obj for r in render(chart, {"lanes": lanes}) if r.kind == "ChangeLane"]
    assert {o["metadata"]["name"]: o["spec"] for o in rendered} == lanes
    for obj in rendered:
        assert obj["apiVersion"] == "changelane.dev/v1alpha1"
        assert "namespace" not in obj["metadata"]  # ChangeLane is cluster-scoped


def test_file_flag_provider_from_values(chart: helm_python.Chart) -> None:
    values = VARIANTS["file-flags-from-values"]
    objs = render(chart, values)
    flags_cm = only(objs, "ConfigMap", f"{FULLNAME}-flags")
    assert (
        json.loads(flags_cm["data"]["flags.flagd.json"]) == values["flags"]["file"]["definitions"]
    )
    pod = only(objs, "Deployment")["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert "--flag-provider=file" in container["args"]
    assert "--flag-file=/etc/changelane/flags/flags.flagd.json" in container["args"]
    assert not any(a.startswith("--flagd-") for a in container["args"])
    assert {"name": "flags", "mountPath": "/etc/changelane/flags", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert {"name": "flags", "configMap": {"name": f"{FULLNAME}-flags"}} in pod["spec"]["volumes"]
    # A change of definitions rolls the pods.
    assert pod["metadata"]["annotations"]["checksum/flags"]


def test_file_flag_provider_with_existing_configmap(chart: helm_python.Chart) -> None:
    objs = render(chart, VARIANTS["file-flags-existing-configmap"])
    assert [r.name for r in objs if r.kind == "ConfigMap"] == [f"{FULLNAME}-dashboard"]
    pod = only(objs, "Deployment")["spec"]["template"]["spec"]
    assert "--flag-file=/etc/changelane/flags/lanes.json" in pod["containers"][0]["args"]
    assert {"name": "flags", "configMap": {"name": "platform-flags"}} in pod["volumes"]


def test_notification_urls_come_from_a_mounted_secret(chart: helm_python.Chart) -> None:
    objs = render(chart, VARIANTS["notifications"])
    pod = only(objs, "Deployment")["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert "--notification-secrets=/etc/changelane/notifications" in args
    assert "--notifications=/etc/changelane/notifications-defaults/defaults.yaml" in args
    assert "--dashboard-url=http://127.0.0.1:8080" in args
    secret = next(v for v in pod["volumes"] if v["name"] == "notification-secrets")
    assert secret["secret"]["secretName"] == "changelane-notifications"
    defaults = only(objs, "ConfigMap", f"{FULLNAME}-notifications")["data"]["defaults.yaml"]
    assert yaml.safe_load(defaults)["destinations"][0]["secretKey"] == "slack"
    # The mount is the kubelet's doing: the controller itself may not read Secrets.
    for role in (r.obj for r in objs if r.kind in ("Role", "ClusterRole")):
        if "viewer" in role["metadata"]["name"] or "operator" in role["metadata"]["name"]:
            continue
        for rule in role.get("rules") or []:
            assert "secrets" not in rule.get("resources", []), role["metadata"]["name"]


def test_durable_audit_digest_and_single_replica(chart: helm_python.Chart) -> None:
    objs = render(chart, VARIANTS["durable-audit-single-replica"])
    assert "PodDisruptionBudget" not in kinds(objs)  # minAvailable 1 of 1 would block drains
    deployment = only(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "ghcr.io/changelane/changelane@sha256:" + "ab" * 32
    assert "--log-level=debug" in pod["containers"][0]["args"]
    audit = next(v for v in pod["volumes"] if v["name"] == "audit")
    assert audit == {"name": "audit", "persistentVolumeClaim": {"claimName": "changelane-audit"}}


def test_bring_your_own_service_account(chart: helm_python.Chart) -> None:
    objs = render(chart, VARIANTS["bring-your-own-service-account"])
    assert kinds(objs) == ["Deployment", "Service"]
    pod = only(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "changelane-controller"


def test_scheduling_values_reach_the_pod(chart: helm_python.Chart) -> None:
    values: dict[str, Any] = VARIANTS["scheduling"]
    pod = only(render(chart, values), "Deployment")["spec"]["template"]["spec"]
    for key in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints"):
        assert pod[key] == values[key]
    assert pod["containers"][0]["resources"] == values["resources"]


def test_default_spreads_replicas_across_nodes(chart: helm_python.Chart) -> None:
    pod = only(render(chart), "Deployment")["spec"]["template"]["spec"]
    [spread] = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"


def test_chart_ships_exactly_the_generated_crds(chart: helm_python.Chart) -> None:
    shipped = {c["filename"]: yaml.safe_load(c["data"]) for c in chart.crds}
    expected = {f"changelane/crds/{crds.file_name(i)}": crds.crd_manifest(i) for i in crds.CRDS}
    assert shipped == expected
    for manifest in shipped.values():
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(manifest, version, strict=True)


def test_the_validators_catch_broken_objects(chart: helm_python.Chart) -> None:
    # The "every object is valid" checks above mean something only if these fail.
    objs = render(chart, VARIANTS["everything-on"])
    deployment = only(objs, "Deployment")
    deployment["spec"]["replicas"] = "two"
    problems = object_problems(deployment)
    assert problems and all("spec.replicas" in p for p in problems), problems

    deployment = only(render(chart), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFileSystem"] = True  # typo: capital S
    problems = object_problems(deployment)
    assert problems and all("readOnlyRootFileSystem" in p for p in problems), problems

    monitor = only(objs, "ServiceMonitor")
    monitor["spec"]["endpoints"] = []
    assert object_problems(monitor) == ["ServiceMonitor: no endpoints"]

    rule = only(objs, "PrometheusRule")
    rule["spec"]["groups"][0]["rules"].append({"alert": "Empty"})
    assert len(object_problems(rule)) == 1
