"""The audit chain's head, anchored in the cluster: a ConfigMap the leader updates (fenced
by its leadership, like every write) after each record it appends.

A new leader reads it before its first append and continues the chain from there, so the
records of every leadership term form one chain even though each term writes to its own
pod's volume. ``changelane audit verify --cluster`` compares the chain's end with it: a
chain cut short, or records nobody anchored, are reported.

The anchor also keeps the ids of the last records anchored (``recentIds``). A new leader
replays the outbox an old one left behind; a record the old leader already appended *and*
anchored is in the chain, in the old leader's segment, and must not be appended again in
the new one (a duplicate id across replicas). Each pod's log only knows its own ids; the
anchor is the one place every leader's appends are seen.

It also keeps, per release, the run of consecutive record numbers last appended
(``releaseRuns``: ``<release key> <first> <last>`` a line). A quiet tick leaves its flushed
measurement in the release's outbox until the next status write (``core.outbox``), so at a
failover every release in flight may hold one, far more than ``recentIds`` covers; the run
tells the new owner it is in the chain. Only consecutive appends extend a run, so a number
inside it was appended (a record that failed and was retried later starts a new run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from controller.adapters.audit.segments import ANCHOR_NAME, Head
from controller.adapters.kube.api import KubeApi, NotFoundError, call

DEFAULT_NAME = ANCHOR_NAME
#: How many anchored record ids the ConfigMap remembers (ids are ~70 bytes: ~18 KiB). An
#: outbox holds the records of one decision, so a replay never reaches further back.
RECENT_IDS = 256
#: How many releases' runs the ConfigMap remembers (~45 bytes each: ~90 KiB at most). A
#: shard with more releases in flight replays the oldest ones' last records twice, never
#: loses one.
RELEASE_RUNS = 2048


def release_record(record_id: str) -> tuple[str, int] | None:
    """``(release key, number)`` of a release's record id (``core.release_machine``:
    ``<uid>/<n>``); None for other records (lane records end in a time)."""
    key, _, number = record_id.rpartition("/")
    if not key or not number.isdigit() or " " in key or "\n" in key:
        return None
    return key, int(number)


@dataclass(frozen=True)
class AnchorState:
    head: Head
    recent_ids: tuple[str, ...]
    resource_version: str
    release_runs: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def holds(self, record_id: str) -> bool:
        """True when an earlier append put ``record_id`` in the chain."""
        if record_id in self.recent_ids:
            return True
        parsed = release_record(record_id)
        if parsed is None:
            return False
        run = self.release_runs.get(parsed[0])
        return run is not None and run[0] <= parsed[1] <= run[1]


class AuditAnchor:
    def __init__(self, api: KubeApi, namespace: str, name: str = DEFAULT_NAME) -> None:
        self.api, self.namespace, self.name = api, namespace, name

    def read(self) -> Head | None:
        state = self.read_state()
        return state.head if state is not None else None

    def read_state(self) -> AnchorState | None:
        try:
            cm = call(self.api.core.read_namespaced_config_map, self.name, self.namespace)
        except NotFoundError:
            return None
        return state_of(cm)

    def write(
        self,
        head: Head,
        instance: str,
        record_id: str | None = None,
        known: AnchorState | None = None,
    ) -> None:
        """Set the anchored head, remembering ``record_id`` among the recent ids (fenced: a
        replica that no longer leads is refused). ``known`` is the state this writer read
        just before: the update is conditional on it (a ``ConflictError`` when another
        leader anchored since), and saves a read."""
        data = {
            "seq": str(head.seq),
            "hash": head.hash,
            "instance": instance,
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "recentIds": record_id or "",
            "releaseRuns": encode_runs(extend_runs({}, record_id)),
        }
        metadata: dict[str, str] = {"name": self.name, "namespace": self.namespace}
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
        anchored = known or self._current()
        if anchored is None:
            self.api.write(
                "create audit anchor",
                self.api.core.create_namespaced_config_map,
                self.namespace,
                body,
            )
            return
        if anchored.head.seq > head.seq:
            raise AnchorAheadError(
                f"audit anchor {self.namespace}/{self.name} is at seq {anchored.head.seq}, "
                f"ahead of this log's seq {head.seq}: another leader appended since"
            )
        recent = list(anchored.recent_ids)
        if record_id is not None and record_id not in recent:
            recent.append(record_id)
        data["recentIds"] = "\n".join(recent[-RECENT_IDS:])
        data["releaseRuns"] = encode_runs(extend_runs(anchored.release_runs, record_id))
        metadata["resourceVersion"] = anchored.resource_version
        self.api.write(
            "update audit anchor",
            self.api.core.replace_namespaced_config_map,
            self.name,
            self.namespace,
            body,
        )

    def _current(self) -> AnchorState | None:
        """The anchored state; a ConfigMap without a valid head is overwritten (as before)."""
        try:
            cm = call(self.api.core.read_namespaced_config_map, self.name, self.namespace)
        except NotFoundError:
            return None
        rv = cm.get("metadata", {}).get("resourceVersion", "")
        return state_of(cm) or AnchorState(Head(0, ""), (), rv)


class AnchorAheadError(Exception):
    pass


def state_of(cm: dict[str, object]) -> AnchorState | None:
    head = head_of(cm)
    if head is None:
        return None
    data = cm.get("data")
    ids = data.get("recentIds") if isinstance(data, dict) else None
    meta = cm.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    recent = tuple(i for i in ids.split("\n") if i) if isinstance(ids, str) else ()
    runs = decode_runs(data.get("releaseRuns") if isinstance(data, dict) else None)
    return AnchorState(head, recent, rv if isinstance(rv, str) else "", runs)


def extend_runs(
    runs: Mapping[str, tuple[int, int]], record_id: str | None
) -> dict[str, tuple[int, int]]:
    """``runs`` after appending ``record_id``: its release's run grows by one when the
    number follows it, else starts again there; the most recently extended last."""
    out = dict(runs)
    parsed = release_record(record_id) if record_id is not None else None
    if parsed is None:
        return out
    key, number = parsed
    run = out.pop(key, None)
    out[key] = (run[0], number) if run is not None and run[1] + 1 == number else (number, number)
    while len(out) > RELEASE_RUNS:
        del out[next(iter(out))]
    return out


def encode_runs(runs: Mapping[str, tuple[int, int]]) -> str:
    return "\n".join(f"{key} {first} {last}" for key, (first, last) in runs.items())


def decode_runs(text: object) -> dict[str, tuple[int, int]]:
    """The runs a ConfigMap holds; a line that does not parse is skipped (it only costs a
    duplicate append, never a lost record)."""
    runs: dict[str, tuple[int, int]] = {}
    if not isinstance(text, str):
        return runs
    for line in text.split("\n"):
        parts = line.split(" ")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            first, last = int(parts[1]), int(parts[2])
            if first <= last:
                runs[parts[0]] = (first, last)
    return runs


def head_of(cm: dict[str, object]) -> Head | None:
    data = cm.get("data") if isinstance(cm, dict) else None
    if not isinstance(data, dict):
        return None
    seq, digest = data.get("seq"), data.get("hash")
    if not (isinstance(seq, str) and seq.isdigit() and isinstance(digest, str)):
        return None
    return Head(int(seq), digest)
