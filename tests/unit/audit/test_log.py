from __future__ import annotations

import hashlib
import itertools
import json
import threading
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.adapters.audit import log as audit_log
from controller.adapters.audit.log import (
    GENESIS_HASH,
    AuditLog,
    AuditLogError,
    FsyncPolicy,
    Problem,
    ReadReport,
    read_records,
    verify,
)
from controller.bench.audit_history import generate_history, write_history
from controller.core.audit import AuditRecord, Decision

from .conftest import END


def _record(i: int) -> AuditRecord:
    return AuditRecord(
        time=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
        lane="docs-site",
        release=f"r{i}",
        decision=Decision.MEASUREMENT,
        reason="ChecksPassed",
        message=f"tick {i} ünïcode",
    )


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def test_each_line_chains_to_the_previous_and_verifies_without_this_package(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditLog(path) as log:
        assert [log.append(_record(i)) for i in range(3)] == [1, 2, 3]
    prev = GENESIS_HASH
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        obj = json.loads(raw)
        assert obj["seq"] == number and obj["prev_hash"] == prev
        # The documented recipe: drop the trailing hash member, hash the canonical body.
        body = {k: v for k, v in obj.items() if k != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(canonical.encode()).hexdigest() == obj["hash"]
        prev = obj["hash"]
    result = verify(path)
    assert result.ok and result.records == 3 and result.head_seq == 3 and result.head_hash == prev


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditLog(path) as log:
        log.append(_record(0))
    with AuditLog(path) as log:
        assert log.seq == 1
        assert log.append(_record(1)) == 2
    assert verify(path).ok and verify(path).records == 2


def test_empty_log_is_intact(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    result = verify(path)
    assert result.ok and result.records == 0 and result.head_hash == GENESIS_HASH


def test_edited_line_is_named(history_log: Path) -> None:
    lines = _lines(history_log)
    lines[41] = lines[41].replace(b'"lane":"', b'"lane":"x', 1)
    _write(history_log, lines)
    result = verify(history_log)
    assert result.first_bad is not None
    assert (result.first_bad.line, result.first_bad.problem) == (42, Problem.EDITED)
    assert result.records == 41


def test_edit_with_recomputed_hash_breaks_the_next_link(history_log: Path) -> None:
    lines = _lines(history_log)
    obj = json.loads(lines[9])
    obj["reason"] = "Forged"
    body = {k: v for k, v in obj.items() if k != "hash"}
    prefix = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(prefix.encode()).hexdigest()
    lines[9] = (prefix[:-1] + f',"hash":"{digest}"}}\n').encode()
    _write(history_log, lines)
    bad = verify(history_log).first_bad
    assert bad is not None and (bad.line, bad.problem) == (11, Problem.CHAIN)


@pytest.mark.parametrize(
    ("damage", "line", "problem"),
    [
        (lambda ls: ls[:20] + ls[21:], 21, Problem.SEQUENCE),  # deletion
        (lambda ls: [*ls[:20], ls[21], ls[20], *ls[22:]], 21, Problem.SEQUENCE),  # reorder
        (lambda ls: ls[1:], 1, Problem.SEQUENCE),  # first line deleted
        (lambda ls: [*ls[:5], b"not json\n", *ls[5:]], 6, Problem.NOT_JSON),  # insertion
        (lambda ls: [*ls[:5], b"{}\n", *ls[6:]], 6, Problem.NO_ENVELOPE),
        (lambda ls: [*ls[:-1], ls[-1][:50]], 600, Problem.TRUNCATED),  # crash mid-write
    ],
    ids=["deleted", "reordered", "first-deleted", "inserted", "no-envelope", "truncated"],
)
def test_damage_is_named_by_line(history_log: Path, damage, line: int, problem: Problem) -> None:  # type: ignore[no-untyped-def]
    _write(history_log, damage(_lines(history_log)))
    bad = verify(history_log).first_bad
    assert bad is not None
    assert (bad.line, bad.problem) == (line, problem), str(bad)


def test_torn_tail_is_set_aside_on_reopen_and_the_chain_continues(history_log: Path) -> None:
    lines = _lines(history_log)
    torn = lines[-1][:70]
    _write(history_log, [*lines[:-1], torn])
    with AuditLog(history_log) as log:
        assert log.seq == 599
        log.append(_record(1))
    assert verify(history_log).ok and verify(history_log).records == 600
    assert (history_log.parent / "audit.jsonl.torn").read_bytes() == torn + b"\n"


def test_reopen_refuses_a_corrupt_last_line(history_log: Path) -> None:
    lines = _lines(history_log)
    _write(history_log, [*lines[:-1], b'{"seq": 600}\n'])
    with pytest.raises(AuditLogError, match="last line"):
        AuditLog(history_log)


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditLog(path), pytest.raises(AuditLogError, match="another process"):
        AuditLog(path)
    AuditLog(path).close()  # the lock goes with close


def test_concurrent_appenders_keep_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditLog(path, fsync=FsyncPolicy.NEVER) as log:

        def work(base: int) -> None:
            for i in range(150):
                log.append(_record(base + i))

        threads = [threading.Thread(target=work, args=(t * 1000,)) for t in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    result = verify(path)
    assert result.ok and result.records == 900


def test_a_failed_write_leaves_no_torn_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog(path, fsync=FsyncPolicy.INTERVAL, fsync_interval=0.0)
    log.append(_record(0))
    real_write_all = audit_log._write_all

    def half_then_fail(fd: int, data: bytes) -> None:
        real_write_all(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit_log, "_write_all", half_then_fail)
    with pytest.raises(AuditLogError, match="No space left"):
        log.append(_record(1))
    monkeypatch.undo()
    assert log.append(_record(2)) == 2
    log.close()
    assert verify(path).ok and verify(path).records == 2


def test_reading_a_damaged_log_yields_the_good_part_and_says_what_it_skipped(
    history_log: Path,
) -> None:
    lines = _lines(history_log)
    lines[99] = lines[99].replace(b'"reason":"', b'"reason":"X', 1)  # edited
    lines[199] = b"garbage\n"
    del lines[300]
    lines[-1] = lines[-1][:40]  # torn
    _write(history_log, lines)
    report = ReadReport(str(history_log))
    records = list(read_records(history_log, report))
    assert len(records) == len(lines) - 3 == report.records
    assert [(b.line, b.problem) for b in report.examples] == [
        (100, Problem.EDITED),
        (200, Problem.NOT_JSON),
        (len(lines), Problem.TRUNCATED),
    ]
    assert report.first_chain_break is not None and report.first_chain_break.line == 301
    warnings = "\n".join(report.warnings())
    assert "line 100: edited" in warnings and "chain broken at line 301" in warnings


def test_reading_since_seeks_but_returns_every_record_in_the_window(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    write_history(path, 3000, end=END, seed=3)
    since = END - timedelta(hours=1)
    full = [r for r in read_records(path, ReadReport("x")) if r.time >= since]
    report = ReadReport("x")
    sought = list(read_records(path, report, since=since))
    assert [r for r in sought if r.time >= since] == full
    assert len(full) > 100
    assert report.records < 3000 / 2  # it really skipped the old part


def test_seeking_reports_true_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    write_history(path, 3000, end=END, seed=3)
    lines = _lines(path)
    lines[2990] = b"garbage\n"
    _write(path, lines)
    report = ReadReport("x")
    list(read_records(path, report, since=END - timedelta(minutes=30)))
    assert [b.line for b in report.examples] == [2991]


def _peak_bytes(fn) -> int:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_verify_and_read_stream_in_constant_memory(tmp_path: Path) -> None:
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    write_history(small, 500, end=END)
    write_history(large, 5000, end=END)
    checks = {
        "verify": lambda p: verify(p),
        "read": lambda p: sum(1 for _ in read_records(p, ReadReport("x"))),
    }
    for check in checks.values():
        small_peak = _peak_bytes(lambda check=check: check(small))
        large_peak = _peak_bytes(lambda check=check: check(large))
        # Ten times the lines, (nearly) the same peak: nothing is held per line.
        assert large_peak < small_peak * 1.5 + 64 * 1024, (small_peak, large_peak)


def test_generated_history_is_time_ordered_and_complete() -> None:
    records = list(generate_history(2000, end=END, seed=1))
    assert len(records) == 2000
    assert all(a.time <= b.time for a, b in itertools.pairwise(records))
    decisions = {r.decision for r in records}
    assert {Decision.PROMOTED, Decision.ROLLED_BACK, Decision.MEASUREMENT} <= decisions
    assert END - timedelta(minutes=20) < records[-1].time <= END + timedelta(minutes=20)


def test_reading_since_a_small_log_reads_it_all(tmp_path: Path) -> None:
    path = tmp_path / "small.jsonl"
    write_history(path, 40, end=END)
    records = list(read_records(path, ReadReport("x"), since=END - timedelta(days=1)))
    assert len(records) == 40


def test_a_record_flushed_twice_is_written_once_even_after_reopening(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from controller.adapters.audit.log import AuditLog, verify
    from controller.core.audit import AuditRecord, Decision

    record = AuditRecord(
        id="uid-1/7",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        lane="docs",
        decision=Decision.PROMOTED,
        reason="promotion complete",
    )
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        log.append(record)
        log.append(record)
    with AuditLog(path) as log:  # a restarted controller flushing its outbox again
        log.append(record)
        log.append(record.model_copy(update={"id": "uid-1/8"}))
    assert len(path.read_text().splitlines()) == 2
    assert verify(path).ok
