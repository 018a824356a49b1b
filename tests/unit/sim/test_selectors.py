from __future__ import annotations

import pytest

from controller.sim.errors import ApiError
from controller.sim.selectors import (
    parse_field_selector,
    parse_label_selector,
    selector_from_spec,
)

LABELS = {"app": "web", "tier": "front", "team.example.com/owner": "docs"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app == web", True),
        ("app!=web", False),
        ("app in (web, db)", True),
        ("app notin (web)", False),
        ("tier,app", True),
        ("!missing", True),
        ("!tier", False),
        ("team.example.com/owner=docs,tier in (front)", True),
        ("missing=", False),
        ("missing!=x", True),
    ],
)
def test_label_selector_matching(text: str, matches: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is matches


@pytest.mark.parametrize("text", ["app in (web", "=web", "app=web,", "a b", "app=(x)", "Bad Key=1"])
def test_invalid_label_selectors_are_400(text: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_label_selector(text)
    assert caught.value.code == 400


def test_selector_from_spec_handles_match_expressions() -> None:
    selector = selector_from_spec(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "back"]},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector.matches(LABELS)
    assert not selector.matches({**LABELS, "legacy": "1"})


def test_field_selector_rejects_unsupported_fields() -> None:
    supported = frozenset({"metadata.name"})
    selector = parse_field_selector("metadata.name!=a", supported)
    assert selector.matches(lambda f: "b")
    assert not selector.matches(lambda f: "a")
    with pytest.raises(ApiError) as caught:
        parse_field_selector("spec.x=1", supported)
    assert caught.value.code == 400 and "field label not supported" in caught.value.message
