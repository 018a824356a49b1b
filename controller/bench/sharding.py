"""Sharding benchmark: three controller processes share the lanes over shard Leases; one
is killed, one is added, shard owners are frozen mid-renewal; every write is attributed.

Each replica (``controller.bench.fencing_replica --shards N``) has its own bearer token
and its own audit log. Each lane selects its own namespace, so every request a replica
sends for a lane names it (the namespace, or the lane for its status): the simulated API
records every request by user and arrival time, and a store listener records every
commit of every shard Lease with its holder. Releases keep coming on every lane. Then:

1. **balance**: three replicas, N shards: each holds its fair share;
2. **kill**: SIGKILL of one replica: its shards move to the others;
3. **add**: a fourth replica starts: it takes its share (the others hand shards over:
   stop acting, wait for their work on the shard to end, release the Lease);
4. **pauses**: ``--pauses`` times, a shard owner is frozen (SIGSTOP) and woken after its
   shards were taken over; in turn while a renewal of one of its shard Leases is held by
   the API for 2-5 s (answered while it sleeps: issue 19's worst case) and at a random
   point of its renewal cycle (seeded).

Judged: every mutating request (and every audit append) a replica made for a lane while
the Lease of that lane's shard did not name it, so "every release has one writer at
every moment" is checked per request, not sampled; for requests that name no lane
(Events of cluster-scoped lanes), the sender must hold some shard. Lease writes follow the
fencing bench's rule (a takeover decided on a read of a record unchanged for a lease
duration is allowed). Also: the longest time a shard had no valid owner (last renewal of
the old holder to the new holder's acquisition), the longest gap between two writes to
an unfinished release, and how many shards each replica held at the end of each phase.

    changelane bench shards [--quick] [--pauses N] [--seed S] [--json FILE]
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
import signal
import statistics
import tempfile
import time
from collections import Counter, defaultdict
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
    Requests,
    appended,
    deployment_doc,
    holder_at,
    is_takeover,
    lane_doc,
)
from controller.core.sharding import fair_share, shard_of
from controller.sim.request_audit import ApiRequest

JsonDict = dict[str, Any]

SHARDS = 3
LANES_PER_SHARD = 2
FIRST, ADDED = ("replica-a", "replica-b", "replica-c"), "replica-d"
PAUSES = ("frozen-in-flight", "paused")


def lanes_for(shards: int, per_shard: int = LANES_PER_SHARD) -> tuple[str, ...]:
    """Lane names giving every shard ``per_shard`` lanes (the first that hash there)."""
    picked: dict[int, list[str]] = {s: [] for s in range(shards)}
    i = 0
    while any(len(names) < per_shard for names in picked.values()):
        name = f"lane-{i}"
        if len(picked[shard_of(name, shards)]) < per_shard:
            picked[shard_of(name, shards)].append(name)
        i += 1
    return tuple(sorted(n for names in picked.values() for n in names))


def shard_lease(shard: int) -> str:
    return f"changelane-shard-{shard}"


def namespace_of(lane: str) -> str:
    return f"ns-{lane}"


@dataclass
class Phase:
    name: str
    seconds: float
    held: dict[str, int] = field(default_factory=dict)
    note: str = ""


@dataclass
class Result:
    seed: int
    shards: int = SHARDS
    phases: list[Phase] = field(default_factory=list)
    pauses: int = 0
    pause_kinds: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    late_requests: Counter[str] = field(default_factory=Counter)
    late_appends: int = 0
    requests: int = 0
    mutating_requests: int = 0
    releases: int = 0
    #: distinct writers per release (more than one: the lane's shard moved while it ran)
    writers_per_release: dict[str, int] = field(default_factory=dict)
    #: per shard Lease change of holder: old holder's last write -> new holder's first
    takeovers_s: list[float] = field(default_factory=list)
    handovers_s: list[float] = field(default_factory=list)
    longest_release_gap_s: float = 0.0
    #: the same, by the phase the gap ended in (a renewal held by the API past the lease
    #: duration, in the frozen-in-flight pauses, delays the takeover by that much)
    longest_gap_by_phase_s: dict[str, float] = field(default_factory=dict)
    kill_moved_s: float | None = None
    add_balanced_s: float | None = None

    def as_json(self) -> JsonDict:
        body = asdict(self)
        body["late_requests"] = dict(self.late_requests)
        body["pause_kinds"] = dict(self.pause_kinds)
        body["stall_target_s"] = LEASE_DURATION + RETRY_PERIOD
        return body


def _lane(name: str) -> JsonDict:
    selector = {"namespaces": [namespace_of(name)], "matchLabels": {"bench": "shards"}}
    return lane_doc(name, selector, step_s=3, deadline_s=120)


def _deployment(namespace: str) -> JsonDict:
    provenance = {**BENCH_AGENT, "changelane.dev/images": "web:0"}
    return deployment_doc("web", namespace, {"bench": "shards"}, "web:0", provenance)


class Bench(ReplicaHarness):
    def __init__(self, workdir: Path, seed: int, shards: int = SHARDS) -> None:
        super().__init__(workdir, seed, tracks=lambda lease: "-shard-" in lease)
        self.shards = shards
        self.rng = random.Random(seed)  # noqa: S311 (reproducible fault timing)
        self.killed: set[str] = set()
        self.marks: list[tuple[float, str]] = [(0.0, "start-up")]
        self.lanes = lanes_for(shards)
        self.lane_shard = {lane: shard_of(lane, shards) for lane in self.lanes}

    # ---------------------------------------------------------------- set-up
    def start(self) -> None:
        namespaces = [LEASE_NS, *(namespace_of(lane) for lane in self.lanes)]
        objects = [
            obj
            for lane in self.lanes
            for obj in (
                ("changelanes", _lane(lane)),
                ("deployments", _deployment(namespace_of(lane))),
            )
        ]
        self.start_cluster(namespaces, objects)
        for replica in FIRST:
            self.launch(replica)
        self.in_background(self._churn)

    def launch(self, replica: str, extra_args: list[str] | None = None) -> None:
        super().launch(replica, ["--shards", str(self.shards), *(extra_args or [])])

    def holders(self) -> dict[int, str | None]:
        out: dict[int, str | None] = {}
        for shard in range(self.shards):
            try:
                lease = self.sim.store.get_obj("leases", LEASE_NS, shard_lease(shard))
                out[shard] = (lease.get("spec") or {}).get("holderIdentity") or None
            except Exception:
                out[shard] = None
        return out

    def settled(self, replicas: list[str]) -> dict[str, int]:
        """Shards held per replica once balanced again (a hand-over may be under way)."""
        self.wait(lambda: self.balanced(replicas), 10 * LEASE_DURATION, "balanced")
        return self.held_by()

    def held_by(self) -> dict[str, int]:
        counts = Counter(h for h in self.holders().values() if h)
        return {replica: counts.get(replica, 0) for replica in self.procs}

    def balanced(self, replicas: list[str]) -> bool:
        """Every shard held by one of ``replicas``, none holding more than its share."""
        holders = self.holders()
        if any(h not in replicas for h in holders.values()):
            return False
        cap = fair_share(self.shards, len(replicas))
        counts = Counter(holders.values())
        return all(counts.get(r, 0) <= cap for r in replicas) and all(
            counts.get(r, 0) >= self.shards // len(replicas) for r in replicas
        )

    def live(self) -> list[str]:
        return [r for r in self.procs if r not in self.killed]

    def _churn(self) -> None:
        """A new pod template on some lane's workload every 1.5 s (so each lane gets one
        every 9 s and most releases run to their end), one in five 'bad'."""
        n = 0
        while self.every(1.5):
            n += 1
            ns = namespace_of(self.lanes[n % len(self.lanes)])
            tag = f"{n}-bad" if n % 5 == 0 else str(n)
            # A pipeline's fresh provenance: its own change and the image it ships.
            provenance = {
                "changelane.dev/change": hashlib.sha1(tag.encode()).hexdigest()[:12],  # noqa: S324
                "changelane.dev/images": f"web:{tag}",
            }
            self.ship(ns, "web", f"web:{tag}", provenance)

    # ---------------------------------------------------------------- phases
    def mark(self, phase: str) -> None:
        self.marks.append((time.monotonic(), phase))

    def phase_balance(self) -> Phase:
        began = time.monotonic()
        self.wait(lambda: self.balanced(list(FIRST)), 60, "three replicas share the shards")
        time.sleep(3.0)  # releases under way on every shard
        return Phase("balance", time.monotonic() - began, self.settled(list(FIRST)))

    def phase_kill(self) -> Phase:
        victim = max(FIRST, key=lambda r: (self.held_by().get(r, 0), r))
        lost = [s for s, h in self.holders().items() if h == victim]
        self.mark("kill")
        began = time.monotonic()
        self.procs[victim].send_signal(signal.SIGKILL)
        self.killed.add(victim)
        live = self.live()
        moved = self.wait(
            lambda: all(self.holders()[s] in live for s in lost),
            6 * LEASE_DURATION,
            f"{victim}'s shards move",
        )
        self.wait(lambda: self.balanced(live), 10 * LEASE_DURATION, "two replicas balance")
        time.sleep(2.0)
        phase = Phase("kill", time.monotonic() - began, self.settled(live))
        phase.note = f"killed {victim} (shards {lost}); moved after {moved - began:.2f} s"
        self.kill_moved = moved - began
        return phase

    def phase_add(self) -> Phase:
        self.mark("add")
        began = time.monotonic()
        self.launch(ADDED)
        live = self.live()
        done = self.wait(
            lambda: self.balanced(live) and self.held_by().get(ADDED, 0) > 0,
            20 * LEASE_DURATION,
            f"{ADDED} takes its share",
        )
        time.sleep(2.0)
        phase = Phase("add", time.monotonic() - began, self.settled(live))
        phase.note = f"added {ADDED}; balanced after {done - began:.2f} s"
        self.add_balanced = done - began
        return phase

    def pause(self, kind: str) -> None:
        """Freeze a shard owner and wake it after every shard it held has a new owner.

        ``paused``: at a random point of its renewal cycle. ``frozen-in-flight``: while a
        renewal of one of its shard Leases is held by the API for 2-5 s, so the answer
        arrives while it sleeps (issue 19's worst case, per shard)."""
        holders = self.holders()
        live = self.live()
        owner = self.rng.choice(sorted({h for h in holders.values() if h in live}))
        shards = [s for s, h in holders.items() if h == owner]
        proc = self.procs[owner]
        if kind == "frozen-in-flight":
            delay = self.rng.uniform(2.0, 5.0)
            lease = shard_lease(self.rng.choice(shards))
            self.sim.faults.delay(delay, verbs=["update"], path=f"/leases/{lease}$", times=1)
            sent = self.next_lease_update(owner, lease, time.monotonic())
            time.sleep(max(0.0, sent + self.rng.uniform(0.1, delay - 0.1) - time.monotonic()))
        else:
            time.sleep(self.rng.uniform(0, RETRY_PERIOD))
        proc.send_signal(signal.SIGSTOP)
        try:
            self.wait(
                lambda: all(self.holders()[s] not in (None, owner) for s in shards),
                8 * LEASE_DURATION,
                f"{owner}'s shards taken over while it is frozen",
            )
            time.sleep(self.rng.uniform(0.0, 2.0))
        finally:
            proc.send_signal(signal.SIGCONT)
        time.sleep(2.0)  # awake now: give it time to misbehave
        self.wait(lambda: self.balanced(live), 20 * LEASE_DURATION, "balanced after a pause")

    # ---------------------------------------------------------------- judging
    def lane_of_request(self, req: ApiRequest) -> str | None:
        if req.resource == "changelanes":
            return req.name or None
        for lane in self.lanes:
            if req.namespace == namespace_of(lane):
                return lane
        return None

    def judge(self, result: Result) -> None:
        requests, leases = self.recorder.snapshot()
        result.requests = len(requests)
        replicas = set(self.procs)
        writers: dict[str, set[str]] = defaultdict(set)
        writes: dict[str, list[float]] = defaultdict(list)
        for at, req in requests:
            replica = req.user.rsplit(":", 1)[-1]
            if replica not in replicas or req.verb not in MUTATING:
                continue
            result.mutating_requests += 1
            if req.resource == "leases":
                self._judge_lease_write(result, replica, at, req, requests, leases)
                continue
            lane = self.lane_of_request(req)
            if lane is None:
                owners = {
                    holder_at(leases.get(shard_lease(s), []), at)[0] for s in range(self.shards)
                }
                if replica not in owners:
                    self._late(result, replica, at, req, "no shard")
                continue
            shard = self.lane_shard[lane]
            holder, _ = holder_at(leases.get(shard_lease(shard), []), at)
            if holder != replica:
                self._late(result, replica, at, req, f"shard {shard} (held by {holder})")
            if req.resource == "lanereleases" and req.name:
                key = f"{req.namespace}/{req.name}"
                writers[key].add(replica)
                writes[key].append(at)
        result.writers_per_release = {k: len(v) for k, v in sorted(writers.items())}
        self._judge_appends(result, leases)
        self._judge_moves(result, leases)
        self._judge_gaps(result, writes)
        result.releases = sum(
            len(self.sim.store.list("lanereleases", namespace_of(lane)).items)
            for lane in self.lanes
        )

    def _late(self, result: Result, replica: str, at: float, req: ApiRequest, why: str) -> None:
        what = req.rbac_resource
        result.late_requests[what] += 1
        result.violations.append(
            f"{replica} sent {req.verb} {what} {req.namespace}/{req.name} without {why}"
        )

    def _judge_lease_write(
        self,
        result: Result,
        replica: str,
        at: float,
        req: ApiRequest,
        requests: Requests,
        leases: dict[str, Commits],
    ) -> None:
        if "-shard-" not in req.name:
            return  # its member Lease (membership steers balance, never who acts)
        commits = leases.get(req.name, [])
        holder, _ = holder_at(commits, at)
        if holder is None or holder == replica:
            return
        if is_takeover(replica, req.name, at, requests, commits):
            return  # a takeover of a record unchanged for a lease duration
        self._late(result, replica, at, req, f"its Lease (held by {holder})")

    def _judge_appends(self, result: Result, leases: dict[str, Any]) -> None:
        for replica in self.procs:
            for t, rid, lease in appended(self.workdir, replica):
                holder, _ = holder_at(leases.get(lease, []), float(t))
                if holder != replica:
                    result.late_appends += 1
                    result.violations.append(f"{replica} appended {rid} under {lease} ({holder})")

    def _judge_moves(self, result: Result, leases: dict[str, Commits]) -> None:
        """Per shard: each change of holder, from the old holder's last write (a renewal,
        or its release) to the new one's acquisition; released shards are hand-overs."""
        for commits in leases.values():
            for (t0, h0), (t1, h1) in itertools.pairwise(commits):
                if h1 is None or h0 == h1:
                    continue
                if h0 is None:  # released: a hand-over, the new owner took it
                    result.handovers_s.append(round(t1 - t0, 3))
                else:
                    result.takeovers_s.append(round(t1 - t0, 3))

    def _judge_gaps(self, result: Result, writes: dict[str, list[float]]) -> None:
        """The longest pause in the writes to one release while it was in flight, overall
        and by the phase it ended in (a kill's gap begins before the kill)."""
        starts = [t for t, _ in self.marks]
        by_phase: dict[str, float] = {}
        for times in writes.values():
            times.sort()
            for a, b in itertools.pairwise(times):
                phase = self.marks[bisect.bisect_right(starts, b) - 1][1]
                by_phase[phase] = max(by_phase.get(phase, 0.0), b - a)
        result.longest_gap_by_phase_s = {k: round(v, 3) for k, v in by_phase.items()}
        result.longest_release_gap_s = max(result.longest_gap_by_phase_s.values(), default=0.0)


def run(pauses: int = 20, seed: int = 1, shards: int = SHARDS) -> Result:
    result = Result(seed=seed, shards=shards)
    with tempfile.TemporaryDirectory(prefix="changelane-shards-") as tmp:
        bench = Bench(Path(tmp), seed, shards)
        try:
            bench.start()
            result.phases.append(bench.phase_balance())
            result.phases.append(bench.phase_kill())
            result.kill_moved_s = round(bench.kill_moved, 3)
            result.phases.append(bench.phase_add())
            result.add_balanced_s = round(bench.add_balanced, 3)
            began = time.monotonic()
            bench.mark("pauses")
            for i in range(pauses):
                kind = PAUSES[i % len(PAUSES)]
                bench.pause(kind)
                result.pauses += 1
                result.pause_kinds[kind] += 1
            if pauses:
                held = bench.settled(bench.live())
                result.phases.append(Phase("pauses", time.monotonic() - began, held))
        except TimeoutError as exc:
            result.violations.append(str(exc))
        finally:
            bench.stop()
        bench.judge(result)
    return result


def table(result: Result) -> str:
    takeovers = result.takeovers_s or [0.0]
    handovers = result.handovers_s or [0.0]
    many = sum(1 for n in result.writers_per_release.values() if n > 1)
    rows = [
        ("shards / replicas", f"{result.shards} / 3, kill 1, add 1", ""),
        (
            "pauses (SIGSTOP of a shard owner)",
            f"{result.pauses}: " + ", ".join(f"{k} {n}" for k, n in result.pause_kinds.items()),
            "",
        ),
        (
            "mutating requests for a lane whose shard Lease named another",
            str(sum(result.late_requests.values())),
            "0",
        ),
        ("audit appends under a shard Lease naming another", str(result.late_appends), "0"),
        (
            "releases written by more than one replica (in turn, as shards moved)",
            f"{many} of {len(result.writers_per_release)}",
            "",
        ),
        (
            "killed replica's shards moved after",
            f"{result.kill_moved_s} s",
            f"<= {LEASE_DURATION + RETRY_PERIOD} s",
        ),
        ("new replica holds its share after", f"{result.add_balanced_s} s", ""),
        (
            "takeovers: old holder's last renewal -> new (n, median / max)",
            f"{len(result.takeovers_s)}, {statistics.median(takeovers):.2f} / "
            f"{max(takeovers):.2f} s",
            f"<= {LEASE_DURATION + RETRY_PERIOD} s",
        ),
        (
            "hand-overs: release -> new owner (n, median / max)",
            f"{len(result.handovers_s)}, {statistics.median(handovers):.2f} / "
            f"{max(handovers):.2f} s",
            "",
        ),
        (
            "longest gap between writes to one release, by phase",
            ", ".join(f"{k} {v}" for k, v in result.longest_gap_by_phase_s.items()),
            f"kill, add: <= {LEASE_DURATION + RETRY_PERIOD} s + 1 s",
        ),
        (
            "requests recorded (mutating by the replicas)",
            f"{result.requests} ({result.mutating_requests})",
            "",
        ),
        ("releases", str(result.releases), ""),
    ]
    for phase in result.phases:
        held = ", ".join(f"{r[-1]}={n}" for r, n in sorted(phase.held.items()))
        rows.append((f"shards held after '{phase.name}'", held, phase.note))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'measure'.ljust(width)}  {'value':<26}  target", "-" * (width + 40)]
    lines += [f"{name.ljust(width)}  {value:<26}  {target}" for name, value, target in rows]
    lines += [f"VIOLATION: {v}" for v in result.violations[:20]]
    return "\n".join(lines)
