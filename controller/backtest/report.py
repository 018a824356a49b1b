"""What a backtest found, as the JSON document, a table and a CI verdict (pure).

Rates, and what they count:

- ``false_rollback_rate``: rollbacks of healthy code over healthy replays with data, where
  healthy means a release expected to promote *or* an A/A run (the same version on both
  arms). This is the figure ``--max-false-rollback`` gates on. With nothing healthy to
  replay it is ``null`` and the gate fails: no estimate is not a good estimate.
- ``missed_regression_rate``: releases expected to roll back that the lane would not have
  rolled back (promoted or left undecided), over those with data.
- ``promote_median_s``: median time from the start of a release to the promote decision.

``no_data`` releases are counted apart and never enter a rate as a pass.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from controller.backtest.releases import Expect
from controller.backtest.replay import Outcome, ReplayResult
from controller.core.formatting import human_time, iso_z
from controller.core.formatting import table as text_table


@dataclass(frozen=True)
class AARun:
    """The A/A part of a backtest: replays over healthy periods, or why there were none."""

    results: tuple[ReplayResult, ...]
    windows: int
    splits: int
    problem: str | None = None

    @property
    def judged(self) -> list[ReplayResult]:
        return [r for r in self.results if r.outcome is not Outcome.NO_DATA]

    @property
    def rollbacks(self) -> int:
        return sum(r.outcome is Outcome.ROLLBACK for r in self.results)


@dataclass(frozen=True)
class Summary:
    releases: int
    false_rollback_rate: float | None
    missed_regression_rate: float | None
    promote_median_s: float | None
    queries: int
    seconds: float
    no_data: int
    known_good: int
    known_good_rollbacks: int
    known_bad: int
    known_bad_missed: int
    aa_runs: int
    aa_rollbacks: int


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def summarize(
    results: Sequence[ReplayResult], aa: AARun | None, *, queries: int, seconds: float
) -> Summary:
    judged = [r for r in results if r.outcome is not Outcome.NO_DATA]
    good = [r for r in judged if r.release.expect is Expect.PROMOTE]
    bad = [r for r in judged if r.release.expect is Expect.ROLLBACK]
    good_rollbacks = sum(r.outcome is Outcome.ROLLBACK for r in good)
    missed = sum(r.outcome is not Outcome.ROLLBACK for r in bad)
    aa_judged = aa.judged if aa is not None else []
    aa_rollbacks = aa.rollbacks if aa is not None else 0
    promote_times = [
        r.decided_after_s
        for r in judged
        if r.outcome is Outcome.PROMOTE and r.decided_after_s is not None
    ]
    return Summary(
        releases=len(results),
        false_rollback_rate=_rate(good_rollbacks + aa_rollbacks, len(good) + len(aa_judged)),
        missed_regression_rate=_rate(missed, len(bad)),
        promote_median_s=statistics.median(promote_times) if promote_times else None,
        queries=queries,
        seconds=round(seconds, 3),
        no_data=len(results) - len(judged),
        known_good=len(good),
        known_good_rollbacks=good_rollbacks,
        known_bad=len(bad),
        known_bad_missed=missed,
        aa_runs=len(aa_judged),
        aa_rollbacks=aa_rollbacks,
    )


def release_json(r: ReplayResult) -> dict[str, Any]:
    return {
        "namespace": r.release.namespace,
        "workload": r.release.workload,
        "start": iso_z(r.release.start),
        "expect": r.release.expect.value if r.release.expect is not None else None,
        "decision": r.outcome.value,
        "decided_after_s": r.decided_after_s,
        "step": r.step,
        "evidence": [
            {
                "check": e.check,
                "canary": e.canary,
                "baseline": e.baseline,
                "threshold": e.threshold,
                "statistic": e.statistic,
                "verdict": e.verdict,
            }
            for e in r.evidence
        ],
        "reason": r.reason,
        "source": r.release.source,
    }


def document(results: Sequence[ReplayResult], aa: AARun | None, summary: Summary) -> dict[str, Any]:
    """The ``--json`` document: ``releases`` and ``summary`` as documented, plus ``aa``."""
    doc: dict[str, Any] = {
        "releases": [release_json(r) for r in results],
        "summary": {
            "releases": summary.releases,
            "false_rollback_rate": summary.false_rollback_rate,
            "missed_regression_rate": summary.missed_regression_rate,
            "promote_median_s": summary.promote_median_s,
            "queries": summary.queries,
            "seconds": summary.seconds,
            "no_data": summary.no_data,
            "known_good": summary.known_good,
            "known_good_rollbacks": summary.known_good_rollbacks,
            "known_bad": summary.known_bad,
            "known_bad_missed": summary.known_bad_missed,
            "aa_runs": summary.aa_runs,
            "aa_rollbacks": summary.aa_rollbacks,
        },
    }
    if aa is not None:
        doc["aa"] = {
            "windows": aa.windows,
            "splits": aa.splits,
            "runs": len(aa.judged),
            "rollbacks": aa.rollbacks,
            "problem": aa.problem,
            "false_rollbacks": [
                release_json(r) for r in aa.results if r.outcome is Outcome.ROLLBACK
            ],
        }
    return doc


def _num(x: float | None, pattern: str = "{:.0f}") -> str:
    return "-" if x is None else pattern.format(x)


def table(results: Sequence[ReplayResult], aa: AARun | None, summary: Summary, steps: int) -> str:
    rows = []
    for r in results:
        mark = ""
        if r.release.expect is Expect.PROMOTE and r.outcome is Outcome.ROLLBACK:
            mark = "  << false rollback"
        elif r.release.expect is Expect.ROLLBACK and r.outcome is Outcome.PROMOTE:
            mark = "  << missed regression"
        rows.append(
            [
                f"{r.release.namespace}/{r.release.workload}",
                human_time(r.release.start),
                r.release.expect.value if r.release.expect else "?",
                r.outcome.value,
                _num(r.decided_after_s, "{:.0f}s"),
                "-" if r.step is None else f"{r.step + 1}/{steps}",
                _shorten(r.reason) + mark,
            ]
        )
    headers = ["RELEASE", "START (UTC)", "EXPECT", "DECISION", "AFTER", "STEP", "WHY"]
    lines = list(text_table(headers, rows))
    lines.append("")
    if aa is not None:
        if aa.problem:
            lines.append(f"A/A: not run: {aa.problem}")
        else:
            lines.append(
                f"A/A: {len(aa.judged)} runs ({aa.windows} healthy windows x up to {aa.splits} "
                f"pod splits), {aa.rollbacks} false rollback(s)"
            )
    pct = "{:.2%}"
    lines.append(
        f"releases {summary.releases} (no data {summary.no_data}); "
        f"false rollback rate {_num(summary.false_rollback_rate, pct)} "
        f"({summary.known_good_rollbacks}/{summary.known_good} known good, "
        f"{summary.aa_rollbacks}/{summary.aa_runs} A/A); "
        f"missed regressions {_num(summary.missed_regression_rate, pct)} "
        f"({summary.known_bad_missed}/{summary.known_bad}); "
        f"median time to promote {_num(summary.promote_median_s, '{:.0f}s')}; "
        f"{summary.queries} queries in {summary.seconds:.1f}s"
    )
    return "\n".join(lines)


def _shorten(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def gate(summary: Summary, max_false_rollback: float) -> tuple[bool, str]:
    """Whether the lane passes the CI gate, and a sentence saying why."""
    rate = summary.false_rollback_rate
    if rate is None:
        return False, (
            "no false-rollback estimate: no release expected to promote and no A/A run had "
            "data; give --releases with expect=promote rows or series with a pod label"
        )
    verdict = "above" if rate > max_false_rollback else "within"
    return rate <= max_false_rollback, (
        f"false rollback rate {rate:.2%} is {verdict} --max-false-rollback {max_false_rollback:.2%}"
    )
