from __future__ import annotations

import pytest

from controller.sim.errors import ApiError
from controller.sim.patching import json_patch, merge_patch, strategic_merge_patch

POD_SPEC = {
    "containers": [
        {"name": "a", "image": "a:1", "ports": [{"containerPort": 80}],
         "env": [{"name": "X", "value": "1"}]},
        {"name": "b", "image": "b:1"},
    ],
    "volumes": [{"name": "v", "emptyDir": {}}],
}  # fmt: skip


def test_merge_patch_replaces_lists_and_deletes_nulls() -> None:
    out = merge_patch({"a": {"b": 1, "c": 2}, "l": [1, 2]}, {"a": {"c": None, "d": 3}, "l": [3]})
    assert out == {"a": {"b": 1, "d": 3}, "l": [3]}


def test_strategic_merge_by_name_and_container_port() -> None:
    patch = {
        "containers": [
            {"name": "a", "image": "a:2", "ports": [{"containerPort": 80, "name": "http"},
                                                    {"containerPort": 9090}],
             "env": [{"name": "Y", "value": "2"}]},
        ]
    }  # fmt: skip
    out = strategic_merge_patch(POD_SPEC, patch)
    a, b = out["containers"]
    assert a["image"] == "a:2" and b == {"name": "b", "image": "b:1"}
    assert a["ports"] == [{"containerPort": 80, "name": "http"}, {"containerPort": 9090}]
    assert [e["name"] for e in a["env"]] == ["X", "Y"]
    assert out["volumes"] == POD_SPEC["volumes"]


def test_strategic_directives() -> None:
    deleted = strategic_merge_patch(POD_SPEC, {"containers": [{"name": "b", "$patch": "delete"}]})
    assert [c["name"] for c in deleted["containers"]] == ["a"]
    replaced = strategic_merge_patch(
        POD_SPEC, {"containers": [{"name": "z", "image": "z"}, {"$patch": "replace"}]}
    )
    assert replaced["containers"] == [{"name": "z", "image": "z"}]
    map_replaced = strategic_merge_patch(
        {"m": {"a": 1, "b": 2}}, {"m": {"c": 3, "$patch": "replace"}}
    )
    assert map_replaced == {"m": {"c": 3}}
    ordered = strategic_merge_patch(
        POD_SPEC, {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}
    )
    assert "$setElementOrder/containers" not in ordered


def test_strategic_list_item_without_merge_key_is_400() -> None:
    with pytest.raises(ApiError) as caught:
        strategic_merge_patch(POD_SPEC, {"containers": [{"image": "nameless"}]})
    assert caught.value.code == 400


def test_json_patch_failures_are_422() -> None:
    with pytest.raises(ApiError) as caught:
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    assert caught.value.code == 422
    with pytest.raises(ApiError) as caught:
        json_patch({"a": 1}, [{"op": "remove", "path": "/missing"}])
    assert caught.value.code == 422
    with pytest.raises(ApiError) as caught:
        json_patch({"a": 1}, {"op": "remove"})
    assert caught.value.code == 400
