"""The durable, hash-chained audit log: JSON lines, one :class:`AuditRecord` a line.

Line format
    Each line is the record's JSON (``None`` fields left out) plus three envelope members:
    ``seq`` (1, 2, 3, ... equal to the line number), ``prev_hash`` (the previous line's
    ``hash``; 64 zeros on line 1) and ``hash``. The writer serialises the record and ``seq``
    and ``prev_hash`` as canonical JSON (sorted keys, no whitespace, UTF-8) and appends
    ``"hash"`` as the last member::

        hash = sha256(canonical_json(record + seq + prev_hash))
        line = canonical_json[:-1] + ',"hash":"<hash>"}' + "\\n"

    so anyone can check a line without this package: cut the trailing ``,"hash":"…"}``,
    put back ``}`` and hash the bytes. Editing a line breaks its hash; deleting, inserting
    or reordering lines breaks ``seq`` and the ``prev_hash`` chain. Cutting whole lines off
    the *end* is the one change a chain cannot show by itself: compare the head (last
    ``seq`` and ``hash``, printed by ``changelane audit verify``) with a copy kept elsewhere.

Durability (``FsyncPolicy``)
    Every record is written with a single ``write(2)`` on an ``O_APPEND`` descriptor, so a
    line is never interleaved or buffered in user space. ``ALWAYS`` (the default) fsyncs
    after every record: decisions are a few per minute, and an acknowledged decision must
    survive a crash. ``INTERVAL`` fsyncs at most every ``fsync_interval`` seconds and on
    close (a crash loses at most that window); ``NEVER`` leaves it to the kernel
    (benchmarks, tests).

Concurrency and recovery
    Appends from many threads of one process are serialised by a lock. A second process
    opening the same log for appending is refused (an exclusive ``flock``): only the
    elected leader writes. Reopening a log continues the chain from its last line. A
    crash in the middle of a write leaves a torn last line without its newline; it was
    never acknowledged, so reopening moves those bytes to ``<log>.torn`` and truncates
    them away, leaving an intact chain to continue.
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from controller.core.audit import AuditRecord

GENESIS_HASH = "0" * 64
ENVELOPE_FIELDS = ("seq", "prev_hash", "hash")
MAX_LINE_BYTES = 1 << 20  # a record is a few KiB; anything longer is damage, not data
_HASH_SUFFIX_LEN = len(',"hash":"') + 64 + len('"}')
_TAIL_BLOCK = 64 * 1024


#: How many recent record ids are remembered to drop a record written twice, and how far
#: back from the end of an existing log they are read at open.
RECENT_IDS = 10_000
RECENT_ID_TAIL_BYTES = 8 * 1024 * 1024


class FsyncPolicy(StrEnum):
    ALWAYS = "always"
    INTERVAL = "interval"
    NEVER = "never"


class AuditLogError(Exception):
    """The audit log cannot be opened or appended to."""


def canonical_json(body: dict[str, Any]) -> str:
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def encode_line(record: AuditRecord, seq: int, prev_hash: str) -> tuple[bytes, str]:
    """The line for ``record`` (with its newline) and its hash."""
    body = record.model_dump(mode="json", exclude_none=True)
    clash = set(ENVELOPE_FIELDS) & body.keys()
    if clash:  # the envelope owns these names; a record field by that name would be lost
        raise AuditLogError(f"audit record field(s) {sorted(clash)} are reserved by the log")
    body["seq"] = seq
    body["prev_hash"] = prev_hash
    prefix = canonical_json(body).encode("utf-8")
    digest = hashlib.sha256(prefix).hexdigest()
    return prefix[:-1] + b',"hash":"' + digest.encode("ascii") + b'"}\n', digest


def line_digest(line: bytes) -> str | None:
    """Recompute the hash of one line (without its newline); ``None`` if it has no
    trailing ``"hash"`` member where the writer puts it."""
    if len(line) <= _HASH_SUFFIX_LEN or not line.startswith(b"{"):
        return None
    suffix = line[-_HASH_SUFFIX_LEN:]
    if not (suffix.startswith(b',"hash":"') and suffix.endswith(b'"}')):
        return None
    return hashlib.sha256(line[:-_HASH_SUFFIX_LEN] + b"}").hexdigest()


# --------------------------------------------------------------------------- writing


class AuditLog:
    """Appends hash-chained records to one file. Use as a context manager or ``close()``.

    It is also an audit sink (``emit``), so the fan-out can hold it beside the others.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = FsyncPolicy.ALWAYS,
        fsync_interval: float = 1.0,
        start: tuple[int, str] | None = None,
    ) -> None:
        """``start`` (seq, hash): where an empty log continues a chain that other segments
        began (a new leader continuing from the anchored head)."""
        self.path = Path(path)
        self.fsync = FsyncPolicy(fsync)
        self.fsync_interval = fsync_interval
        self._lock = threading.Lock()
        created = not self.path.exists()
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as err:
            raise AuditLogError(f"cannot open audit log {self.path}: {err.strerror}") from err
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise AuditLogError(
                f"audit log {self.path} is held by another process; only one writer (the "
                "leader) may append"
            ) from None
        try:
            if created and self.fsync is not FsyncPolicy.NEVER:
                _fsync_dir(self.path.parent)
            self._size = self._recover_torn_tail()
            self.seq, self.head_hash = self._read_head()
            if start is not None and self._size == 0:
                self.seq, self.head_hash = start
            self.last_line: bytes | None = None
            self._recent_ids = self._read_recent_ids()
        except BaseException:
            os.close(self._fd)
            raise
        self._last_fsync = time.monotonic()
        self._closed = False

    # The chain continues from the last complete line.
    def _read_head(self) -> tuple[int, str]:
        if self._size == 0:
            return 0, GENESIS_HASH
        last = _last_line(self._fd, self._size)
        where = f"audit log {self.path}, last line"
        try:
            obj = json.loads(last)
        except ValueError as err:
            raise AuditLogError(
                f"{where} is not JSON ({err}); run `changelane audit verify` before appending"
            ) from None
        seq, digest = (obj.get("seq"), obj.get("hash")) if isinstance(obj, dict) else (None, None)
        if not isinstance(seq, int) or not isinstance(digest, str) or line_digest(last) != digest:
            raise AuditLogError(
                f"{where} has no valid seq/hash; run `changelane audit verify` before appending"
            )
        return seq, digest

    def _read_recent_ids(self) -> collections.OrderedDict[str, None]:
        """Ids of the records near the end, so a record flushed twice (a controller that
        stopped between writing it and clearing its outbox) is written once."""
        ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        start = max(0, self._size - RECENT_ID_TAIL_BYTES)
        tail = _pread_all(self._fd, start, self._size - start)
        lines = tail.split(b"\n")
        if start > 0:
            lines = lines[1:]  # the first one is probably cut
        for line in lines:
            try:
                record_id = json.loads(line).get("id")
            except (ValueError, AttributeError):
                continue
            if isinstance(record_id, str):
                ids[record_id] = None
        while len(ids) > RECENT_IDS:
            ids.popitem(last=False)
        return ids

    def _recover_torn_tail(self) -> int:
        size = os.fstat(self._fd).st_size
        if size == 0 or os.pread(self._fd, 1, size - 1) == b"\n":
            return size
        keep = _end_of_last_newline(self._fd, size)
        torn = _pread_all(self._fd, keep, size - keep)
        with open(self.path.with_name(self.path.name + ".torn"), "ab") as aside:
            aside.write(torn + b"\n")
            aside.flush()
            os.fsync(aside.fileno())
        os.ftruncate(self._fd, keep)
        os.fsync(self._fd)
        return keep

    def append(self, record: AuditRecord) -> int:
        """Write one record durably (per the fsync policy); returns its ``seq``.

        A record whose ``id`` was among the recent ones is not written again (its ``seq``
        is then the current head's)."""
        with self._lock:
            if self._closed:
                raise AuditLogError(f"audit log {self.path} is closed")
            if record.id is not None and record.id in self._recent_ids:
                return self.seq
            seq = self.seq + 1
            line, digest = encode_line(record, seq, self.head_hash)
            try:
                _write_all(self._fd, line)
            except OSError as err:
                # Take back a partial line so the next append does not follow torn bytes.
                os.ftruncate(self._fd, self._size)
                raise AuditLogError(
                    f"cannot append to audit log {self.path}: {err.strerror}"
                ) from err
            self._size += len(line)
            self.seq, self.head_hash = seq, digest
            self.last_line = line
            if record.id is not None:
                self._recent_ids[record.id] = None
                if len(self._recent_ids) > RECENT_IDS:
                    self._recent_ids.popitem(last=False)
            self._maybe_fsync()
            return seq

    def emit(self, record: AuditRecord) -> None:
        self.append(record)

    def _maybe_fsync(self) -> None:
        if self.fsync is FsyncPolicy.ALWAYS:
            os.fsync(self._fd)
        elif self.fsync is FsyncPolicy.INTERVAL:
            now = time.monotonic()
            if now - self._last_fsync >= self.fsync_interval:
                os.fsync(self._fd)
                self._last_fsync = now

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self.fsync is not FsyncPolicy.NEVER:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)  # also releases the flock

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _pread_all(fd: int, offset: int, length: int) -> bytes:
    chunks = []
    while length > 0:
        chunk = os.pread(fd, min(length, _TAIL_BLOCK), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return b"".join(chunks)


def _end_of_last_newline(fd: int, size: int) -> int:
    """Offset just after the last ``\\n`` before ``size`` (0 if none)."""
    end = size
    while end > 0:
        start = max(0, end - _TAIL_BLOCK)
        block = os.pread(fd, end - start, start)
        at = block.rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def _last_line(fd: int, size: int) -> bytes:
    """The last complete line (``size`` is just after its newline), without the newline."""
    start = _end_of_last_newline(fd, size - 1)
    if size - 1 - start > MAX_LINE_BYTES:
        raise AuditLogError("last line of the audit log is longer than any record")
    return _pread_all(fd, start, size - 1 - start)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- reading


class Problem(StrEnum):
    TRUNCATED = "truncated"  # last line without its newline: a crash in mid-write
    TOO_LONG = "too_long"
    NOT_JSON = "not_json"
    NO_ENVELOPE = "no_envelope"
    EDITED = "edited"  # the line's content does not match its own hash
    SEQUENCE = "sequence"  # seq jumps: a line deleted, inserted or moved
    CHAIN = "chain"  # prev_hash is not the previous line's hash
    NOT_A_RECORD = "not_a_record"  # intact, but not an AuditRecord this version can read


@dataclass(frozen=True)
class BadLine:
    line: int
    problem: Problem
    detail: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem.value}: {self.detail}"


@dataclass
class _Raw:
    """One physical line as the scanner saw it."""

    number: int
    data: bytes  # without the newline
    complete: bool  # ended with a newline
    too_long: bool = False


def _scan_lines(stream: BinaryIO, first_line: int = 1) -> Iterator[_Raw]:
    """Lines of at most ``MAX_LINE_BYTES``; a longer one is reported, not held in memory."""
    number = first_line - 1
    while True:
        data = stream.readline(MAX_LINE_BYTES + 1)
        if not data:
            return
        number += 1
        if data.endswith(b"\n"):
            yield _Raw(number, data[:-1], True)
            continue
        if len(data) <= MAX_LINE_BYTES:  # end of file without a newline
            yield _Raw(number, data, False)
            return
        while data and not data.endswith(b"\n"):  # drain the rest of the monster line
            data = stream.readline(MAX_LINE_BYTES)
        yield _Raw(number, b"", bool(data), too_long=True)


@dataclass
class _Chain:
    """Checks one line after another against the envelope rules."""

    expected_seq: int | None = 1  # None: start from whatever the first line says
    prev_hash: str | None = GENESIS_HASH

    def check(self, raw: _Raw) -> tuple[dict[str, Any] | None, list[BadLine]]:
        """The parsed line and what is wrong with it. Content problems make the object
        ``None``; chain problems (seq, prev_hash) leave it usable. After an unreadable
        line the chain resynchronises on the next one, so one damage is reported once."""
        n = raw.number
        unreadable: BadLine | None = None
        obj: Any = None
        if raw.too_long:
            unreadable = BadLine(n, Problem.TOO_LONG, f"longer than {MAX_LINE_BYTES} bytes")
        elif not raw.complete:
            unreadable = BadLine(
                n, Problem.TRUNCATED, "last line ends without a newline (crash mid-write?)"
            )
        else:
            try:
                obj = json.loads(raw.data)
            except ValueError as err:
                unreadable = BadLine(n, Problem.NOT_JSON, f"not JSON: {err}")
            else:
                if not isinstance(obj, dict):
                    unreadable = BadLine(n, Problem.NOT_JSON, "not a JSON object")
                elif not (
                    isinstance(obj.get("seq"), int)
                    and isinstance(obj.get("prev_hash"), str)
                    and isinstance(obj.get("hash"), str)
                ):
                    unreadable = BadLine(n, Problem.NO_ENVELOPE, "missing seq, prev_hash or hash")
        if unreadable is not None:
            self.expected_seq, self.prev_hash = None, None
            return None, [unreadable]
        seq, prev, digest = obj["seq"], obj["prev_hash"], obj["hash"]
        problems: list[BadLine] = []
        content_ok = line_digest(raw.data) == digest
        if not content_ok:
            problems.append(
                BadLine(n, Problem.EDITED, "content does not match its hash (line edited)")
            )
        if self.expected_seq is not None and seq != self.expected_seq:
            problems.append(
                BadLine(
                    n,
                    Problem.SEQUENCE,
                    f"seq {seq}, expected {self.expected_seq} (a line deleted, inserted or moved)",
                )
            )
        elif self.prev_hash is not None and prev != self.prev_hash:
            which = "the genesis hash" if n == 1 else f"the hash of line {n - 1}"
            problems.append(
                BadLine(
                    n,
                    Problem.CHAIN,
                    f"prev_hash is not {which} (a line before it was edited, deleted or moved)",
                )
            )
        self.expected_seq = seq + 1
        self.prev_hash = digest
        return (obj if content_ok else None), problems


@dataclass(frozen=True)
class VerifyResult:
    records: int  # intact lines before the first bad one
    head_seq: int
    head_hash: str
    first_bad: BadLine | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad is None


def verify(path: str | os.PathLike[str]) -> VerifyResult:
    """Check the whole chain, streaming (memory does not grow with the file's length).
    Stops at the first bad line and says which and why."""
    chain = _Chain()
    records, head_seq, head_hash = 0, 0, GENESIS_HASH
    with open(path, "rb") as stream:
        for raw in _scan_lines(stream):
            obj, problems = chain.check(raw)
            if problems:
                return VerifyResult(records, head_seq, head_hash, problems[0])
            assert obj is not None
            records += 1
            head_seq, head_hash = obj["seq"], obj["hash"]
    return VerifyResult(records, head_seq, head_hash)


@dataclass
class ReadReport:
    """What reading a damaged log skipped or could not vouch for."""

    path: str
    records: int = 0
    skipped: int = 0
    examples: list[BadLine] = field(default_factory=list)  # first few skipped lines
    first_chain_break: BadLine | None = None
    max_examples: int = 10

    def note_skipped(self, bad: BadLine) -> None:
        self.skipped += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(bad)

    @property
    def clean(self) -> bool:
        return self.skipped == 0 and self.first_chain_break is None

    def warnings(self) -> list[str]:
        out = [f"{self.path}: skipped {bad}" for bad in self.examples]
        if self.skipped > len(self.examples):
            out.append(f"{self.path}: ... {self.skipped - len(self.examples)} more skipped")
        if self.first_chain_break is not None:
            out.append(
                f"{self.path}: hash chain broken at {self.first_chain_break}; records from "
                "there on are read but not vouched for (run `changelane audit verify`)"
            )
        return out


def read_records(
    path: str | os.PathLike[str], report: ReadReport, *, since: datetime | None = None
) -> Iterator[AuditRecord]:
    """Stream the records of a log, skipping lines whose content is damaged (not JSON,
    edited, torn, not a record) and noting chain breaks, so a damaged log still yields
    everything that can be trusted line by line.

    ``since`` is a hint: the log is written in time order, so reading starts at a line found
    by bisecting the file (``SEEK_SLACK`` earlier, for clock skew between controller
    instances) instead of the beginning. Records before ``since`` may still come out; the
    caller filters. The chain is then checked from that line on (``verify`` checks it all).
    """
    chain = _Chain()
    with open(path, "rb") as stream:
        first_line = 1
        if since is not None:
            offset = _offset_before(stream, since - SEEK_SLACK)
            if offset > 0:
                first_line = _count_newlines(stream, offset) + 1
                chain = _Chain(expected_seq=None, prev_hash=None)
            stream.seek(offset)
        for raw in _scan_lines(stream, first_line):
            obj, problems = chain.check(raw)
            for bad in problems:
                if bad.problem in (Problem.SEQUENCE, Problem.CHAIN):
                    if report.first_chain_break is None:
                        report.first_chain_break = bad
                elif obj is None:
                    report.note_skipped(bad)
            if obj is None:
                continue
            for name in ENVELOPE_FIELDS:
                del obj[name]
            try:
                record = AuditRecord.model_validate(obj)
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "record"
                report.note_skipped(
                    BadLine(raw.number, Problem.NOT_A_RECORD, f"{where}: {first['msg']}")
                )
                continue
            report.records += 1
            yield record


SEEK_SLACK = timedelta(minutes=10)
_SEEK_GRANULE = 64 * 1024


def _line_time(stream: BinaryIO, offset: int) -> tuple[int, datetime | None]:
    """The end of the first complete line starting at or after ``offset`` and its time
    (``None`` when unreadable, which makes the search start earlier, never later)."""
    stream.seek(offset)
    if offset > 0:
        stream.readline(MAX_LINE_BYTES + 1)  # finish the line ``offset`` falls into
    line = stream.readline(MAX_LINE_BYTES + 1)
    end = stream.tell()
    try:
        when = datetime.fromisoformat(json.loads(line)["time"])
    except (ValueError, KeyError, TypeError):
        return end, None
    return end, when if when.tzinfo else when.replace(tzinfo=UTC)


def _offset_before(stream: BinaryIO, target: datetime) -> int:
    """A line start such that every line before it is older than ``target``."""
    stream.seek(0, os.SEEK_END)
    lo, hi = 0, stream.tell()  # lo is always a line start
    while hi - lo > _SEEK_GRANULE:
        mid = (lo + hi) // 2
        end, when = _line_time(stream, mid)
        if when is not None and when < target and end <= hi:
            lo = end
        else:
            hi = mid
    return lo


def _count_newlines(stream: BinaryIO, offset: int) -> int:
    stream.seek(0)
    count, left = 0, offset
    while left > 0:
        chunk = stream.read(min(left, _SEEK_GRANULE))
        if not chunk:
            break
        count += chunk.count(b"\n")
        left -= len(chunk)
    return count
