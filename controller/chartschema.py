"""Keep the lane part of the chart's ``values.schema.json`` generated from the lane models.

Lanes declared in Helm values are ChangeLane specs. Embedding the models' own JSON Schema
(``additionalProperties: false`` everywhere, as ``extra="forbid"`` makes it) lets Helm refuse
a lane with a typo or a wrong type at install time, with the path of the bad value, instead
of the API server silently pruning the unknown field. Only the ``$defs`` named
``ChangeLane.*`` are generated; the rest of the file is the chart's hand-written schema.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from controller.core.models.lane import ChangeLaneSpec

PREFIX = "ChangeLane."
SPEC_DEF = f"{PREFIX}ChangeLaneSpec"
DEFAULT_PATH = Path("charts/changelane/values.schema.json")


def lane_defs() -> dict[str, Any]:
    """The ``$defs`` entries describing one lane spec, keyed ``ChangeLane.<Model>``."""
    raw = ChangeLaneSpec.model_json_schema(
        by_alias=True, mode="validation", ref_template=f"#/$defs/{PREFIX}{{model}}"
    )
    nested: dict[str, Any] = raw.pop("$defs", {})
    defs = {f"{PREFIX}{name}": body for name, body in nested.items()}
    defs[SPEC_DEF] = raw
    return dict(sorted(defs.items()))


def render(current: dict[str, Any]) -> str:
    """``current`` with its generated ``$defs`` replaced by what the models say now."""
    kept = {k: v for k, v in current.get("$defs", {}).items() if not k.startswith(PREFIX)}
    updated = {**current, "$defs": {**kept, **lane_defs()}}
    return json.dumps(updated, indent=2, ensure_ascii=False) + "\n"


def write(path: Path = DEFAULT_PATH) -> None:
    path.write_text(render(json.loads(path.read_text(encoding="utf-8"))), encoding="utf-8")


def check(path: Path = DEFAULT_PATH) -> str:
    """A unified diff between ``path`` and its regenerated form; empty when in sync."""
    actual = path.read_text(encoding="utf-8")
    expected = render(json.loads(actual))
    return "".join(
        difflib.unified_diff(
            actual.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=str(path),
            tofile=f"{path} (generated from the models)",
        )
    )
