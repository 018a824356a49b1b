"""Bind a release's provenance to what it ships (pure).

Provenance annotations say who made a change; nothing tied them to the pod template they
sit on. ``kubectl set image`` keeps the previous template's annotations, so a new image
passed the gate carrying the record of another release. Two checks close that:

* ``changelane.dev/images`` must list exactly the images of the pod template (containers
  and init containers), as written there (``repo:tag`` or ``repo@sha256:...``). A pipeline
  that builds the image writes the reference it deployed; an edit that changes the image
  without new provenance no longer matches.
* Provenance annotations identical to those of the previous pod template are carried over,
  not written for this change: refused with that reason.

Each problem is an :class:`AnnotationProblem`, recorded on the LaneRelease like any other
unreadable provenance and reported by the ``provenance`` gate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from controller.core.provenance_annotations import (
    FIELD_ANNOTATION,
    PREFIX,
    TRAILERS,
    AnnotationProblem,
)

IMAGES = PREFIX + "images"
#: Problem fields (``AnnotationProblem.field``) of the checks in this module.
IMAGES_FIELD = "images"
CARRIED_OVER_FIELD = "carriedOver"
MAX_IMAGES_LENGTH = 8192
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")
#: Annotations that make up the release's record (compared with the previous template's).
RECORD_ANNOTATIONS = (*FIELD_ANNOTATION.values(), TRAILERS, IMAGES)


def template_images(template: Mapping[str, Any]) -> list[str]:
    """Every image the pod template runs, init containers first, in order."""
    spec = template.get("spec") if isinstance(template, Mapping) else None
    if not isinstance(spec, Mapping):
        return []
    found: list[str] = []
    for key in ("initContainers", "containers"):
        containers = spec.get(key)
        if isinstance(containers, list):
            found += [
                str(c.get("image"))
                for c in containers
                if isinstance(c, Mapping) and c.get("image") is not None
            ]
    return found


def image_digests(images: list[str]) -> list[str]:
    """``sha256:...`` of every digest-pinned reference."""
    return [m.group(1) for image in images if (m := _DIGEST.search(image))]


def _annotations(template: Mapping[str, Any] | None) -> Mapping[str, Any]:
    metadata = template.get("metadata") if isinstance(template, Mapping) else None
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    return annotations if isinstance(annotations, Mapping) else {}


def binding_problems(
    template: Mapping[str, Any], previous: Mapping[str, Any] | None = None
) -> list[AnnotationProblem]:
    """Why the template's provenance does not vouch for this template (empty if it does)."""
    annotations = _annotations(template)
    problems = _images_problems(annotations.get(IMAGES), template_images(template))
    if previous is not None:
        problems += _carried_over(annotations, _annotations(previous))
    return problems


def _images_problems(listed: object, images: list[str]) -> list[AnnotationProblem]:
    shown = ", ".join(images) or "(none)"
    if listed is None:
        return [
            AnnotationProblem(
                IMAGES,
                f"is missing; expected the pod template's image references: {shown}",
                IMAGES_FIELD,
            )
        ]
    if not isinstance(listed, str) or len(listed) > MAX_IMAGES_LENGTH:
        return [
            AnnotationProblem(
                IMAGES,
                f"expected a string of at most {MAX_IMAGES_LENGTH} characters",
                IMAGES_FIELD,
            )
        ]
    entries = {entry for entry in re.split(r"[\s,]+", listed.strip()) if entry}
    unlisted = [image for image in images if image not in entries]
    foreign = sorted(entries - set(images))
    if not unlisted and not foreign:
        return []
    parts = []
    if unlisted:
        parts.append(f"does not list {', '.join(unlisted)[:400]!r} that the pod template runs")
    if foreign:
        parts.append(f"lists {', '.join(foreign)[:400]!r} that the pod template does not run")
    return [
        AnnotationProblem(
            IMAGES,
            f"{'; '.join(parts)}; expected exactly the pod template's images: {shown[:400]}",
            IMAGES_FIELD,
        )
    ]


def _carried_over(
    annotations: Mapping[str, Any], previous: Mapping[str, Any]
) -> list[AnnotationProblem]:
    record = {k: annotations.get(k) for k in RECORD_ANNOTATIONS if k in annotations}
    before = {k: previous.get(k) for k in RECORD_ANNOTATIONS if k in previous}
    if not record or record != before:
        return []
    change = record.get(FIELD_ANNOTATION["change"])
    named = f" (change {str(change)[:120]!r})" if change else ""
    return [
        AnnotationProblem(
            "provenance",
            f"annotations are carried over unchanged from the previous pod template{named}; "
            "expected this release's own provenance (a new change reference and the images "
            "it ships)",
            CARRIED_OVER_FIELD,
        )
    ]
