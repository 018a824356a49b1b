"""Optional features and the extras that install them.

``changelane run`` (what the image ships) needs only the runtime dependencies. Plotting, the
simulated cluster, the demo and the benchmarks need more; they come with
``pip install 'changelane[plot]'`` or ``'changelane[demo]'``. A command whose extra is
missing stops with one sentence that names the extra, instead of a traceback.
"""

from __future__ import annotations

import importlib.util

import click

# extra -> (what it serves, the top-level modules it installs)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "plot": ("plotting (audit show --plot)", ("matplotlib",)),
    "demo": (
        "the simulated cluster, the demo and the benchmarks",
        ("jsonschema", "jsonpatch", "numpy"),
    ),
}


def missing_modules(extra: str) -> list[str]:
    _, modules = EXTRAS[extra]
    return [m for m in modules if importlib.util.find_spec(m) is None]


def require_extra(extra: str, command: str) -> None:
    """Stop ``command`` with a clear error when its extra is not installed."""
    missing = missing_modules(extra)
    if missing:
        purpose, _ = EXTRAS[extra]
        raise click.ClickException(
            f"{command} needs the '{extra}' extra ({purpose}), which is not installed "
            f"(missing: {', '.join(missing)}). Install it with: "
            f"pip install 'changelane[{extra}]'"
        )
