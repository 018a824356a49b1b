"""Provenance bound to the pod template it sits on."""

from __future__ import annotations

from typing import Any

from controller.core.gates.provenance import evaluate_provenance
from controller.core.provenance_annotations import provenance_from_annotations
from controller.core.provenance_binding import (
    IMAGES,
    binding_problems,
    image_digests,
    template_images,
)
from tests.unit.lane_fixtures import lane

DIGEST = "sha256:" + "ab" * 32


def template(images: list[str], **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"annotations": annotations},
        "spec": {
            "initContainers": [{"name": "init", "image": images[0]}],
            "containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(images[1:])],
        },
    }


GOOD = {
    "changelane.dev/agent": "claude-code:claude-opus-4",
    "changelane.dev/change": "abc1234",
    "changelane.dev/tests": "passed",
}


def test_images_are_read_from_init_and_app_containers() -> None:
    t = template(["init:1", f"ghcr.io/acme/docs@{DIGEST}", "sidecar:2"])
    assert template_images(t) == ["init:1", f"ghcr.io/acme/docs@{DIGEST}", "sidecar:2"]
    assert image_digests(template_images(t)) == [DIGEST]


def test_the_images_annotation_must_list_exactly_what_the_template_runs() -> None:
    images = ["init:1", "docs:2"]
    listed = {**GOOD, IMAGES: "init:1, docs:2"}
    assert binding_problems(template(images, **listed)) == []
    (missing,) = binding_problems(template(images, **GOOD))
    assert missing.field == "images"
    assert str(missing) == (
        "changelane.dev/images: is missing; expected the pod template's image references: "
        "init:1, docs:2"
    )
    (stale,) = binding_problems(template(["init:1", "docs:3"], **listed))
    assert "does not list 'docs:3' that the pod template runs" in stale.message
    assert "lists 'docs:2' that the pod template does not run" in stale.message


def test_provenance_carried_over_from_the_previous_template_is_refused() -> None:
    """`kubectl set image` keeps the previous template's annotations."""
    before = template(["init:1", "docs:2"], **{**GOOD, IMAGES: "init:1 docs:2"})
    after = template(["init:1", "docs:2"], **{**GOOD, IMAGES: "init:1 docs:2"})
    after["spec"]["containers"][0]["env"] = [{"name": "X", "value": "1"}]
    (carried,) = binding_problems(after, before)
    assert carried.field == "carriedOver"
    assert "carried over unchanged from the previous pod template (change 'abc1234')" in str(
        carried
    )
    fresh = template(["init:1", "docs:2"], **{**GOOD, "changelane.dev/change": "def5678"})
    fresh["metadata"]["annotations"][IMAGES] = "init:1 docs:2"
    assert binding_problems(fresh, before) == []


def test_the_gate_refuses_unbound_provenance_unless_the_lane_opts_out() -> None:
    t = template(["init:1", "docs:3"], **{**GOOD, IMAGES: "init:1 docs:2"})
    parsed = provenance_from_annotations(t["metadata"]["annotations"])
    problems = [*parsed.problems, *binding_problems(t)]
    results = evaluate_provenance(lane(), parsed.provenance, problems=problems)
    assert any(not r.passed and "changelane.dev/images" in r.reason for r in results)
    relaxed = lane(**{"provenance.bindImages": False})
    results = evaluate_provenance(relaxed, parsed.provenance, problems=problems)
    assert all(r.passed for r in results if r.gate == "provenance")
