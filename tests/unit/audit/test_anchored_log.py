"""Two leaders' logs, one anchor: each record is in the chain once, even when a new leader
replays an outbox the old one already appended (issue 19: duplicate audit ids)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.adapters.audit.anchor import (
    RECENT_IDS,
    AnchorState,
    AuditAnchor,
    decode_runs,
    encode_runs,
    extend_runs,
)
from controller.adapters.audit.log import FsyncPolicy
from controller.adapters.audit.segments import Head, verify_segments
from controller.adapters.kube.api import ConflictError, KubeApi
from controller.adapters.kube.client import api_client
from controller.runtime.audit_chain import AnchoredAuditLog
from controller.sim.cluster import SimCluster
from tests.notify.records import record

NS = "changelane-system"


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def test_a_replayed_record_the_old_leader_anchored_is_not_appended_again(tmp_path: Path) -> None:
    with SimCluster(controllers=False) as sim:
        sim.store.create("namespaces", {"metadata": {"name": NS}})
        api = KubeApi(api_client(str(sim.write_kubeconfig(tmp_path / "kubeconfig"))))
        anchor = AuditAnchor(api, NS)
        a_path, b_path = tmp_path / "a" / "audit.jsonl", tmp_path / "b" / "audit.jsonl"
        a_path.parent.mkdir()
        b_path.parent.mkdir()
        a = AnchoredAuditLog(a_path, FsyncPolicy.NEVER, anchor, "a")
        b = AnchoredAuditLog(b_path, FsyncPolicy.NEVER, anchor, "b")

        a.emit(record(n=1, id="uid/1"))
        a.emit(record(n=2, id="uid/2"))  # a's last decision: appended, anchored, not cleared
        # b leads now and replays the outbox a left in the release's status.
        b.emit(record(n=2, id="uid/2"))
        assert b.appended == 0
        b.emit(record(n=3, id="uid/3"))
        # a leads again (leadership came back between two records): it continues b's chain.
        a.emit(record(n=3, id="uid/3"))
        a.emit(record(n=4, id="uid/4"))
        a.close()
        b.close()

        segments = sorted(p for d in (a_path.parent, b_path.parent) for p in d.iterdir())
        ids = [i for p in segments for i in _ids(p)]
        head = anchor.read()
        assert sorted(ids) == ["uid/1", "uid/2", "uid/3", "uid/4"]
        result = verify_segments(segments, head)
        assert result.ok, result.problems
        assert result.records == 4 and not result.warnings
        state = anchor.read_state()
        assert state is not None and state.recent_ids[-1] == "uid/4"


def test_the_anchor_remembers_a_bounded_number_of_ids_and_refuses_a_stale_writer(
    tmp_path: Path,
) -> None:
    with SimCluster(controllers=False) as sim:
        sim.store.create("namespaces", {"metadata": {"name": NS}})
        api = KubeApi(api_client(str(sim.write_kubeconfig(tmp_path / "kubeconfig"))))
        log = AnchoredAuditLog(tmp_path / "audit.jsonl", FsyncPolicy.NEVER, AuditAnchor(api, NS))
        for n in range(1, RECENT_IDS + 11):
            log.emit(record(n=n, id=f"uid/{n}"))
        anchor = AuditAnchor(api, NS)
        state = anchor.read_state()
        assert state is not None and len(state.recent_ids) == RECENT_IDS
        assert state.recent_ids[0] == "uid/11" and state.head.seq == RECENT_IDS + 10
        # A writer whose view of the anchor is stale (another leader anchored since) is
        # refused: its record stays in the outbox and is retried against the new head.
        log.emit(record(n=0, id="uid/late"))
        with pytest.raises(ConflictError):
            anchor.write(state.head, "stale", "uid/x", known=state)


def test_a_new_owner_drops_the_quiet_ticks_records_of_every_release_the_old_one_appended(
    tmp_path: Path,
) -> None:
    """Each release in flight may hold its last measurement in its outbox (core.outbox):
    far more than the anchor's recent ids; its per-release runs vouch for them."""
    releases = RECENT_IDS + 44
    with SimCluster(controllers=False) as sim:
        sim.store.create("namespaces", {"metadata": {"name": NS}})
        api = KubeApi(api_client(str(sim.write_kubeconfig(tmp_path / "kubeconfig"))))
        anchor = AuditAnchor(api, NS)
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        a = AnchoredAuditLog(tmp_path / "a" / "audit.jsonl", FsyncPolicy.NEVER, anchor, "a")
        b = AnchoredAuditLog(tmp_path / "b" / "audit.jsonl", FsyncPolicy.NEVER, anchor, "b")
        for tick in (1, 2):
            for r in range(releases):
                a.emit(record(n=tick, id=f"rel-{r}/{tick}"))
        for r in range(releases):  # b replays every outbox a left
            b.emit(record(n=2, id=f"rel-{r}/2"))
        assert b.appended == 0
        b.emit(record(n=3, id="rel-0/3"))
        assert b.appended == 1, "the next record is appended"
        a.close()
        b.close()


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 8)), max_size=40))
def test_a_release_run_vouches_only_for_numbers_appended(appends: list[tuple[str, int]]) -> None:
    runs: dict[str, tuple[int, int]] = {}
    for key, number in appends:
        runs = extend_runs(runs, f"{key}/{number}")
    state = AnchorState(Head(len(appends), "h"), (), "1", decode_runs(encode_runs(runs)))
    appended = {f"{key}/{number}" for key, number in appends}
    for key in "abc":
        for number in range(1, 9):
            rid = f"{key}/{number}"
            if state.holds(rid):
                assert rid in appended
    if appends:
        key, number = appends[-1]
        assert state.holds(f"{key}/{number}"), "the last append is always vouched for"
