"""The store's label index: a list by label selector answers exactly what a scan of the
namespace would, through creates, relabels, deletes and namespaces deleted whole."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.sim.errors import ApiError
from controller.sim.selectors import parse_label_selector
from controller.sim.store import Store

NAMESPACES = ("a", "b")
NAMES = ("p0", "p1", "p2", "p3")
VALUES = ("x", "y")

labels = st.dictionaries(st.sampled_from(("app", "track")), st.sampled_from(VALUES), max_size=2)
ops = st.lists(
    st.tuples(
        st.sampled_from(("put", "delete", "drop-namespace")),
        st.sampled_from(NAMESPACES),
        st.sampled_from(NAMES),
        labels,
    ),
    max_size=30,
)
SELECTORS = (
    "app=x",
    "app=x,track=y",
    "app==y",
    "app in (x)",
    "app in (x, y)",
    "app=x,track!=y",
    "track",
    "",
)


def _put(store: Store, ns: str, name: str, wanted: dict[str, str]) -> None:
    body = {"metadata": {"name": name, "namespace": ns, "labels": wanted}, "data": {}}
    try:
        current = store.get_obj("configmaps", ns, name)
    except ApiError:
        store.create("configmaps", body)
        return
    current["metadata"]["labels"] = wanted
    store.update("configmaps", current)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_a_list_by_selector_is_the_scan_of_the_namespace(
    script: list[tuple[str, str, str, dict[str, str]]],
) -> None:
    store = Store()
    for ns in NAMESPACES:
        store.create("namespaces", {"metadata": {"name": ns}})
    for op, ns, name, wanted in script:
        try:
            if op == "put":
                _put(store, ns, name, wanted)
            elif op == "delete":
                store.delete("configmaps", ns, name)
            else:
                store.delete("namespaces", None, ns)
                store.create("namespaces", {"metadata": {"name": ns}})
        except ApiError:
            continue  # not found, or the namespace is still terminating
    for ns in NAMESPACES:
        everything = store.list("configmaps", ns).items
        for text in SELECTORS:
            selector = parse_label_selector(text)
            listed = [s.name for s in store.list("configmaps", ns, label_selector=text).items]
            scanned = [s.name for s in everything if selector.matches(s.labels)]
            assert listed == scanned, (ns, text)
