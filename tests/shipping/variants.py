"""Values files the chart is rendered with: the defaults and the settings people change."""

from __future__ import annotations

from typing import Any

from tests.shipping.chartlib import example_lanes

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything-on": {
        "lanes": example_lanes(),
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Platform"}},
        "podAnnotations": {"example.com/team": "platform"},
        "podLabels": {"team": "platform"},
        "priorityClassName": "system-cluster-critical",
        "imagePullSecrets": [{"name": "registry"}],
        "service": {"annotations": {"example.com/scrape": "false"}},
    },
    "file-flags-from-values": {
        "flags": {
            "provider": "file",
            "file": {
                "definitions": {
                    "flags": {
                        "changelane.lane.docs-site.autonomy": {
                            "state": "ENABLED",
                            "variants": {"on": True, "off": False},
                            "defaultVariant": "off",
                        }
                    }
                }
            },
        },
    },
    "file-flags-existing-configmap": {
        "flags": {"provider": "file", "file": {"configMap": "platform-flags", "key": "lanes.json"}},
    },
    "durable-audit-single-replica": {
        "replicaCount": 1,
        "audit": {"volume": "persistentVolumeClaim", "existingClaim": "changelane-audit"},
        "image": {"digest": "sha256:" + "ab" * 32},
        "logLevel": "debug",
    },
    "notifications": {
        "notifications": {
            "existingSecret": "changelane-notifications",
            "dashboardUrl": "http://127.0.0.1:8080",
            "defaults": {
                "destinations": [
                    {"name": "oncall", "kind": "apprise", "secretKey": "slack"},
                    {"name": "bus", "kind": "webhook", "secretKey": "bus", "events": ["promoted"]},
                ]
            },
        }
    },
    "bring-your-own-service-account": {
        "serviceAccount": {"create": False, "name": "changelane-controller"},
        "rbac": {"create": False},
        "grafanaDashboard": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
    },
    "scheduling": {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "platform", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "node-role", "operator": "In", "values": ["platform"]}
                            ]
                        }
                    ]
                }
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "changelane"}},
            }
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": 1, "memory": "512Mi"},
        },
    },
}
