"""Lanes for gate tests, built from the declared examples so tests track real config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from controller.core.models.lane import ChangeLane

LANES = Path(__file__).resolve().parents[2] / "lanes"


def lane(name: str = "docs-site", **spec_overrides: Any) -> ChangeLane:
    data = yaml.safe_load((LANES / f"{name}.yaml").read_text())
    for dotted, value in spec_overrides.items():
        node = data["spec"]
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return ChangeLane.model_validate(data)
