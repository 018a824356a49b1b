"""Realistic audit histories for tests and the audit benchmark.

Releases of a few lanes start one after another (overlapping in time) and each writes the
records the controller writes: seen, (gated), started, then per canary step a
step_advanced and a few measurements, and finally promoting/promoted or
rolling_back/rolled_back (or rejected at the gate). Records come out in time order, and
generation is streaming and seeded: the same arguments give the same history.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from controller.adapters.audit.log import AuditLog, FsyncPolicy
from controller.core.audit import AuditProvenance, AuditRecord, Decision, Evidence

LANES: dict[str, tuple[str, list[str]]] = {
    # lane: (namespace, workloads)
    "docs-site": ("docs", ["docs-web", "docs-search"]),
    "internal-dashboards": ("ops", ["grafana-internal", "ops-board"]),
    "seo-metadata": ("web", ["seo-meta"]),
    "data-jobs": ("data", ["nightly-export", "report-builder"]),
}
AGENTS = [("claude-code", "claude-sonnet-4"), ("codex-agent", "gpt-5"), ("renovate", None)]
STEPS = [10, 25, 50, 100]
MEASUREMENTS_PER_STEP = 2
TICK = timedelta(seconds=30)
ERROR_THRESHOLD = 0.02
LATENCY_THRESHOLD = 0.5


@dataclass(frozen=True)
class HistoryShape:
    release_every: timedelta = timedelta(minutes=1)
    rollback_rate: float = 0.12
    reject_rate: float = 0.03
    gate_rate: float = 0.05


def _release_records(
    rng: random.Random, index: int, start: datetime, shape: HistoryShape
) -> list[AuditRecord]:
    lane = rng.choice(sorted(LANES))
    namespace, workloads = LANES[lane]
    workload = rng.choice(workloads)
    agent, model = rng.choice(AGENTS)
    release = f"{workload}-{hashlib.sha256(f'{index}'.encode()).hexdigest()[:8]}"
    from_rev, to_rev = f"{index:x}a", f"{index + 1:x}b"
    rejected = rng.random() < shape.reject_rate
    provenance = AuditProvenance(
        agent=agent,
        model=model,
        change=f"https://git.example.com/{workload}/pull/{1000 + index}",
        tests=None if rejected else "pytest -q: passed",
        reviewer=rng.choice([None, None, "alice", "bob"]),
    )
    common = {
        "lane": lane,
        "namespace": namespace,
        "workload": workload,
        "release": release,
        "from_revision": from_rev,
        "to_revision": to_rev,
        "from_images": [f"registry.example.com/{workload}:1.{index}"],
        "to_images": [f"registry.example.com/{workload}:1.{index + 1}"],
        "provenance": provenance,
        "instance": "changelane-0",
    }
    clock = itertools.count()

    def at() -> datetime:
        return start + next(clock) * TICK

    out = [
        AuditRecord(
            time=at(),
            decision=Decision.RELEASE_SEEN,
            reason="NewPodTemplate",
            phase_to="Pending",
            **common,
        )
    ]
    if rejected:
        out.append(
            AuditRecord(
                time=at(),
                decision=Decision.REJECTED,
                reason="ProvenanceMissing",
                message="provenance: tests evidence missing (lane requires tests)",
                phase_from="Pending",
                phase_to="Rejected",
                **common,
            )
        )
        return out
    if rng.random() < shape.gate_rate:
        out.append(
            AuditRecord(
                time=at(),
                decision=Decision.GATED,
                reason="OutsideChangeWindow",
                message="changeWindow: outside Mon-Fri 08:00-18:00 Europe/Berlin",
                phase_from="Pending",
                phase_to="Gated",
                **common,
            )
        )
    out.append(
        AuditRecord(
            time=at(),
            decision=Decision.STARTED,
            reason="GatesPassed",
            phase_to="Progressing",
            **common,
        )
    )
    fail_step = rng.randrange(len(STEPS)) if rng.random() < shape.rollback_rate else None
    base_err = rng.uniform(0.002, 0.008)
    base_lat = rng.uniform(0.12, 0.3)
    for step, weight in enumerate(STEPS):
        out.append(
            AuditRecord(
                time=at(),
                decision=Decision.STEP_ADVANCED,
                reason="StepPassed" if step else "CanaryStarted",
                step=step,
                weight=weight,
                actions=[f"scale canary to {weight}%", f"flag rollout {weight}%"],
                result="applied",
                phase_from="Progressing",
                phase_to="Progressing",
                **common,
            )
        )
        for tick in range(MEASUREMENTS_PER_STEP):
            failing = fail_step == step and tick == MEASUREMENTS_PER_STEP - 1
            evidence = _evidence(rng, base_err, base_lat, failing)
            out.append(
                AuditRecord(
                    time=at(),
                    decision=Decision.MEASUREMENT,
                    reason="CheckFailed" if failing else "ChecksPassed",
                    step=step,
                    weight=weight,
                    evidence=evidence,
                    **common,
                )
            )
            if failing:
                failed = [e for e in evidence if e.verdict == "Fail"]
                why = "; ".join(e.message for e in failed)
                out.append(
                    AuditRecord(
                        time=at(),
                        decision=Decision.ROLLING_BACK,
                        reason="CheckFailed",
                        message=why,
                        step=step,
                        weight=weight,
                        evidence=failed,
                        actions=["flag off", "scale canary to 0"],
                        result="applied",
                        phase_from="Progressing",
                        phase_to="RollingBack",
                        **common,
                    )
                )
                out.append(
                    AuditRecord(
                        time=at(),
                        decision=Decision.ROLLED_BACK,
                        reason="CheckFailed",
                        message=why,
                        evidence=failed,
                        weight=0,
                        phase_from="RollingBack",
                        phase_to="RolledBack",
                        **common,
                    )
                )
                return out
    last = out[-1].evidence
    out.append(
        AuditRecord(
            time=at(),
            decision=Decision.PROMOTED,
            reason="AllStepsPassed",
            message="all checks passed at 100%",
            evidence=last,
            weight=100,
            actions=["stable takes the new spec", "canary to 0"],
            result="applied",
            phase_from="Promoting",
            phase_to="Promoted",
            **common,
        )
    )
    return out


def _evidence(
    rng: random.Random, base_err: float, base_lat: float, failing: bool
) -> list[Evidence]:
    err_baseline = base_err * rng.uniform(0.9, 1.1)
    err_canary = rng.uniform(0.05, 0.2) if failing else base_err * rng.uniform(0.8, 1.2)
    p = rng.uniform(0.0001, 0.004) if failing else rng.uniform(0.2, 0.9)
    err_verdict = "Fail" if failing else "Pass"
    lat_baseline = base_lat * rng.uniform(0.95, 1.05)
    lat_canary = base_lat * rng.uniform(0.9, 1.15)
    return [
        Evidence(
            check="error-rate",
            verdict=err_verdict,
            canary=round(err_canary, 5),
            baseline=round(err_baseline, 5),
            threshold=ERROR_THRESHOLD,
            statistic=f"msprt p={p:.4f}",
            query='sum(rate(http_requests_total{code=~"5..",pod=~"$canary"}[1m]))',
            message=(
                f"error-rate {err_canary:.4f} > threshold {ERROR_THRESHOLD} "
                f"(baseline {err_baseline:.4f}, msprt p={p:.4f})"
                if failing
                else ""
            ),
        ),
        Evidence(
            check="latency-p99",
            verdict="Pass",
            canary=round(lat_canary, 4),
            baseline=round(lat_baseline, 4),
            threshold=LATENCY_THRESHOLD,
            statistic=f"ratio={lat_canary / lat_baseline:.2f}",
            query="histogram_quantile(0.99, ...)",
        ),
    ]


def _mean_records_per_release(shape: HistoryShape) -> float:
    """What ``_release_records`` writes on average, so a history ends near ``end``."""
    per_step = 1 + MEASUREMENTS_PER_STEP
    promoted = len(STEPS) * per_step + 1
    rolled_back = per_step * (len(STEPS) + 1) / 2 + 2  # fails at a uniformly drawn step
    admitted = 2 + shape.gate_rate + (1 - shape.rollback_rate) * promoted
    admitted += shape.rollback_rate * rolled_back
    return shape.reject_rate * 2 + (1 - shape.reject_rate) * admitted


def generate_history(
    records: int,
    *,
    end: datetime,
    seed: int = 0,
    shape: HistoryShape | None = None,
) -> Iterator[AuditRecord]:
    """``records`` audit records in time order, the last ones close to ``end``."""
    shape = shape or HistoryShape()
    rng = random.Random(seed)  # noqa: S311 (test data, not crypto)
    start = end - (records / _mean_records_per_release(shape)) * shape.release_every
    pending: list[tuple[datetime, int, AuditRecord]] = []
    order = itertools.count()
    emitted = 0
    for index in itertools.count():
        release_start = start + index * shape.release_every
        # Everything queued before this release starts can go out, in time order.
        while pending and pending[0][0] < release_start and emitted < records:
            yield heapq.heappop(pending)[2]
            emitted += 1
        if emitted >= records:
            return
        jitter = timedelta(seconds=rng.uniform(0, 20))
        for record in _release_records(rng, index, release_start + jitter, shape):
            heapq.heappush(pending, (record.time, next(order), record))
        if release_start > end + timedelta(days=1) and not pending:  # pragma: no cover
            return


def write_history(
    path: Path, records: int, *, end: datetime, seed: int = 0, shape: HistoryShape | None = None
) -> None:
    """Write a generated history as a hash-chained audit log (no fsync: test data)."""
    with AuditLog(path, fsync=FsyncPolicy.NEVER) as log:
        for record in generate_history(records, end=end, seed=seed, shape=shape):
            log.append(record)
