from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from controller.core.flags import (
    FlagDefinitionError,
    detect_foreign_edit,
    disable_flag,
    flag_fingerprint,
    parse_fingerprints,
    ramp_flag,
    ramp_weight,
    render_fingerprints,
)

KEY = "new-search"


def definitions() -> dict[str, Any]:
    return {
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": {
            KEY: {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
            },
            "other": {"state": "ENABLED", "variants": {"a": "a"}, "defaultVariant": "a"},
        },
    }


def variants_for(defs: dict[str, Any], keys: list[str]) -> dict[str, bool]:
    core = FlagdCore()
    core.set_flags(defs)
    return {
        k: core.resolve_boolean_value(KEY, False, EvaluationContext(targeting_key=k)).value
        for k in keys
    }


USERS = [f"user-{i}" for i in range(2000)]
WEIGHTS = [0, 1, 5, 10, 25, 50, 75, 99, 100]


def test_raising_the_weight_never_moves_a_user_back_with_the_real_flagd_evaluator() -> None:
    defs = definitions()
    previous: dict[str, bool] = dict.fromkeys(USERS, False)
    shares = []
    for weight in WEIGHTS:
        defs = ramp_flag(defs, KEY, on_variant="on", off_variant="off", weight=weight)
        now = variants_for(defs, USERS)
        moved_back = [u for u in USERS if previous[u] and not now[u]]
        assert moved_back == [], f"weight {weight} moved {len(moved_back)} users back"
        shares.append(sum(now.values()) / len(USERS))
        previous = now
    assert shares[0] == 0.0 and shares[-1] == 1.0
    # The share tracks the weight (binomial noise on 2,000 users is about 1 point).
    for weight, share in zip(WEIGHTS, shares, strict=True):
        assert abs(share - weight / 100) < 0.04, (weight, share)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 100), min_size=2, max_size=5).map(sorted))
def test_monotone_for_any_increasing_weights(weights: list[int]) -> None:
    users = USERS[:300]
    defs = definitions()
    previous = dict.fromkeys(users, False)
    for weight in weights:
        defs = ramp_flag(defs, KEY, on_variant="on", off_variant="off", weight=weight)
        now = variants_for(defs, users)
        assert all(now[u] for u in users if previous[u])
        previous = now


def test_ramp_shape_and_purity() -> None:
    original = definitions()
    snapshot = copy.deepcopy(original)
    out = ramp_flag(original, KEY, on_variant="on", off_variant="off", weight=30)
    assert original == snapshot
    assert out["flags"][KEY]["targeting"] == {"fractional": [["on", 30], ["off", 70]]}
    assert out["flags"][KEY]["defaultVariant"] == "off"
    assert out["flags"]["other"] == original["flags"]["other"]
    assert out["$schema"] == original["$schema"]
    assert ramp_weight(out, KEY, "on") == 30
    off = disable_flag(out, KEY, on_variant="on", off_variant="off")
    assert ramp_weight(off, KEY, "on") == 0
    assert not any(variants_for(off, USERS[:200]).values())


def test_refusals_say_what_was_expected() -> None:
    defs = definitions()
    cases = [
        (dict(flag_key="missing", weight=10), "flag 'missing': not found"),
        (dict(flag_key=KEY, weight=101), "weight 101: expected an integer from 0 to 100"),
        (dict(flag_key=KEY, weight=10, on_variant="beta"), "no variant 'beta'"),
    ]
    for kwargs, message in cases:
        args: dict[str, Any] = {"on_variant": "on", "off_variant": "off", **kwargs}
        with pytest.raises(FlagDefinitionError, match=message):
            ramp_flag(defs, **args)
    owned = definitions()
    owned["flags"][KEY]["targeting"] = {"if": [{"==": [{"var": "team"}, "qa"]}, "on", "off"]}
    with pytest.raises(FlagDefinitionError, match="has its own targeting"):
        ramp_flag(owned, KEY, on_variant="on", off_variant="off", weight=10)


def test_edit_detection() -> None:
    ours = ramp_flag(definitions(), KEY, on_variant="on", off_variant="off", weight=25)
    fingerprint = flag_fingerprint(ours, KEY)
    assert fingerprint is not None and fingerprint.startswith("sha256:")
    assert not detect_foreign_edit(ours, KEY, None).edited  # first write: nothing to compare
    assert not detect_foreign_edit(copy.deepcopy(ours), KEY, fingerprint).edited
    # Another flag changing is not an edit of ours.
    other_changed = copy.deepcopy(ours)
    other_changed["flags"]["other"]["defaultVariant"] = "a"
    other_changed["flags"]["other"]["variants"]["b"] = "b"
    assert not detect_foreign_edit(other_changed, KEY, fingerprint).edited
    # A human pulls the weight back to 5.
    human = copy.deepcopy(ours)
    human["flags"][KEY]["targeting"]["fractional"] = [["on", 5], ["off", 95]]
    check = detect_foreign_edit(human, KEY, fingerprint)
    assert check.edited and "edited by someone else mid-ramp" in check.reason
    removed = copy.deepcopy(ours)
    del removed["flags"][KEY]
    assert "removed by someone else" in detect_foreign_edit(removed, KEY, fingerprint).reason


def test_fingerprint_annotation_round_trip() -> None:
    text = render_fingerprints({"b": "sha256:2", "a": "sha256:1"})
    assert text == '{"a":"sha256:1","b":"sha256:2"}'
    assert parse_fingerprints(text) == {"a": "sha256:1", "b": "sha256:2"}
    assert parse_fingerprints(None) == {}
    assert parse_fingerprints("{garbled") is None
    assert parse_fingerprints('{"a": 1}') is None
