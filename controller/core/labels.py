"""Every label and annotation key the controller writes or reads on Kubernetes objects,
defined once. (Provenance keys on the pod template live with their parser in
``core.provenance_annotations``; audit-record keys on Events with ``adapters.audit``.)"""

from __future__ import annotations

PREFIX = "changelane.dev/"

# ---- on lane workloads (Deployments)
#: Which lane selects a workload (label), and which lane adopted it (annotation).
LANE = f"{PREFIX}lane"
#: ``primary`` on the primary copy and its pods.
TRACK = f"{PREFIX}track"
#: The pod-template hash the primary was last given.
TEMPLATE_HASH = f"{PREFIX}template-hash"
#: The workload's replicas before adoption: what the primary and the canary share.
TOTAL_REPLICAS = f"{PREFIX}replicas"
#: On the pod template: the feature flag the release ramps.
FLAG = f"{PREFIX}flag"
MANAGED_BY = "app.kubernetes.io/managed-by"

# ---- on LaneReleases
#: ``LANE`` and this label a LaneRelease with its lane and its workload.
WORKLOAD = f"{PREFIX}workload"
#: A human command for the controller: ``<verb> by <identity>`` (see ``core.commands``).
COMMAND = f"{PREFIX}command"

# ---- on flag definitions
FLAG_FINGERPRINTS = f"{PREFIX}flag-fingerprints"
