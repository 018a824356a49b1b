"""Store semantics that the HTTP conformance suite cannot easily reach."""

from __future__ import annotations

import pytest

from controller.sim.errors import ApiError
from controller.sim.store import Store


def _cm(name: str, ns: str = "default", **labels: str) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": ns, "labels": labels}, "data": {}}


def test_history_limit_makes_old_resource_versions_expire() -> None:
    store = Store(history_limit=3)
    first = store.create("configmaps", _cm("a"))
    for i in range(5):
        store.patch("configmaps", "default", "a", {"data": {"i": str(i)}})
    with pytest.raises(ApiError) as caught:
        store.watch("configmaps", "default", resource_version=str(first.rv))
    assert caught.value.code == 410
    recent = store.watch("configmaps", "default", resource_version=str(store.resource_version - 2))
    assert len(recent.take(0.01) or []) == 2


def test_no_op_update_keeps_resource_version() -> None:
    store = Store()
    created = store.create("configmaps", _cm("a"))
    again = store.update("configmaps", created.obj())
    assert again.rv == created.rv


def test_namespace_deletion_removes_its_objects() -> None:
    store = Store()
    store.create("namespaces", {"metadata": {"name": "tmp"}})
    store.create("configmaps", _cm("a", "tmp"))
    _, gone = store.delete("namespaces", None, "tmp")
    assert gone
    assert store.list("configmaps", "tmp").items == []
    with pytest.raises(ApiError):
        store.get("namespaces", None, "tmp")


def test_owner_deletion_cascades_unless_orphaned() -> None:
    store = Store()
    owner = store.create("configmaps", _cm("owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid}
    child = _cm("child")
    child["metadata"]["ownerReferences"] = [ref]  # type: ignore[index]
    store.create("configmaps", child)
    orphan = _cm("orphan")
    orphan["metadata"]["ownerReferences"] = [ref]  # type: ignore[index]
    store.create("configmaps", orphan)
    store.delete("configmaps", "default", "owner")
    assert [s.name for s in store.list("configmaps", "default").items] == []

    owner = store.create("configmaps", _cm("owner"))
    ref["uid"] = owner.uid
    store.create("configmaps", orphan)
    store.delete("configmaps", "default", "owner", propagation="Orphan")
    kept = store.get("configmaps", "default", "orphan").obj()
    assert "ownerReferences" not in kept["metadata"]


def test_new_finalizers_refused_while_deleting() -> None:
    store = Store()
    body = _cm("f")
    body["metadata"]["finalizers"] = ["a"]  # type: ignore[index]
    store.create("configmaps", body)
    store.delete("configmaps", "default", "f")
    with pytest.raises(ApiError) as caught:
        store.patch("configmaps", "default", "f", {"metadata": {"finalizers": ["a", "b"]}})
    assert caught.value.code == 403
