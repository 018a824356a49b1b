"""Hardening that holds whatever the values: these are not settings, they are the chart."""

from __future__ import annotations

import helm_python
import pytest

from tests.shipping.chartlib import iter_containers, only, render
from tests.shipping.variants import VARIANTS


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_pod_and_containers_are_locked_down(chart: helm_python.Chart, variant: str) -> None:
    deployment = only(render(chart, VARIANTS[variant]), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key, False)
    assert not any("hostPath" in v for v in pod["volumes"])
    for container in iter_containers(deployment):
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc.get("privileged", False) is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        # A read-only root needs somewhere to write: /tmp and the audit log.
        paths = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", "/var/lib/changelane"} <= paths
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] == "http-metrics"


def test_two_replicas_survive_voluntary_disruption(chart: helm_python.Chart) -> None:
    objs = render(chart)
    deployment = only(objs, "Deployment")
    pdb = only(objs, "PodDisruptionBudget")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
