"""One label-selector semantics: a lane's matchExpressions and the same selector written
as a string for the simulated API server select the same label sets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controller.core.selectors import requirement_matches
from controller.sim.selectors import parse_label_selector, selector_from_spec

KEYS = st.sampled_from(["app", "tier", "changelane.dev/lane"])
VALUES = st.sampled_from(["a", "b", "c"])
LABELS = st.dictionaries(KEYS, VALUES, max_size=3)
EXPRESSIONS = st.lists(
    st.fixed_dictionaries(
        {
            "key": KEYS,
            "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
            "values": st.lists(VALUES, min_size=1, max_size=2, unique=True),
        }
    ),
    max_size=3,
)


def as_string(expressions: list[dict[str, object]]) -> str:
    parts = []
    for e in expressions:
        values = ",".join(e["values"])  # type: ignore[arg-type]
        parts.append(
            {
                "In": f"{e['key']} in ({values})",
                "NotIn": f"{e['key']} notin ({values})",
                "Exists": f"{e['key']}",
                "DoesNotExist": f"!{e['key']}",
            }[str(e["operator"])]
        )
    return ",".join(parts)


@given(EXPRESSIONS, LABELS)
def test_expressions_and_selector_strings_agree(
    expressions: list[dict[str, object]], labels: dict[str, str]
) -> None:
    direct = all(
        requirement_matches(str(e["key"]), str(e["operator"]), e["values"], labels)  # type: ignore[arg-type]
        for e in expressions
    )
    assert selector_from_spec({"matchExpressions": expressions}).matches(labels) is direct
    if expressions:
        assert parse_label_selector(as_string(expressions)).matches(labels) is direct


def test_equality_and_absence() -> None:
    assert requirement_matches("app", "=", ["a"], {"app": "a"})
    assert not requirement_matches("app", "!=", ["a"], {"app": "a"})
    assert requirement_matches("app", "!=", ["a"], {})
    assert requirement_matches("app", "NotIn", ["a"], {})
    assert not requirement_matches("app", "In", ["a"], {})
