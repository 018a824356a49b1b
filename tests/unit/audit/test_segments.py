"""Several segments checked as one chain, and against the anchored head."""

from __future__ import annotations

import json
from pathlib import Path

from controller.adapters.audit.log import AuditLog, FsyncPolicy
from controller.adapters.audit.segments import AUDIT_LINE_EVENT, Head, verify_segments
from tests.notify.records import record


def _write(path: Path, first: int, count: int, start: tuple[int, str] | None = None) -> Head:
    with AuditLog(path, fsync=FsyncPolicy.NEVER, start=start) as log:
        for n in range(first, first + count):
            log.append(record(n=n, id=f"uid/{n}"))
        return Head(log.seq, log.head_hash)


def _two_segments(tmp_path: Path) -> tuple[Path, Path, Head]:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    head_a = _write(a, 1, 3)
    head_b = _write(b, 4, 2, start=(head_a.seq, head_a.hash))
    return a, b, head_b


def test_two_leaders_segments_are_one_chain(tmp_path: Path) -> None:
    a, b, head = _two_segments(tmp_path)
    result = verify_segments([b, a], head)
    assert result.ok and result.records == 5 and result.head == head


def test_pod_logs_carry_the_same_lines(tmp_path: Path) -> None:
    a, b, head = _two_segments(tmp_path)
    pod_log = tmp_path / "pod-b.log"
    lines = [
        json.dumps({"event": "controller started"}),
        *(
            "2026-11-29T22:00:00Z " + json.dumps({"event": AUDIT_LINE_EVENT, "line": raw})
            for raw in b.read_text().splitlines()
        ),
    ]
    pod_log.write_text("\n".join(lines) + "\n")
    assert verify_segments([a, pod_log], head).ok
    assert verify_segments([a, b, pod_log], head).ok  # the same lines twice are one


def test_a_missing_segment_a_cut_tail_and_a_forged_append_are_reported(tmp_path: Path) -> None:
    a, b, head = _two_segments(tmp_path)
    missing = verify_segments([b], head)
    assert not missing.ok and "seq 1 is missing" in missing.problems[0]
    lines = b.read_bytes().splitlines(keepends=True)
    b.write_bytes(b"".join(lines[:-1]))
    cut = verify_segments([a, b], head)
    assert not cut.ok and "1 record(s) cut off the end" in cut.problems[0]
    b.write_bytes(b"".join(lines))
    _write(b, 6, 1)  # a valid hash chain, but no leader anchored it
    forged = verify_segments([a, b], head)
    assert not forged.ok and "after the anchored head seq 5" in forged.problems[0]


def test_an_edited_line_is_reported(tmp_path: Path) -> None:
    a, b, head = _two_segments(tmp_path)
    a.write_bytes(a.read_bytes().replace(b"claude-code", b"claude-kode", 1))
    result = verify_segments([a, b], head)
    assert not result.ok and "seq 1: content does not match its hash" in result.problems[0]


def test_a_record_the_dead_leader_never_anchored_is_an_orphan_not_damage(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    anchored = _write(a, 1, 3)
    _write(a, 4, 1)  # appended, then the leader died before anchoring it
    head = _write(b, 40, 2, start=(anchored.seq, anchored.hash))
    result = verify_segments([a, b], head)
    assert result.ok, result.problems
    assert result.records == 5
    assert result.warnings and "seq 4 orphaned" in result.warnings[0]
