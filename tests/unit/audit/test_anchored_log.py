"""Two leaders' logs, one anchor: each record is in the chain once, even when a new leader
replays an outbox the old one already appended (issue 19: duplicate audit ids)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.adapters.audit.anchor import RECENT_IDS, AuditAnchor
from controller.adapters.audit.log import FsyncPolicy
from controller.adapters.audit.segments import verify_segments
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
