"""Release indexes: found by lane and by workload, parsed once per resourceVersion."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controller.core.models import LaneRelease
from controller.runtime import indexes
from controller.runtime.indexes import ParseCache, ReleaseIndex


def _raw(name: str, lane: str, workload: str, rv: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": rv},
        "spec": {
            "lane": lane,
            "target": {"name": workload, "namespace": "shop"},
            "from": {},
            "to": {},
        },
        "status": status,
    }


def test_found_by_lane_and_workload_and_moved_or_removed_on_change() -> None:
    index = ReleaseIndex()
    index.upsert(_raw("web-1", "docs", "web", "1"))
    index.upsert(_raw("web-2", "docs", "web", "2"))
    index.upsert(_raw("api-1", "seo", "api", "3"))
    assert [r.name for r in index.of_lane("docs")] == ["web-1", "web-2"]
    assert [r.name for r in index.of_workload("shop", "api")] == ["api-1"]
    assert index.keys_of_workload("shop", "web") == [("shop", "web-1"), ("shop", "web-2")]
    index.upsert(_raw("web-2", "seo", "web", "4"))  # moved lanes (a hand edit)
    assert [r.name for r in index.of_lane("seo")] == ["api-1", "web-2"]
    index.remove(_raw("web-1", "docs", "web", "1"))
    assert index.of_lane("docs") == [] and index.keys_of_workload("shop", "web") == [
        ("shop", "web-2")
    ]


def test_an_unparseable_release_is_indexed_but_yields_nothing() -> None:
    index = ReleaseIndex()
    index.upsert(_raw("web-1", "docs", "web", "1", phase="NotAPhase"))
    index.upsert(_raw("web-2", "docs", "web", "2"))
    assert [r.name for r in index.of_lane("docs")] == ["web-2"]
    assert index.keys_of_workload("shop", "web") == [("shop", "web-1"), ("shop", "web-2")]


def test_parsed_once_per_resource_version() -> None:
    calls: list[str] = []

    def counting(raw: dict[str, Any]) -> LaneRelease | None:
        calls.append(raw["metadata"].get("resourceVersion", "-"))
        return indexes.parse_release(raw)

    cache: ParseCache[LaneRelease] = ParseCache(counting)
    first = cache.parse(_raw("web-1", "docs", "web", "1"))
    for _ in range(5):
        assert cache.parse(_raw("web-1", "docs", "web", "1")) is first
    changed = cache.parse(_raw("web-1", "docs", "web", "2", phase="Progressing"))
    assert changed is not None and changed.status.phase.value == "Progressing"
    assert calls == ["1", "2"]
    # Without a resourceVersion nothing can tell a change: parsed every time.
    no_rv = _raw("web-3", "docs", "web", "x")
    del no_rv["metadata"]["resourceVersion"]
    cache.parse(no_rv)
    cache.parse(no_rv)
    assert len(calls) == 4


_PHASES = ("Pending", "Progressing", "Promoted", "RolledBack")


def _gate_view(releases: list[LaneRelease]) -> list[tuple[Any, ...]]:
    return [
        (r.name, r.spec, r.status.phase, r.status.started_at, r.status.finished_at)
        for r in releases
    ]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["web-1", "web-2", "api-1"]),
            st.sampled_from(["docs", "seo"]),
            st.sampled_from(_PHASES),
            st.sampled_from([None, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]),
            st.booleans(),  # removed instead
        ),
        max_size=30,
    )
)
def test_the_gates_view_agrees_with_the_index_on_what_gates_read(
    changes: list[tuple[str, str, str, str | None, bool]],
) -> None:
    index = ReleaseIndex()
    for rv, (name, lane, phase, at, removed) in enumerate(changes, start=1):
        status: dict[str, Any] = {
            "phase": phase,
            "lastAnalysisAt": f"2026-01-01T00:00:{rv % 60:02d}Z",
        }
        if at is not None:
            status["startedAt"] = at
            if phase in ("Promoted", "RolledBack"):
                status["finishedAt"] = at
        raw = _raw(name, lane, name.split("-")[0], str(rv), **status)
        if removed:
            index.remove(raw)
        else:
            index.upsert(raw)
        for each in ("docs", "seo"):
            assert _gate_view(index.for_gates(each)) == _gate_view(index.of_lane(each))


def test_the_gates_view_is_not_rebuilt_for_a_status_write_the_gates_do_not_read() -> None:
    index = ReleaseIndex()
    index.upsert(_raw("web-1", "docs", "web", "1", phase="Progressing"))
    view = index.for_gates("docs")
    index.upsert(
        _raw(
            "web-1", "docs", "web", "2", phase="Progressing", lastAnalysisAt="2026-01-01T00:00:30Z"
        )
    )
    assert index.for_gates("docs") is view
    index.upsert(_raw("web-1", "docs", "web", "3", phase="RolledBack"))
    assert index.for_gates("docs") is not view
    assert index.for_gates("docs")[0].status.phase.value == "RolledBack"


def test_the_index_holds_releases_without_their_measurement_history() -> None:
    measurement = {"check": "errors", "time": "2026-01-01T00:00:00Z", "step": 0, "verdict": "Pass"}
    raw = _raw("web-1", "docs", "web", "1", phase="Progressing", measurements=[measurement] * 3)
    index = ReleaseIndex()
    index.upsert(raw)
    (summary,) = index.of_lane("docs")
    assert summary.status.measurements == [] and summary.status.phase.value == "Progressing"
    assert len(indexes.parse_release(raw).status.measurements) == 3  # a reconcile's parse
    assert raw["status"]["measurements"] == [measurement] * 3  # the cached copy is untouched
