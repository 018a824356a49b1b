"""The status write sends the RFC 7386 merge patch of what changed, and it is exact."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controller.runtime.commit import status_patch
from controller.sim.patching import merge_patch

# Status-shaped JSON: what status_wire produces (no nulls; exclude_none).
keys = st.sampled_from(["phase", "checks", "conditions", "lastAnalysisAt", "a", "b"])
leaves = st.one_of(st.integers(-3, 3), st.text(max_size=3), st.booleans())
values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=12,
)
statuses = st.dictionaries(keys, values, max_size=5)


@given(statuses, statuses)
def test_the_patch_turns_the_stored_status_into_the_new_one(stored: Any, new: Any) -> None:
    assert merge_patch(stored, status_patch(new, stored)) == new


def test_only_changed_fields_are_sent() -> None:
    stored = {
        "phase": "Progressing",
        "measurements": [1, 2],
        "lastAnalysisAt": "t1",
        "gateReason": "x",
        "budget": {"used": 1, "left": 2},
    }
    new = {
        "phase": "Progressing",
        "measurements": [1, 2, 3],
        "lastAnalysisAt": "t2",
        "budget": {"used": 2, "left": 2},
    }
    assert status_patch(new, stored) == {
        "gateReason": None,
        "measurements": [1, 2, 3],
        "lastAnalysisAt": "t2",
        "budget": {"used": 2},
    }
