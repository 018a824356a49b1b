"""Draw one release's measurements: canary vs baseline per check, the check's limit, the
step boundaries with their weights and the moment the controller decided (matplotlib,
headless Agg backend). The time axis reads wall-clock ``HH:MM:SS`` (UTC)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a controller box or in CI

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from controller.core.audit import AuditRecord
from controller.core.audit_query import release_series


def plot_release(records: Sequence[AuditRecord], path: Path) -> bool:
    """Write a PNG with one panel per check; ``False`` when there is nothing to draw."""
    fig = release_figure(records)
    if fig is None:
        return False
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def release_figure(records: Sequence[AuditRecord]) -> Figure | None:
    """The figure :func:`plot_release` saves (the caller closes it)."""
    series = release_series(records)
    if not series.checks:
        return None
    checks = list(series.checks.values())
    fig, axes = plt.subplots(len(checks), 1, figsize=(9, 2.8 * len(checks)), sharex=True)
    panels = list(axes) if len(checks) > 1 else [axes]
    for ax, check in zip(panels, checks, strict=True):
        ax.plot(check.times, check.canary, "o-", color="tab:red", label="canary")
        ax.plot(check.times, check.baseline, "s--", color="tab:blue", label="baseline")
        if any(t is not None for t in check.threshold):
            ax.step(check.times, check.threshold, where="post", color="black", lw=1, label="limit")
        failed = [
            (t, c)
            for t, c, v in zip(check.times, check.canary, check.verdicts, strict=True)
            if v == "Fail" and c is not None
        ]
        if failed:
            ax.scatter(
                *zip(*failed, strict=True),
                s=90,
                facecolors="none",
                edgecolors="red",
                label="failed",
                zorder=3,
            )
        if series.decision_time is not None and series.decision is not None:
            ax.axvline(
                series.decision_time, color="purple", ls=":", lw=1.5, label=series.decision.value
            )
        for boundary in series.steps:
            ax.axvline(boundary.time, color="grey", lw=0.8, ls="--")
            weight = f" ({boundary.weight}%)" if boundary.weight is not None else ""
            ax.annotate(
                boundary.label + weight,
                (mdates.date2num(boundary.time), 1.0),  # type: ignore[no-untyped-call]
                xycoords=("data", "axes fraction"),
                xytext=(3, -10),
                textcoords="offset points",
                fontsize=7,
                color="dimgrey",
            )
        ax.set_title(check.check, loc="left", fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(
            mdates.DateFormatter("%H:%M:%S", tz="UTC")  # type: ignore[no-untyped-call]
        )
    release = records[0].release or "release"
    fig.suptitle(f"{release} ({records[0].lane})")
    panels[-1].set_xlabel("time (UTC)")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
