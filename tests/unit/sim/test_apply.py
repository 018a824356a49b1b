"""Server-side apply's pure parts: field sets, their fieldsV1 encoding and the 409's text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controller.sim import apply as ssa
from controller.sim.resources import default_registry

DEPLOYMENTS = default_registry().find("apps", "v1", "deployments")
assert DEPLOYMENTS is not None

names = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
containers = st.lists(
    st.fixed_dictionaries(
        {"name": names, "image": names},
        optional={"env": st.lists(st.fixed_dictionaries({"name": names, "value": names}))},
    ),
    unique_by=lambda c: c["name"],
    max_size=3,
)


def deployment(labels: dict[str, str], items: list[dict[str, object]]) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": labels, "uid": "x"},
        "spec": {"template": {"spec": {"containers": items}}},
        "status": {"replicas": 1},
    }


@given(st.dictionaries(names, names, max_size=4), containers)
def test_fieldsv1_round_trips(labels: dict[str, str], items: list[dict[str, object]]) -> None:
    fields = set(ssa.flatten(DEPLOYMENTS, deployment(labels, items)))
    assert ssa.decode(ssa.encode(fields)) == fields
    # server metadata and status (its own subresource) are nobody's on the main resource
    assert not any(p[:2] == ("f:metadata", "f:uid") or p[0] == "f:status" for p in fields)


def test_list_items_are_keyed_and_paths_print_as_the_api_server_prints_them() -> None:
    fields = ssa.flatten(
        DEPLOYMENTS,
        {
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "spec": {"containers": [{"name": "app", "ports": [{"containerPort": 80}]}]}
                },
            }
        },
    )
    port = (
        "f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"app"}', "f:ports",
        'k:{"containerPort":80,"protocol":"TCP"}',
    )  # fmt: skip
    assert port in fields
    assert ("f:spec", "f:selector") in fields  # atomic: one leaf
    assert ssa.path_string(port) == (
        '.spec.template.spec.containers[name="app"].ports[containerPort=80,protocol="TCP"]'
    )


def test_the_conflict_message_lists_fields_per_manager() -> None:
    replicas = ("f:spec", "f:replicas")
    image = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"app"}', "f:image")
    err = ssa.conflict_error(
        {'"hpa" using apps/v1': [replicas], '"ci"': [image]}, "deployments", "web", "apps"
    )
    assert err.code == 409 and err.reason == "Conflict"
    assert err.message == (
        'Apply failed with 2 conflicts: conflicts with "ci"\n'
        '- .spec.template.spec.containers[name="app"].image\n'
        'conflicts with "hpa" using apps/v1\n'
        "- .spec.replicas"
    )
    assert [c["field"] for c in err.causes or []] == [
        '.spec.template.spec.containers[name="app"].image',
        ".spec.replicas",
    ]
