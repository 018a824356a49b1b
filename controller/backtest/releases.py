"""Past releases to replay: from a CSV the user gives, or discovered in metrics (pure).

CSV: header ``namespace,workload,start,end,expect``; ISO-8601 times with a zone (``Z`` or
``+01:00``); ``expect`` is ``promote``, ``rollback`` or empty (unknown). Every bad row is
reported with its line number and column, and the good rows are still used.

Discovery works on series already fetched (see ``controller.backtest.engine``):

- kube-state-metrics ``kube_replicaset_created`` (value: creation time) joined with
  ``kube_replicaset_owner``: every ReplicaSet a Deployment created is a release starting
  at its creation time, whose pod-template hash is the ReplicaSet name's suffix;
- ``kube_deployment_metadata_generation``: a change of generation is a release (used for
  workloads whose ReplicaSets are not in the history).

A discovered release ends when the next one of the same workload starts, or after the
lane's longest plausible run (``horizon``), whichever is first.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from controller.core.models import ChangeLane, parse_duration

HEADER = ("namespace", "workload", "start", "end", "expect")


class Expect(StrEnum):
    PROMOTE = "promote"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class PastRelease:
    namespace: str
    workload: str
    start: datetime
    end: datetime
    expect: Expect | None = None
    from_revision: str = ""
    to_revision: str = ""
    source: str = ""  # where it came from: "releases.csv:4", "kube_replicaset_created", ...


@dataclass(frozen=True)
class RowProblem:
    file: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: line {self.line}"
        return (
            f"{where}: {self.column}: {self.message}" if self.column else f"{where}: {self.message}"
        )


def parse_time(text: str) -> datetime:
    """An ISO-8601 time with a zone; raises ``ValueError`` saying what was expected."""
    raw = text.strip()
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise ValueError(
            f"expected an ISO-8601 time such as 2026-11-02T14:05:00Z, got {text!r}"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"expected a time with a zone (Z or +01:00), got {text!r}")
    return parsed.astimezone(UTC)


def parse_releases_csv(text: str, file: str) -> tuple[list[PastRelease], list[RowProblem]]:
    """The good rows and one problem per bad row (line numbers count the header as 1)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(c.strip() for c in rows[0]) != HEADER:
        got = ",".join(rows[0]) if rows else "an empty file"
        return [], [RowProblem(file, 1, "", f"expected the header {','.join(HEADER)}, got {got!r}")]
    releases: list[PastRelease] = []
    problems: list[RowProblem] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(HEADER):
            problems.append(
                RowProblem(file, line, "", f"expected {len(HEADER)} columns, got {len(row)}")
            )
            continue
        release, problem = _row(dict(zip(HEADER, (c.strip() for c in row), strict=True)))
        if problem is not None:
            problems.append(RowProblem(file, line, *problem))
        elif release is not None:
            releases.append(
                PastRelease(
                    release.namespace,
                    release.workload,
                    release.start,
                    release.end,
                    release.expect,
                    source=f"{file}:{line}",
                )
            )
    return releases, problems


def _row(cells: Mapping[str, str]) -> tuple[PastRelease | None, tuple[str, str] | None]:
    for column in ("namespace", "workload"):
        if not cells[column]:
            return None, (column, "required: the Deployment's namespace and name")
    times: dict[str, datetime] = {}
    for column in ("start", "end"):
        try:
            times[column] = parse_time(cells[column])
        except ValueError as exc:
            return None, (column, str(exc))
    if times["end"] <= times["start"]:
        return None, ("end", f"must be after start ({cells['start']})")
    expect: Expect | None = None
    if cells["expect"]:
        try:
            expect = Expect(cells["expect"].lower())
        except ValueError:
            return None, ("expect", f"expected promote, rollback or empty, got {cells['expect']!r}")
    return PastRelease(
        cells["namespace"], cells["workload"], times["start"], times["end"], expect
    ), None


def lane_horizon_s(lane: ChangeLane) -> float:
    """The longest a release of this lane plausibly runs: every step's minDuration plus one
    progressDeadline per step (time to get ready and to gather evidence)."""
    steps = lane.spec.strategy.steps
    deadline = parse_duration(lane.spec.strategy.progress_deadline)
    return sum(parse_duration(s.min_duration) for s in steps) + deadline * len(steps)


@dataclass(frozen=True)
class ReplicaSetSeen:
    namespace: str
    deployment: str
    replicaset: str
    created: datetime


def releases_from_replicasets(
    seen: Iterable[ReplicaSetSeen], *, since: datetime, until: datetime, horizon_s: float
) -> list[PastRelease]:
    """One release per ReplicaSet created in ``[since, until)``; the previous ReplicaSet of
    the same Deployment is the baseline's revision."""
    by_workload: dict[tuple[str, str], list[ReplicaSetSeen]] = {}
    for rs in seen:
        by_workload.setdefault((rs.namespace, rs.deployment), []).append(rs)
    out: list[PastRelease] = []
    for (namespace, deployment), sets in by_workload.items():
        sets.sort(key=lambda r: r.created)
        for i, rs in enumerate(sets):
            if not since <= rs.created < until or i == 0:
                continue  # the first ReplicaSet seen has no baseline to compare with
            end = rs.created + timedelta(seconds=horizon_s)
            if i + 1 < len(sets):
                end = min(end, sets[i + 1].created)
            out.append(
                PastRelease(
                    namespace,
                    deployment,
                    rs.created,
                    min(end, until),
                    from_revision=_hash_of(sets[i - 1].replicaset, deployment),
                    to_revision=_hash_of(rs.replicaset, deployment),
                    source="kube_replicaset_created",
                )
            )
    return sorted(out, key=lambda r: (r.start, r.namespace, r.workload))


def _hash_of(replicaset: str, deployment: str) -> str:
    prefix = f"{deployment}-"
    return replicaset[len(prefix) :] if replicaset.startswith(prefix) else ""


def releases_from_generations(
    namespace: str,
    deployment: str,
    points: Mapping[int, float],
    *,
    until: datetime,
    horizon_s: float,
) -> list[PastRelease]:
    """A release at every point where the Deployment's generation went up."""
    changes: list[datetime] = []
    previous: float | None = None
    for t in sorted(points):
        value = points[t]
        if previous is not None and value > previous:
            changes.append(datetime.fromtimestamp(t, UTC))
        previous = value
    out = []
    for i, start in enumerate(changes):
        end = start + timedelta(seconds=horizon_s)
        if i + 1 < len(changes):
            end = min(end, changes[i + 1])
        out.append(
            PastRelease(
                namespace,
                deployment,
                start,
                min(end, until),
                source="kube_deployment_metadata_generation",
            )
        )
    return out


def healthy_windows(
    releases: Sequence[PastRelease],
    *,
    namespace: str,
    workload: str,
    since: datetime,
    until: datetime,
    length_s: float,
    limit: int,
) -> list[tuple[datetime, datetime]]:
    """Up to ``limit`` windows of ``length_s`` in which the workload had no release (one
    version on every pod), spread evenly over the gaps between its releases."""
    busy = sorted(
        (r.start, r.end) for r in releases if (r.namespace, r.workload) == (namespace, workload)
    )
    length = timedelta(seconds=length_s)
    candidates: list[tuple[datetime, datetime]] = []
    cursor = since
    for start, end in [*busy, (until, until)]:
        while cursor + length <= min(start, until):
            candidates.append((cursor, cursor + length))
            cursor += length
        cursor = max(cursor, end)
    if len(candidates) <= limit:
        return candidates
    stride = len(candidates) / limit
    return [candidates[int(i * stride)] for i in range(limit)]
