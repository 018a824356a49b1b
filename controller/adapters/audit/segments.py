"""One audit chain from several segments, checked against the head anchored in the cluster.

With leader election and a per-pod volume, each leadership term appends to the log of the
pod that leads then, continuing ``seq``/``prev_hash`` from the head the previous leader
anchored (:mod:`controller.adapters.audit.anchor`). The chain is therefore spread over
several files (one per replica) and the controllers' JSON logs (every appended line is also
logged as an ``audit_line`` event). :func:`verify_segments` merges them by ``seq`` and
checks them as one chain:

* every line's hash matches its content (an edited line is caught);
* ``seq`` runs 1, 2, 3, ... without a hole (a deleted line is caught) and each
  ``prev_hash`` is the previous record's hash (an inserted or reordered line is caught);
* the same ``seq`` seen twice (a file and a log, two files) must be the same line; two
  different lines with one ``seq`` are a fork;
* with the anchored head, the chain must end exactly there: a chain that ends before it
  lost its tail; records after it were never anchored by a leader (a forged append).

A leader that dies after appending a record and before anchoring it leaves one record that
no later leader continued from: it is reported as ``orphaned`` (a warning, not damage).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from controller.adapters.audit.log import GENESIS_HASH, MAX_LINE_BYTES, line_digest

AUDIT_LINE_EVENT = "audit_line"
#: The ConfigMap holding the anchored head (in the controller's namespace).
ANCHOR_NAME = "changelane-audit-head"


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


@dataclass(frozen=True)
class _Line:
    seq: int
    prev_hash: str
    hash: str
    raw: bytes
    where: str  # "file:line"


@dataclass
class SegmentsResult:
    records: int = 0
    head: Head = field(default_factory=lambda: Head(0, GENESIS_HASH))
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    anchored: Head | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _audit_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Chain lines of one segment: an audit log's own lines, or the ``audit_line`` events
    of a controller's JSON log (``kubectl logs``), with other log lines skipped."""
    with open(path, "rb") as stream:
        for number, data in enumerate(iter(lambda: stream.readline(MAX_LINE_BYTES + 1), b""), 1):
            line = data.rstrip(b"\n")
            start = line.find(b"{")  # `kubectl logs --timestamps` puts a time first
            if start < 0:
                continue
            line = line[start:]
            try:
                obj = json.loads(line)
            except ValueError:
                yield number, line  # reported as unreadable below
                continue
            if not isinstance(obj, dict):
                continue
            if obj.get("event") == AUDIT_LINE_EVENT and isinstance(obj.get("line"), str):
                yield number, obj["line"].encode("utf-8")
            elif "seq" in obj and "hash" in obj:
                yield number, line


def _parse(path: Path, number: int, raw: bytes, result: SegmentsResult) -> _Line | None:
    where = f"{path}:{number}"
    try:
        obj = json.loads(raw)
    except ValueError as err:
        result.problems.append(f"{where}: not JSON ({err})")
        return None
    seq, prev, digest = obj.get("seq"), obj.get("prev_hash"), obj.get("hash")
    if not (isinstance(seq, int) and isinstance(prev, str) and isinstance(digest, str)):
        result.problems.append(f"{where}: missing seq, prev_hash or hash")
        return None
    if line_digest(raw) != digest:
        result.problems.append(f"{where}: seq {seq}: content does not match its hash (edited)")
        return None
    return _Line(seq, prev, digest, raw, where)


def verify_segments(
    paths: Sequence[str | os.PathLike[str]], anchored: Head | None = None
) -> SegmentsResult:
    result = SegmentsResult(anchored=anchored)
    by_seq: dict[int, list[_Line]] = {}
    for p in paths:
        path = Path(p)
        for number, raw in _audit_lines(path):
            line = _parse(path, number, raw, result)
            if line is None:
                continue
            same = by_seq.setdefault(line.seq, [])
            if not any(x.hash == line.hash for x in same):
                same.append(line)
    if not by_seq:
        result.problems.append("no audit records in the given segments")
        return result
    _walk(by_seq, result)
    if anchored is not None:
        _against_anchor(result, anchored, by_seq)
    return result


def _walk(by_seq: dict[int, list[_Line]], result: SegmentsResult) -> None:
    """Follow the chain from seq 1; at a fork, follow the line the next record continues."""
    prev_hash, seq = GENESIS_HASH, 1
    last = max(by_seq)
    while seq <= last:
        candidates = by_seq.get(seq)
        if not candidates:
            result.problems.append(
                f"seq {seq} is missing (deleted, or a segment was not given); the chain "
                f"resumes at seq {min(s for s in by_seq if s > seq)}"
            )
            return
        linked = [c for c in candidates if c.prev_hash == prev_hash]
        if not linked:
            result.problems.append(
                f"{candidates[0].where}: seq {seq}: prev_hash is not the hash of seq {seq - 1} "
                "(a record before it was edited, deleted or moved)"
            )
            return
        chosen = linked[0]
        if len(linked) > 1:
            nxt = by_seq.get(seq + 1, [])
            continued = [c for c in linked if any(n.prev_hash == c.hash for n in nxt)]
            if len(continued) != 1:
                where = ", ".join(c.where for c in linked)
                result.problems.append(f"seq {seq}: the chain forks ({where})")
                return
            chosen = continued[0]
            for orphan in linked:
                if orphan is not chosen:
                    result.warnings.append(
                        f"{orphan.where}: seq {seq} orphaned: written by a leader that stopped "
                        "before anchoring it; the next leader continued from the anchored head"
                    )
        result.records += 1
        result.head = Head(seq, chosen.hash)
        prev_hash, seq = chosen.hash, seq + 1


def _against_anchor(result: SegmentsResult, anchored: Head, by_seq: dict[int, list[_Line]]) -> None:
    head = result.head
    if not result.ok:
        return
    if head.seq < anchored.seq:
        result.problems.append(
            f"the chain ends at seq {head.seq} but the cluster anchored seq {anchored.seq}: "
            f"{anchored.seq - head.seq} record(s) cut off the end (or a segment is missing)"
        )
    elif head.seq == anchored.seq and head.hash != anchored.hash:
        result.problems.append(
            f"seq {head.seq} is not the record the cluster anchored (hash {head.hash[:12]} vs "
            f"anchored {anchored.hash[:12]}): the last record was replaced"
        )
    elif head.seq > anchored.seq:
        anchored_line = [x for x in by_seq.get(anchored.seq, []) if x.hash == anchored.hash]
        if not anchored_line:
            result.problems.append(
                f"the anchored head seq {anchored.seq} ({anchored.hash[:12]}) is not in the chain"
            )
        extra = head.seq - anchored.seq
        result.problems.append(
            f"{extra} record(s) after the anchored head seq {anchored.seq}: never anchored by "
            "a leader (appended by hand, or a leader stopped between appending and anchoring "
            "and none has written since)"
        )
