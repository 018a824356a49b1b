"""Benchmark: how fast does on-call get "what changed in the last hour, and why was it
rolled back?" out of a long audit log, and how much memory does it take?

It writes a realistic hash-chained log of N records ending now, then times (median of
several runs, in one process) the last-hour query, the same query over the whole log, the
command end to end (a fresh ``python -m controller audit`` process, interpreter start-up
included) and ``verify``; and it measures peak traced memory at N and at N/10, whose ratio
shows whether memory grows with the log.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import controller
from controller.adapters.audit.log import verify
from controller.adapters.audit.source import FileAuditSource
from controller.bench.audit_history import write_history
from controller.core.audit_query import AuditFilter, Outcome, ReleaseSummary, iter_summaries

TARGET_SECONDS = 1.0


@dataclass(frozen=True)
class Timing:
    runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def _time(fn: Callable[[], object], runs: int) -> Timing:
    fn()  # warm the page cache and imports; not counted
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return Timing(samples)


def _peak(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _last_hour_rollbacks(path: Path, now: datetime) -> int:
    flt = AuditFilter(since=now - timedelta(hours=1), outcome=Outcome.ROLLED_BACK)
    return _count_releases(iter_summaries(FileAuditSource(path).records(since=flt.since), flt))


def _all_releases(path: Path) -> int:
    return _count_releases(iter_summaries(FileAuditSource(path).records(), AuditFilter()))


def _count_releases(items: Iterable[object]) -> int:
    return sum(1 for item in items if isinstance(item, ReleaseSummary))


def _cli(path: Path) -> None:
    package_root = str(Path(controller.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": package_root}
    query = ["audit", "--file", str(path), "--since", "1h", "--outcome", "rolled_back", "--json"]
    subprocess.run(
        [sys.executable, "-m", "controller", *query],
        check=True,
        capture_output=True,
        env=env,
    )


def run(records: int = 100_000, runs: int = 5, workdir: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        now = datetime.now(UTC)
        big, small = Path(tmp) / "audit.jsonl", Path(tmp) / "audit-small.jsonl"
        started = time.perf_counter()
        write_history(big, records, end=now)
        write_seconds = time.perf_counter() - started
        write_history(small, max(records // 10, 1), end=now)

        rollbacks = _last_hour_rollbacks(big, now)
        releases = _all_releases(big)
        last_hour = _time(lambda: _last_hour_rollbacks(big, now), runs)
        full = _time(lambda: _all_releases(big), max(1, runs // 2))
        cli = _time(lambda: _cli(big), max(1, runs // 2))
        verified = verify(big)
        verify_time = _time(lambda: verify(big), max(1, runs // 2))

        measured: dict[str, Callable[[Path], object]] = {
            "last_hour_query": lambda p: _last_hour_rollbacks(p, now),
            "read_all_records": lambda p: sum(1 for _ in FileAuditSource(p).records()),
            "verify": verify,
            # Holds only the releases in flight; finished ones are handed out at once.
            "whole_log_query": _all_releases,
        }
        peaks = {
            name: (_peak(lambda fn=fn: fn(small)), _peak(lambda fn=fn: fn(big)))  # type: ignore[misc]
            for name, fn in measured.items()
        }
        return {
            "records": records,
            "file_bytes": big.stat().st_size,
            "write_seconds": write_seconds,
            "releases": releases,
            "rolled_back_last_hour": rollbacks,
            "verify_ok": verified.ok,
            "last_hour_query_seconds": {"median": last_hour.median, "runs": last_hour.runs},
            "cli_last_hour_seconds": {"median": cli.median, "runs": cli.runs},
            "full_log_query_seconds": {"median": full.median, "runs": full.runs},
            "verify_seconds": {"median": verify_time.median, "runs": verify_time.runs},
            "verify_records_per_second": records / verify_time.median,
            "target_seconds": TARGET_SECONDS,
            "target_met": cli.median < TARGET_SECONDS,
            "peak_memory_bytes": {
                name: {
                    "records_div_10": small_peak,
                    "records": big_peak,
                    "ratio": big_peak / small_peak,
                }
                for name, (small_peak, big_peak) in peaks.items()
            },
        }


def render(result: dict[str, Any]) -> str:
    rows = [
        ("records", f"{result['records']:,}"),
        ("log size", f"{result['file_bytes'] / 1e6:.1f} MB"),
        ("releases in the log", f"{result['releases']:,}"),
        ("rolled back in the last hour", str(result["rolled_back_last_hour"])),
        ("last-hour query (in process), median", _ms(result["last_hour_query_seconds"])),
        ("last-hour command (new process), median", _ms(result["cli_last_hour_seconds"])),
        (
            f"target < {result['target_seconds']:.0f} s for the command",
            "met" if result["target_met"] else "MISSED",
        ),
        ("whole-log query (no --since), median", _ms(result["full_log_query_seconds"])),
        ("verify, median", _ms(result["verify_seconds"])),
        ("verify throughput", f"{result['verify_records_per_second']:,.0f} records/s"),
    ]
    for name, peak in result["peak_memory_bytes"].items():
        rows.append(
            (
                f"peak memory {name} (N/10 -> N)",
                f"{peak['records_div_10'] / 1e6:.2f} -> {peak['records'] / 1e6:.2f} MB "
                f"(x{peak['ratio']:.2f})",
            )
        )
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _ms(timing: dict[str, Any]) -> str:
    runs = ", ".join(f"{t * 1000:.0f}" for t in timing["runs"])
    return f"{timing['median'] * 1000:.0f} ms  (runs: {runs})"
