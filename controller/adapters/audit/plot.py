"""Draw one release's measurements: canary vs baseline per check, its threshold and the
moment the controller decided (matplotlib, headless Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a controller box or in CI

import matplotlib.pyplot as plt

from controller.core.audit import AuditRecord
from controller.core.audit_query import release_series


def plot_release(records: Sequence[AuditRecord], path: Path) -> bool:
    """Write a PNG with one panel per check; ``False`` when there is nothing to draw."""
    series = release_series(records)
    if not series.checks:
        return False
    checks = list(series.checks.values())
    fig, axes = plt.subplots(len(checks), 1, figsize=(9, 2.8 * len(checks)), sharex=True)
    panels = list(axes) if len(checks) > 1 else [axes]
    for ax, check in zip(panels, checks, strict=True):
        ax.plot(check.times, check.canary, "o-", color="tab:red", label="canary")
        ax.plot(check.times, check.baseline, "s--", color="tab:blue", label="baseline")
        if any(t is not None for t in check.threshold):
            ax.step(
                check.times, check.threshold, where="post", color="black", lw=1, label="threshold"
            )
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
        ax.set_title(check.check, loc="left", fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)
    release = records[0].release or "release"
    fig.suptitle(f"{release} ({records[0].lane})")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
