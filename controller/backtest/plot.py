"""Plots of replayed releases: canary vs baseline per check, with the decision marked.

matplotlib is imported when a plot is asked for (it may become an optional extra), with
the file-only Agg backend so no display is needed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from controller.backtest.replay import Outcome, ReplayResult

_COLOURS = {
    Outcome.PROMOTE: "tab:green",
    Outcome.ROLLBACK: "tab:red",
    Outcome.UNDECIDED: "tab:orange",
    Outcome.NO_DATA: "tab:gray",
}


def plot_releases(results: Sequence[ReplayResult], out_dir: Path) -> list[Path]:
    """One PNG per replayed release (no_data releases have nothing to draw)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for result in results:
        if not result.ticks:
            continue
        checks = sorted({m.check for t in result.ticks for m in t.measurements})
        if not checks:
            continue
        fig, axes = plt.subplots(len(checks), 1, figsize=(9, 2.6 * len(checks)), squeeze=False)
        for ax, check in zip(axes[:, 0], checks, strict=True):
            times, canary, baseline = [], [], []
            for tick in result.ticks:
                for m in tick.measurements:
                    if m.check == check:
                        times.append(tick.time)
                        canary.append(m.canary)
                        baseline.append(m.baseline)
            ax.plot(times, canary, "o-", color="tab:purple", label="canary", markersize=3)
            if any(b is not None for b in baseline):
                ax.plot(times, baseline, "s-", color="tab:blue", label="baseline", markersize=3)
            if result.decided_at is not None:
                ax.axvline(result.decided_at, color=_COLOURS[result.outcome], linestyle="--")
            ax.set_title(check, fontsize=9)
            ax.legend(fontsize=7, loc="upper left")
            ax.tick_params(labelsize=7)
        r = result.release
        fig.suptitle(
            f"{r.namespace}/{r.workload} {r.start:%Y-%m-%d %H:%M} - would have: "
            f"{result.outcome.value} (expected {r.expect.value if r.expect else '?'})",
            fontsize=10,
        )
        fig.tight_layout()
        name = re.sub(
            r"[^A-Za-z0-9_.-]", "_", f"{r.namespace}-{r.workload}-{r.start:%Y%m%dT%H%M%S}"
        )
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written
