from __future__ import annotations

from controller.sim.schemas import CrdSchema, product_crd_types, to_json_schema

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z]+$"},
                "mode": {"type": "string", "enum": ["a", "b"], "default": "a", "nullable": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    },
}


def test_nullable_becomes_a_null_type() -> None:
    mode = to_json_schema(SCHEMA)["properties"]["spec"]["properties"]["mode"]
    assert mode["type"] == ["string", "null"] and None in mode["enum"]


def test_unknown_fields_defaults_and_errors() -> None:
    schema = CrdSchema.from_openapi(SCHEMA)
    obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"},
           "spec": {"name": "ok", "extra": 1, "free": {"anything": {"goes": 1}}}}  # fmt: skip
    assert schema.unknown_fields(obj) == ["spec.extra"]
    pruned = schema.prune(obj)
    assert "extra" not in pruned["spec"] and pruned["spec"]["free"] == {"anything": {"goes": 1}}
    schema.apply_defaults(pruned)
    assert pruned["spec"]["mode"] == "a"
    assert schema.errors(pruned) == []
    bad = {"spec": {"name": "NOT", "mode": None}}
    assert [field for field, _ in schema.errors(bad)] == ["spec.name"]
    assert [field for field, _ in schema.errors({"spec": {}})] == ["spec.name"]


def test_product_crds_load_from_chart_and_from_models_alike() -> None:
    from_chart = {(t.kind, t.version, t.namespaced) for t in product_crd_types()}
    assert ("ChangeLane", "v1alpha1", False) in from_chart
    assert ("LaneRelease", "v1alpha1", True) in from_chart
