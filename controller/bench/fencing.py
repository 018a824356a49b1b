"""Fencing benchmark: two controller processes, one Lease, faults aimed at the renewal.

Two replicas (``controller.bench.fencing_replica``), each with its own bearer token and
its own durable audit log, run against the simulated cluster while releases keep coming
(a new pod template every ~1.5 s on one of three lane Deployments). The simulated API
records every request with its user and arrival time; a store listener records every
commit of the Lease with its holder. Then, round after round, the current leader gets one
of these, at a random point of its renewal cycle (seeded):

- ``frozen-in-flight``: its next Lease renewal is held by the API for 2-5 s, and the
  process is frozen (SIGSTOP) while that renewal is in flight, so the answer arrives
  while it sleeps; it is woken (SIGCONT) 0-2 s after the other replica took over;
- ``slow-renewal``: its next renewal is held longer than the lease duration;
- ``paused``: the process is frozen 0-1 retry period after a renewal was sent and woken
  0-2 s after the takeover;

and finally 50% of all API requests fail for a while (``errors``).

Measured: mutating requests a replica sent while the Lease named the other one (its own
acquisition of an expired Lease excepted), audit records it appended then, audit ids in
both logs, the longest time both reported ``changelane_leader 1`` and takeover times (the
old holder's last renewal to the new holder's acquisition).

    changelane bench fencing [--quick] [--rounds N] [--seed S] [--json FILE]
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import statistics
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from controller.bench.replica_harness import (
    BENCH_AGENT,
    LEASE_DURATION,
    LEASE_NS,
    MUTATING,
    RETRY_PERIOD,
    Commits,
    ReplicaHarness,
    appended,
    deployment_doc,
    holder_at,
    is_takeover,
    lane_doc,
)

JsonDict = dict[str, Any]

LEASE_NAME, NS = "changelane-leader", "shop"
REPLICAS = ("replica-a", "replica-b")
KINDS = ("frozen-in-flight", "slow-renewal", "paused")
WORKLOADS = ("web", "api", "docs")


@dataclass
class Round:
    kind: str
    old: str
    new: str
    injected_at: float
    takeover_s: float | None = None
    frozen_s: float = 0.0


@dataclass
class Result:
    seed: int
    rounds: list[Round] = field(default_factory=list)
    error_seconds: float = 0.0
    violations: list[str] = field(default_factory=list)
    late_requests: Counter[str] = field(default_factory=Counter)
    late_appends: int = 0
    duplicate_ids: int = 0
    duplicate_ids_late: int = 0
    max_both_leading_s: float = 0.0
    #: old holder's last renewal -> new holder, in the fault rounds / under API errors
    takeovers_s: list[float] = field(default_factory=list)
    takeovers_under_errors_s: list[float] = field(default_factory=list)
    requests: int = 0
    mutating_requests: int = 0
    records: dict[str, int] = field(default_factory=dict)
    releases: int = 0
    lost_logged: dict[str, int] = field(default_factory=dict)

    @property
    def pauses(self) -> int:
        return sum(1 for r in self.rounds if r.kind != "slow-renewal")

    def as_json(self) -> JsonDict:
        body = asdict(self)
        body["late_requests"] = dict(self.late_requests)
        body["pauses"] = self.pauses
        body["takeover_target_s"] = LEASE_DURATION + RETRY_PERIOD
        return body


class Bench(ReplicaHarness):
    def __init__(self, workdir: Path, seed: int) -> None:
        # Fault rounds aim at a point of a one-second renewal cycle: poll finely.
        super().__init__(workdir, seed, tracks=lambda lease: lease == LEASE_NAME, poll=0.01)
        self.rng = random.Random(seed)  # noqa: S311 (reproducible fault timing)
        self.ports: dict[str, int] = {}
        self.reports: list[tuple[float, dict[str, bool]]] = []
        self.error_window = (float("inf"), float("inf"))
        self.rounds_seen: list[Round] = []

    # ---------------------------------------------------------------- set-up
    def start(self) -> None:
        selector = {"namespaces": [NS], "matchLabels": {"changelane.dev/lane": "bench"}}
        lane = lane_doc("bench-lane", selector, step_s=1, deadline_s=60)
        labels = {"changelane.dev/lane": "bench"}
        workloads = [
            ("deployments", deployment_doc(name, NS, labels, f"{name}:0", dict(BENCH_AGENT)))
            for name in WORKLOADS
        ]
        self.start_cluster([NS, LEASE_NS], [("changelanes", lane), *workloads])
        for replica in REPLICAS:
            self.launch(replica)
        for replica in REPLICAS:
            port_file = self.workdir / f"{replica}.audit.jsonl.port"
            self.wait(port_file.exists, 60, f"{replica} started")
            self.ports[replica] = int(port_file.read_text())
        self.wait(lambda: self.holder() in REPLICAS, 30, "a leader elected")
        self.in_background(self._churn)
        self.in_background(self._poll_leader_metrics)

    def holder(self) -> str | None:
        try:
            lease = self.sim.store.get_obj("leases", LEASE_NS, LEASE_NAME)
        except Exception:
            return None
        holder = (lease.get("spec") or {}).get("holderIdentity")
        return str(holder) if holder else None

    def _churn(self) -> None:
        """A new pod template every ~1.5 s (one in five 'bad'), so the leader keeps writing."""
        n = 0
        while self.every(1.5):
            n += 1
            name = WORKLOADS[n % len(WORKLOADS)]
            tag = f"{n}-bad" if n % 5 == 0 else str(n)
            self.ship(NS, name, f"{name}:{tag}", {})

    def _poll_leader_metrics(self) -> None:
        """What each replica reports as ``changelane_leader`` (a frozen one reports nothing)."""
        while self.every(0.1):
            now = time.monotonic()
            seen: dict[str, bool] = {}
            for replica, port in self.ports.items():
                try:
                    url = f"http://127.0.0.1:{port}/metrics"
                    with urllib.request.urlopen(url, timeout=0.3) as response:
                        text = response.read().decode()
                    seen[replica] = "\nchangelane_leader 1.0" in text
                except Exception:
                    seen[replica] = False
            self.reports.append((now, seen))

    # ---------------------------------------------------------------- faults
    def round(self, kind: str) -> Round:
        old = self.holder()
        assert old is not None
        new = next(r for r in REPLICAS if r != old)
        proc = self.procs[old]
        now = time.monotonic()
        frozen_at = None
        if kind == "paused":
            sent = self.next_lease_update(old, LEASE_NAME, now)
            time.sleep(max(0.0, sent + self.rng.uniform(0, RETRY_PERIOD) - time.monotonic()))
            proc.send_signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
        elif kind == "frozen-in-flight":
            delay = self.rng.uniform(2.0, 5.0)
            self.sim.faults.delay(delay, verbs=["update"], path="/leases/", times=1)
            sent = self.next_lease_update(old, LEASE_NAME, now)
            time.sleep(max(0.0, sent + self.rng.uniform(0.1, delay - 0.1) - time.monotonic()))
            proc.send_signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
        else:
            delay = LEASE_DURATION + self.rng.uniform(0.5, 3.0)
            self.sim.faults.delay(delay, verbs=["update"], path="/leases/", times=1)
            self.next_lease_update(old, LEASE_NAME, now)
        result = Round(kind, old, new, injected_at=now)
        try:
            took = self.wait(lambda: self.holder() == new, 6 * LEASE_DURATION, f"{new} takes over")
            result.takeover_s = took - now
        except TimeoutError:
            pass  # judged: a round without a takeover is a failure
        if frozen_at is not None:
            time.sleep(self.rng.uniform(0.0, 2.0))
            proc.send_signal(signal.SIGCONT)
            result.frozen_s = time.monotonic() - frozen_at
        time.sleep(2.0)  # the old leader is awake now: give it time to misbehave
        return result

    def errors(self, seconds: float) -> None:
        rule = self.sim.faults.fail(500, share=0.5)
        self.error_window = (time.monotonic(), time.monotonic() + seconds)
        time.sleep(seconds)
        self.sim.faults.remove(rule)
        self.wait(lambda: self.holder() in REPLICAS, 6 * LEASE_DURATION, "a leader after errors")
        time.sleep(LEASE_DURATION + RETRY_PERIOD)

    # ---------------------------------------------------------------- judging
    def judge(self, result: Result) -> None:
        requests, leases = self.recorder.snapshot()
        lease = leases.get(LEASE_NAME, [])
        result.requests = len(requests)
        for at, req in requests:
            replica = req.user.rsplit(":", 1)[-1]
            if replica not in REPLICAS or req.verb not in MUTATING:
                continue
            result.mutating_requests += 1
            holder, _ = holder_at(lease, at)
            if holder is None or holder == replica:
                continue
            if req.resource == "leases" and is_takeover(replica, LEASE_NAME, at, requests, lease):
                continue  # taking over a Lease its holder stopped renewing: allowed
            what = req.rbac_resource
            result.late_requests[what] += 1
            result.violations.append(
                f"{replica} sent {req.verb} {what} {req.namespace}/{req.name} while {holder} "
                f"held the Lease ({self._when(at, lease)})"
            )
        appends: dict[str, list[tuple[float, str]]] = {}
        for replica in REPLICAS:
            appends[replica] = [(float(t), rid) for t, rid, *_ in appended(self.workdir, replica)]
            result.records[replica] = len(appends[replica])
            for t, rid in appends[replica]:
                holder, _ = holder_at(lease, t)
                if holder is not None and holder != replica:
                    result.late_appends += 1
                    result.violations.append(
                        f"{replica} appended {rid} while {holder} led ({self._when(t, lease)})"
                    )
            log = (self.workdir / f"{replica}.log").read_text(errors="replace")
            result.lost_logged[replica] = log.count('"leadership lost"')
        first, second = (dict((rid, t) for t, rid in appends[r]) for r in REPLICAS)
        for rid in first.keys() & second.keys():
            result.duplicate_ids += 1
            later, t = max(
                ((REPLICAS[0], first[rid]), (REPLICAS[1], second[rid])), key=lambda p: p[1]
            )
            holder, _ = holder_at(lease, t)
            if holder is not None and holder != later:
                result.duplicate_ids_late += 1
        result.max_both_leading_s = _longest_overlap(self.reports)
        began, ended = self.error_window
        for (t0, h0), (t1, h1) in itertools.pairwise(lease):
            if h0 and h1 and h0 != h1:
                under_errors = began <= t1 <= ended + LEASE_DURATION + RETRY_PERIOD
                where = result.takeovers_under_errors_s if under_errors else result.takeovers_s
                where.append(round(t1 - t0, 3))
        result.releases = len(self.sim.store.list("lanereleases", NS).items)
        for r in result.rounds:
            if r.takeover_s is None:
                result.violations.append(f"{r.kind}: {r.new} did not take over from {r.old}")
        if len(result.takeovers_s) < len(result.rounds):  # the checks above would see nothing
            result.violations.append(
                f"recorded {len(result.takeovers_s)} takeovers for {len(result.rounds)} rounds"
            )

    def _when(self, at: float, lease: Commits) -> str:
        """Where ``at`` falls: seconds after the last takeover, and in which fault."""
        changes = [t1 for (_, h0), (t1, h1) in itertools.pairwise(lease) if h0 != h1 and t1 <= at]
        since = at - changes[-1] if changes else float("nan")
        fault = "start-up"
        for r in self.rounds_seen:
            if r.injected_at <= at:
                fault = f"{r.kind} round"
        if self.error_window[0] <= at:
            fault = "errors phase"
        return f"{since:.3f} s after the takeover, {fault}"


def _longest_overlap(reports: list[tuple[float, dict[str, bool]]]) -> float:
    longest, began = 0.0, None
    for at, seen in reports:
        both = all(seen.get(r) for r in REPLICAS)
        if both and began is None:
            began = at
        if not both and began is not None:
            longest, began = max(longest, at - began), None
    if began is not None and reports:
        longest = max(longest, reports[-1][0] - began)
    return round(longest, 3)


def run(rounds: int = 30, error_seconds: float = 30.0, seed: int = 1) -> Result:
    result = Result(seed=seed, error_seconds=error_seconds)
    with tempfile.TemporaryDirectory(prefix="changelane-fencing-") as tmp:
        bench = Bench(Path(tmp), seed)
        try:
            bench.start()
            bench.rounds_seen = result.rounds
            for i in range(rounds):
                result.rounds.append(bench.round(KINDS[i % len(KINDS)]))
            if error_seconds > 0:
                bench.errors(error_seconds)
        except TimeoutError as exc:
            result.violations.append(str(exc))
        finally:
            bench.stop()
            if os.environ.get("CHANGELANE_FENCING_KEEP"):
                for path in Path(tmp).iterdir():
                    target = Path(os.environ["CHANGELANE_FENCING_KEEP"]) / path.name
                    target.write_bytes(path.read_bytes())
        bench.judge(result)
    return result


def table(result: Result) -> str:
    kinds = Counter(r.kind for r in result.rounds)
    takeovers = result.takeovers_s or [0.0]
    under = result.takeovers_under_errors_s or [0.0]
    rows = [
        ("faults injected", ", ".join(f"{k} {n}" for k, n in kinds.items()), ""),
        ("pauses (SIGSTOP at a random point of the renewal cycle)", str(result.pauses), ">= 20"),
        ("50% API errors", f"{result.error_seconds:g} s", "30 s"),
        ("mutating requests after losing the Lease", str(sum(result.late_requests.values())), "0"),
        ("audit records appended after losing the Lease", str(result.late_appends), "0"),
        (
            "audit ids in both replicas' logs (of them appended late)",
            f"{result.duplicate_ids} ({result.duplicate_ids_late})",
            "0",
        ),
        (
            "longest time both report changelane_leader 1",
            f"{result.max_both_leading_s:.2f} s",
            f"<= {RETRY_PERIOD} s",
        ),
        (
            "takeover in the fault rounds: last renewal -> new holder (median / max)",
            f"{statistics.median(takeovers):.2f} / {max(takeovers):.2f} s",
            f"<= {LEASE_DURATION + RETRY_PERIOD} s",
        ),
        (
            "takeovers under 50% errors: count, median / max",
            f"{len(result.takeovers_under_errors_s)}, "
            f"{statistics.median(under):.2f} / {max(under):.2f} s",
            "",
        ),
        (
            "requests recorded (mutating by the replicas)",
            f"{result.requests} ({result.mutating_requests})",
            "",
        ),
        (
            "releases / audit records (a, b)",
            f"{result.releases} / {', '.join(str(n) for n in result.records.values())}",
            "",
        ),
        (
            "'leadership lost' log lines (a, b)",
            ", ".join(str(n) for n in result.lost_logged.values()),
            "",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'measure'.ljust(width)}  {'value':<24}  target", "-" * (width + 40)]
    lines += [f"{name.ljust(width)}  {value:<24}  {target}" for name, value, target in rows]
    lines += [f"VIOLATION: {v}" for v in result.violations[:20]]
    return "\n".join(lines)
