"""The real kubectl, with nothing but --kubeconfig, against the cluster under test."""

from __future__ import annotations

import json
import subprocess
import threading

import yaml
from kubernetes import client

from tests.conformance.conftest import REPO, Kubectl, Target, kubectl_binary
from tests.conformance.helpers import deployment, wait_until


def test_create_get_describe_patch_replace_delete(
    kubectl: Kubectl, apps: client.AppsV1Api, namespace: str
) -> None:
    manifest = yaml.safe_dump(deployment("web", replicas=1))
    out = kubectl("create", "-n", namespace, "-f", "-", stdin=manifest)
    assert "deployment.apps/web created" in out.stdout

    table = kubectl("get", "deployments", "-n", namespace, "-l", "app=web").stdout
    assert table.splitlines()[0].split()[:2] == ["NAME", "READY"]
    assert table.splitlines()[1].split()[0] == "web"
    assert (
        "No resources found" in kubectl("get", "deploy", "-n", namespace, "-l", "app=none").stderr
    )

    as_yaml = yaml.safe_load(kubectl("get", "deploy", "web", "-n", namespace, "-o", "yaml").stdout)
    assert as_yaml["kind"] == "Deployment" and as_yaml["metadata"]["uid"]

    described = kubectl("describe", "deployment", "web", "-n", namespace).stdout
    assert "Name:" in described and "web" in described and "Replicas:" in described

    kubectl(
        "patch",
        "deploy",
        "web",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"metadata":{"labels":{"patched":"merge"}}}',
    )
    kubectl(
        "patch",
        "deploy",
        "web",
        "-n",
        namespace,
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/replicas","value":2}]',
    )
    kubectl(
        "patch",
        "deploy",
        "web",
        "-n",
        namespace,
        "--type=strategic",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"nginx:2"}]}}}}',
    )
    dep = apps.read_namespaced_deployment("web", namespace)
    assert dep.metadata.labels["patched"] == "merge"
    assert dep.spec.replicas == 2
    assert [c.image for c in dep.spec.template.spec.containers] == ["nginx:2"]

    # the Deployment controller writes status while rolling out; replace once it settled
    kubectl("rollout", "status", "deploy/web", "-n", namespace, "--timeout=60s")
    current = yaml.safe_load(kubectl("get", "deploy", "web", "-n", namespace, "-o", "yaml").stdout)
    current["metadata"]["labels"]["replaced"] = "yes"
    kubectl("replace", "-f", "-", stdin=yaml.safe_dump(current))
    assert apps.read_namespaced_deployment("web", namespace).metadata.labels["replaced"] == "yes"
    stale = kubectl("replace", "-f", "-", stdin=yaml.safe_dump(current), check=False)
    assert stale.returncode != 0 and "Conflict" in stale.stderr

    assert "deleted" in kubectl("delete", "deploy", "web", "-n", namespace).stdout
    assert apps.list_namespaced_deployment(namespace).items == []


def test_crd_kinds_with_printer_columns_and_strict_validation(
    kubectl: Kubectl, target: Target
) -> None:
    lane = REPO / "lanes" / "docs-site.yaml"
    kubectl("delete", "-f", str(lane), "--ignore-not-found")
    kubectl("create", "-f", str(lane))
    try:
        table = kubectl("get", "changelanes", "docs-site").stdout
        assert table.split()[:3] == ["NAME", "MODE", "SUSPENDED"]
        bad = yaml.safe_load(lane.read_text())
        bad["metadata"]["name"] = "bad-lane"
        bad["spec"]["surprise"] = True
        refused = kubectl("create", "-f", "-", stdin=yaml.safe_dump(bad), check=False)
        assert refused.returncode != 0
        assert 'unknown field "spec.surprise"' in refused.stderr
    finally:
        kubectl("delete", "-f", str(lane), "--ignore-not-found")


def test_get_watch_streams_changes(
    kubectl: Kubectl, target: Target, apps: client.AppsV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("watched", replicas=0))
    proc = subprocess.Popen(
        [
            kubectl_binary(),
            "--kubeconfig",
            str(target.kubeconfig),
            "get",
            "deploy",
            "-n",
            namespace,
            "--watch",
            "-o",
            "json",
            "--request-timeout=20s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(proc.stdout.readline, "")))
    reader.start()
    try:
        # Patch once kubectl has listed (its start takes seconds on a loaded machine), and
        # stop it once the change arrived: waiting on output, not on a fixed sleep.
        wait_until(lambda: '"watched"' in "".join(chunks), timeout=30)
        apps.patch_namespaced_deployment(
            "watched", namespace, {"metadata": {"labels": {"seen": "yes"}}}
        )
        wait_until(lambda: '"seen"' in "".join(chunks), timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        reader.join(timeout=10)
    decoder = json.JSONDecoder()
    docs, text = [], "".join(chunks).strip()
    while text:
        doc, end = decoder.raw_decode(text)
        docs.append(doc)
        text = text[end:].strip()
    assert docs[0]["metadata"]["name"] == "watched"
    assert any(d["metadata"].get("labels", {}).get("seen") == "yes" for d in docs[1:])


def test_scale_and_rollout_status(kubectl: Kubectl, apps: client.AppsV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, deployment("scaled", replicas=1))
    kubectl("scale", "deploy/scaled", "-n", namespace, "--replicas=2")
    wait_until(lambda: apps.read_namespaced_deployment("scaled", namespace).spec.replicas == 2)
    done = kubectl("rollout", "status", "deploy/scaled", "-n", namespace, "--timeout=60s")
    assert "successfully rolled out" in done.stdout
