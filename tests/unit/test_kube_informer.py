"""The informer adapter knows it has synced without reading the client's private state:
the client's informer only starts watching once its first list is in the cache."""

from __future__ import annotations

import json
from typing import Any

from controller.adapters.kube.api import dict_lister


class _Response:
    def __init__(self, body: dict[str, Any]) -> None:
        self.data = json.dumps(body).encode()
        self.status = 200


def test_the_first_watch_call_says_the_list_has_landed() -> None:
    watched: list[bool] = []
    calls: list[dict[str, Any]] = []

    def list_fn(**kwargs: Any) -> _Response:
        calls.append(kwargs)
        return _Response({"metadata": {"resourceVersion": "7"}, "items": [{"a": 1}]})

    lister = dict_lister(list_fn, on_watch=lambda: watched.append(True))
    listed = lister()
    assert listed.items == [{"a": 1}] and listed.metadata.resource_version == "7"
    assert watched == [], "a list alone does not mean the cache holds it yet"
    lister(watch=True, resource_version="7")
    assert watched == [True]
    assert calls[-1]["watch"] is True and "_request_timeout" in calls[-1]
