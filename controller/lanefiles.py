"""Reading ``ChangeLane`` declarations from YAML files, with precise, per-document errors.

One bad lane never stops the others: every document of every file is checked and each
problem is reported with its file, document index, field path and what was expected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from controller import strict_yaml
from controller.core.models import ChangeLane
from controller.core.text import printable

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Problem:
    file: str
    document: int
    field: str
    expected: str

    def __str__(self) -> str:
        # The file's content (and its name) may hold escape sequences meant for a terminal.
        where = f"{printable(self.file)}: document {self.document}"
        field, expected = printable(self.field), printable(self.expected)
        return f"{where}: {field}: {expected}" if field else f"{where}: {expected}"


@dataclass(frozen=True)
class LoadedLane:
    file: str
    document: int
    lane: ChangeLane


def field_path(loc: Iterable[int | str]) -> str:
    """``('spec', 'strategy', 'steps', 1, 'weight')`` -> ``spec.strategy.steps[1].weight``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _known_fields(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str] | None:
    """Field names (wire form) of the model at ``loc``, to suggest when a field is unknown."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        by_alias = {(f.alias or n): f for n, f in current.model_fields.items()}
        field = by_alias.get(part) or current.model_fields.get(part)
        if field is None:
            return None
        current = _inner_model(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted((f.alias or n) for n, f in current.model_fields.items())
    return None


def _inner_model(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in args or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def explain(error: Any) -> str:
    """What was expected, in words, for one pydantic error."""
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_fields(ChangeLane, tuple(error["loc"][:-1]))
        hint = f"; known fields here: {', '.join(known)}" if known else ""
        return f"unknown field{hint}"
    if kind == "missing":
        return "required field is missing"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    return f"expected {message[0].lower()}{message[1:]}" if kind != "value_error" else message


def problems_from_validation(
    file: str, document: int, exc: ValidationError, doc: Any = None
) -> list[Problem]:
    return [
        Problem(file, document, field_path(err["loc"]), explain(err) + _subject(doc, err["loc"]))
        for err in exc.errors(include_url=False)
    ]


def _subject(doc: Any, loc: tuple[int | str, ...]) -> str:
    """`` (lane L, check C)`` for a problem inside an analysis check, so the message names
    them and not only an index."""
    if not isinstance(doc, dict) or tuple(loc[:3]) != ("spec", "analysis", "checks"):
        return ""
    lane = (
        (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
    )
    try:
        check = doc["spec"]["analysis"]["checks"][loc[3]].get("name")
    except (KeyError, IndexError, TypeError, AttributeError):
        check = None
    if lane is None or check is None:
        return ""
    return f" (lane {lane}, check {check})"


def iter_yaml_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES)
        else:
            yield path


def load_documents(text: str | bytes, file: str) -> tuple[list[tuple[int, Any]], list[Problem]]:
    """``(index, document)`` pairs as plain JSON data, and every problem (never raises)."""
    documents, yaml_problems = strict_yaml.load_documents(text)
    problems = [Problem(file, p.document, p.path, p.message) for p in yaml_problems]
    if not documents and not problems:
        problems.append(Problem(file, 0, "", "file has no YAML documents; expected a ChangeLane"))
    return documents, problems


def validate_document(doc: Any, file: str, index: int) -> tuple[ChangeLane | None, list[Problem]]:
    """Judge one document as the API server would: JSON types, strictly (``weight: true``
    and ``critical: "true"`` are refused, not coerced)."""
    if not isinstance(doc, dict):
        return None, [Problem(file, index, "", "expected a mapping (a ChangeLane object)")]
    if doc.get("kind") != "ChangeLane":
        return None, [Problem(file, index, "kind", f"expected ChangeLane, got {doc.get('kind')!r}")]
    try:
        return ChangeLane.model_validate_json(json.dumps(doc), strict=True), []
    except ValidationError as exc:
        return None, problems_from_validation(file, index, exc, doc)


def check_text(text: str | bytes, file: str) -> tuple[list[LoadedLane], list[Problem]]:
    """Every lane in one file's text and every problem; never raises."""
    try:
        documents, problems = load_documents(text, file)
        lanes: list[LoadedLane] = []
        for index, doc in documents:
            lane, doc_problems = validate_document(doc, file, index)
            reported = {(p.document, p.field) for p in problems}
            problems.extend(p for p in doc_problems if (p.document, p.field) not in reported)
            if lane is not None and not any(p.document == index for p in problems):
                lanes.append(LoadedLane(file, index, lane))
        return lanes, sorted(problems, key=lambda p: p.document)
    except Exception as exc:  # a bug of ours must not hide the other files' results
        return [], [Problem(file, 0, "", f"internal error while validating: {exc!r:.200}")]


def load_lanes(paths: Iterable[Path]) -> tuple[list[LoadedLane], list[Problem]]:
    """Every valid lane under ``paths`` and every problem found; never stops early."""
    lanes: list[LoadedLane] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for path in iter_yaml_files(paths):
        file = str(path)
        try:
            if path.stat().st_size > strict_yaml.MAX_BYTES:
                problems.append(
                    Problem(file, 0, "", f"file is larger than {strict_yaml.MAX_BYTES} bytes")
                )
                continue
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(file, 0, "", f"cannot read file: {exc}"))
            continue
        file_lanes, file_problems = check_text(text, file)
        problems.extend(file_problems)
        for loaded in file_lanes:
            index, lane = loaded.document, loaded.lane
            where = f"{file} document {index}"
            if lane.name in seen:
                problems.append(
                    Problem(
                        file,
                        index,
                        "metadata.name",
                        f"lane {lane.name!r} is already declared in {seen[lane.name]}",
                    )
                )
                continue
            seen[lane.name] = where
            lanes.append(loaded)
    return lanes, problems
