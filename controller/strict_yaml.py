"""YAML read the way the Kubernetes API would judge it, and never raising.

PyYAML on its own silently merges duplicate keys, turns ``2001-02-30`` into a crash and
``2001-02-03`` into a ``date`` (Kubernetes keeps it a string), recurses once per nesting
level and expands aliases without limit. This reader:

* refuses duplicate keys, naming the line;
* keeps timestamps as strings (as ``sigs.k8s.io/yaml`` does) and turns a scalar that does
  not fit its explicit tag (``!!int abc``, ``!!bool maybe``) into a problem, not an
  exception;
* bounds the input before building anything: bytes, nesting depth and aliases are counted
  on the token stream (which PyYAML produces without recursion);
* converts each document to plain JSON values, refusing what JSON cannot carry (NaN and
  infinities, binary, sets, non-string keys), so the models judge what the API server
  would see.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

#: Far above any honest lane file, far below anything that could hurt.
MAX_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_ALIASES = 64
MAX_NODES = 50_000

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


@dataclass(frozen=True)
class YamlProblem:
    document: int
    path: str
    message: str


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Safe loader with duplicate-key detection and checked scalar constructors."""

    yaml_implicit_resolvers: ClassVar[dict[Any, Any]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }
    yaml_constructors: ClassVar[dict[Any, Any]] = dict(_BaseLoader.yaml_constructors)

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first_line = seen.get(key)
                except TypeError:  # an unhashable key: the base class says so precisely
                    break
                if first_line is not None:
                    raise ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first at line {first_line}); "
                        "expected each key once",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line + 1
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result


def _checked(tag: str, construct: Callable[..., Any]) -> Callable[..., Any]:
    def checked(loader: yaml.SafeLoader, node: Node) -> Any:
        try:
            return construct(loader, node)
        except ConstructorError:
            raise
        except Exception:  # ValueError, KeyError, AttributeError, ... from PyYAML
            value = node.value if isinstance(node, ScalarNode) else "a collection"
            raise ConstructorError(
                None,
                None,
                f"{str(value)[:60]!r} is not a valid {tag.rsplit(':', 1)[-1]}",
                node.start_mark,
            ) from None

    return checked


_TIMESTAMP = next(
    regexp
    for resolvers in _BaseLoader.yaml_implicit_resolvers.values()
    for tag, regexp in resolvers
    if tag == _TIMESTAMP_TAG
)


def _timestamp_as_string(loader: yaml.SafeLoader, node: Node) -> str:
    """Kubernetes carries timestamps as strings; an explicit ``!!timestamp`` must still
    look like one."""
    value = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if not _TIMESTAMP.fullmatch(value):
        raise ConstructorError(
            None, None, f"{value[:60]!r} is not a valid timestamp", node.start_mark
        )
    return value


def _unsupported(loader: yaml.SafeLoader, node: Node) -> Any:
    raise ConstructorError(
        None,
        None,
        f"YAML tag {node.tag} has no JSON equivalent; expected a string, number, boolean, "
        "list or mapping",
        node.start_mark,
    )


for _tag in ("null", "bool", "int", "float", "str", "seq", "map"):
    _full = f"tag:yaml.org,2002:{_tag}"
    _StrictLoader.add_constructor(_full, _checked(_full, _BaseLoader.yaml_constructors[_full]))
_StrictLoader.add_constructor(_TIMESTAMP_TAG, _timestamp_as_string)
for _tag in ("binary", "set", "omap", "pairs"):
    _StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _unsupported)


def _where(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"YAML does not parse{_where(mark)}: {problem}"


def _bounds_problem(text: str) -> tuple[int, str] | None:
    """(document, message) when the token stream is too deep or has too many aliases."""
    depth = aliases = document = 0
    first = True
    opens = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken)
    flow_opens = (yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)
    closes = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
    try:
        for token in yaml.scan(text, Loader=_BaseLoader):
            if isinstance(token, yaml.StreamStartToken):
                continue
            if isinstance(token, yaml.DocumentStartToken) and not first:
                document += 1
            first = False
            if isinstance(token, opens + flow_opens):
                depth += 1
                if depth > MAX_DEPTH:
                    return document, (
                        f"nesting deeper than {MAX_DEPTH} levels{_where(token.start_mark)}; "
                        "expected a ChangeLane-shaped document"
                    )
            elif isinstance(token, closes):
                depth -= 1
            elif isinstance(token, yaml.AliasToken):
                aliases += 1
                if aliases > MAX_ALIASES:
                    return document, f"more than {MAX_ALIASES} aliases; expected fewer"
    except yaml.YAMLError as exc:
        return document, _yaml_error(exc)
    return None


def to_json_value(value: Any, path: str = "") -> tuple[Any, list[tuple[str, str]]]:
    """``value`` as plain JSON data, plus ``(path, expected)`` for what JSON cannot hold.

    Iterative, and counting nodes as it goes: aliases could otherwise turn a small file
    into an exponentially large tree.
    """
    problems: list[tuple[str, str]] = []
    root: list[Any] = [None]
    stack: list[tuple[Any, str, list[Any] | dict[str, Any], int | str]] = [(value, path, root, 0)]
    nodes = 0
    while stack:
        item, where, parent, slot = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return None, [
                (path, f"more than {MAX_NODES} values (aliases expanded); expected fewer")
            ]
        converted: Any
        if isinstance(item, dict):
            converted = {}
            for key, child in item.items():
                if not isinstance(key, str):
                    problems.append(
                        (where, f"key {key!r} is a {type(key).__name__}; expected a string key")
                    )
                    continue
                stack.append((child, f"{where}.{key}" if where else key, converted, key))
        elif isinstance(item, list):
            converted = [None] * len(item)
            for index, child in enumerate(item):
                stack.append((child, f"{where}[{index}]", converted, index))
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append((where, f"{item} is not a JSON number; expected a finite number"))
            converted = None
        elif item is None or isinstance(item, str | bool | int | float):
            converted = item
        else:
            problems.append(
                (where, f"a YAML {type(item).__name__} value; expected a string, number or boolean")
            )
            converted = None
        parent[slot] = converted  # type: ignore[index]
    return root[0], problems


def load_documents(text: str | bytes) -> tuple[list[tuple[int, Any]], list[YamlProblem]]:
    """``(index, JSON value)`` of every non-empty document, and every problem found."""
    size = len(text)
    if size > MAX_BYTES:
        return [], [YamlProblem(0, "", f"file is {size} bytes; expected at most {MAX_BYTES}")]
    bounds = _bounds_problem(text if isinstance(text, str) else text.decode("utf-8", "replace"))
    if bounds is not None:
        return [], [YamlProblem(bounds[0], "", bounds[1])]
    documents: list[tuple[int, Any]] = []
    problems: list[YamlProblem] = []
    loader = _StrictLoader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            try:
                raw = loader.construct_document(node)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
                problems.append(YamlProblem(index, "", f"{problem}{_where(mark)}"))
                loader.constructed_objects = {}
                loader.recursive_objects = {}
                loader.state_generators = []
                index += 1
                continue
            if raw is not None:
                value, value_problems = to_json_value(raw)
                problems.extend(YamlProblem(index, p, m) for p, m in value_problems)
                # Still judged (the value reported above is null in it), so one bad number
                # does not hide the document's other problems.
                documents.append((index, value))
            index += 1
    except yaml.YAMLError as exc:
        problems.append(YamlProblem(index, "", _yaml_error(exc)))
    except RecursionError:  # the token bounds make this unreachable; never crash regardless
        problems.append(YamlProblem(index, "", f"nesting too deep; expected at most {MAX_DEPTH}"))
    finally:
        loader.dispose()
    return documents, problems
