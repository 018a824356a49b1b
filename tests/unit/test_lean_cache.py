"""The informer's cache transform keeps the same JSON, sharing repeated strings."""

from __future__ import annotations

import json

from controller.adapters.kube.lean_informer import lean_object


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
