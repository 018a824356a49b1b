"""Release indexes: found by lane and by workload, parsed once per resourceVersion."""

from __future__ import annotations

from typing import Any

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
