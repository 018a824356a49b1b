"""Kubeconfig files that point kubectl and the official client at a simulated cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

JsonDict = dict[str, Any]


def kubeconfig(
    server: str,
    *,
    token: str | None,
    name: str = "changelane-sim",
    namespace: str = "default",
    user: str | None = None,
) -> JsonDict:
    """``user`` names the kubeconfig user (default: ``name``, the cluster's name)."""
    credentials: JsonDict = {"token": token} if token else {}
    user_name = user or name
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": user_name, "user": credentials}],
        "contexts": [
            {
                "name": name,
                "context": {"cluster": name, "user": user_name, "namespace": namespace},
            }
        ],
        "current-context": name,
        "preferences": {},
    }


def write_kubeconfig(path: Path | str, config: JsonDict) -> Path:
    """Write atomically with mode 0600 (the file holds the bearer token)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    os.replace(tmp, target)
    return target
