"""The informer's cache transform keeps the same JSON, sharing repeated strings."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from controller.adapters.kube.lean_informer import lean_object, lean_release, same_but_version
from controller.core.audit import AuditRecord, Decision
from controller.core.packed_status import PackedField, unpacked
from controller.runtime.indexes import parse_release_summary
from controller.runtime.objects import parse_release


def test_a_release_s_repeated_queries_are_one_string_in_the_cache() -> None:
    query = 'sum(increase(http_requests_total{namespace="shop", app="web", track="canary"}[30s]))'
    assert len(query) > 64  # longer than the strings interned for any key
    measurements = [{"check": "errors", "query": query, "message": "x" * 80} for _ in range(3)]
    body = json.dumps({"metadata": {"name": "web-1"}, "status": {"measurements": measurements}})
    cached = lean_object(json.loads(body))
    kept = cached["status"]["measurements"]
    assert kept == measurements  # the same JSON
    assert kept[0]["query"] is kept[1]["query"] is kept[2]["query"]
    assert kept[0]["message"] is not kept[1]["message"]  # other long text is left alone


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)


@given(st.lists(st.dictionaries(st.text(), json_values, max_size=4), min_size=1, max_size=6))
def test_a_cached_release_keeps_its_history_packed_and_gives_it_back_unchanged(
    history: list[dict[str, object]],
) -> None:
    raw = {
        "metadata": {"name": "web-1"},
        "status": {"phase": "Progressing", "measurements": history},
    }
    cached = lean_release(json.loads(json.dumps(raw)))
    assert isinstance(cached["status"]["measurements"], PackedField)
    assert unpacked(cached) == raw
    assert raw["status"]["measurements"] is history, "the event's object is not edited"


def test_a_release_read_from_the_cache_parses_as_the_api_sent_it() -> None:
    rel = lane_release_doc(measurements=20)
    cached = lean_release(json.loads(json.dumps(rel)))
    again = lean_release(json.loads(json.dumps(rel)))
    assert same_but_version(cached, again), "an unchanged history is no change"
    parsed = parse_release(cached)
    assert parsed is not None and len(parsed.status.measurements) == 20
    assert parsed == parse_release(rel)
    summary = parse_release_summary(cached)
    assert summary is not None and summary.status.measurements == []
    # A history that is not a list is left for the reconcile to report as it arrived.
    bad = {**rel, "status": {**rel["status"], "measurements": "garbage"}}
    assert lean_release(bad)["status"]["measurements"] == "garbage"
    assert parse_release(lean_release(bad)) is None


def lane_release_doc(measurements: int) -> dict[str, object]:
    query = 'sum by (workload, track) (rate(http_requests_total{namespace="shop"}[1m]))'
    history = [
        {
            "check": "errors",
            "time": f"2026-01-01T12:{k:02d}:00Z",
            "step": 0,
            "verdict": "Pass",
            "canary": 0.001 * k,
            "threshold": 0.05,
            "statistic": "value",
            "query": query,
        }
        for k in range(measurements)
    ]
    return {
        "apiVersion": "changelane.dev/v1alpha1",
        "kind": "LaneRelease",
        "metadata": {"name": "web-1", "namespace": "shop", "resourceVersion": "7", "uid": "u"},
        "spec": {
            "lane": "web-lane",
            "target": {"namespace": "shop", "name": "web"},
            "from": {"podTemplateHash": "a"},
            "to": {"podTemplateHash": "b"},
        },
        "status": {"phase": "Progressing", "measurements": history},
    }


def outbox_doc(phase: str) -> dict[str, object]:
    """A release whose outbox holds the last measurement's record (a quiet tick's, left for
    the next status write to clear: core.outbox)."""
    record = AuditRecord(
        id="u/7",
        time=datetime(2026, 1, 1, 12, 7, tzinfo=UTC),
        lane="web-lane",
        release="web-1",
        decision=Decision.MEASUREMENT,
        reason="errors: Inconclusive",
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    doc = lane_release_doc(measurements=3)
    status = {**doc["status"], "phase": phase, "outbox": [record]}  # type: ignore[dict-item]
    return {**doc, "status": status}


def test_a_cached_release_keeps_its_outbox_packed_and_parses_it_whole() -> None:
    rel = outbox_doc("Progressing")
    cached = lean_release(json.loads(json.dumps(rel)))
    assert isinstance(cached["status"]["outbox"], PackedField)
    assert unpacked(cached)["status"]["outbox"] == rel["status"]["outbox"]  # type: ignore[index]
    parsed = parse_release(cached)
    assert parsed is not None and [r.id for r in parsed.status.outbox] == ["u/7"]
    assert parsed == parse_release(rel)


def test_the_summary_drops_an_in_flight_outbox_and_keeps_a_finished_one() -> None:
    """Only the release's own reconcile replays an outbox in flight; retention reads a
    finished release's outbox (it deletes one only once its outbox is empty)."""
    flying = parse_release_summary(lean_release(outbox_doc("Progressing")))
    assert flying is not None and flying.status.outbox == []
    finished = parse_release_summary(lean_release(outbox_doc("Promoted")))
    assert finished is not None and [r.id for r in finished.status.outbox] == ["u/7"]
