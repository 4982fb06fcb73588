"""YAML from people and files that may be hostile: safe types only, and refused fast (before any
value is built) when it nests too deep, when its aliases expand to too many values or refer to
themselves, or when it holds a number that is not finite (.nan, .inf, 1e999) or a number or date
that cannot be built (thousands of digits, 2026-13-45).

PyYAML builds an alias once and shares it, so a "billion laughs" document loads in no time; what
walks it afterwards (a copy, a check, json.dumps) pays for every expansion. The node graph is
measured first, as if every alias were expanded, without expanding anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import yaml

from .errors import YAMLRefused

__all__ = ["MAX_DEPTH", "MAX_VALUES", "Loader", "YAMLRefused", "check_node", "describe", "load"]

#: Mappings and lists inside each other, at most (an inventory needs about six).
MAX_DEPTH = 64
#: Values (scalars, mappings, lists) in the document with every alias expanded, at most.
MAX_VALUES = 100_000

#: The scalars built when measured, so one that cannot be built is refused where it is: what.
_BUILT = {
    "tag:yaml.org,2002:int": "whole number",
    "tag:yaml.org,2002:float": "number",
    "tag:yaml.org,2002:timestamp": "date",
}
_SCALARS = yaml.constructor.SafeConstructor()


def _where(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


class Loader(yaml.SafeLoader):
    """SafeLoader that refuses nesting deeper than MAX_DEPTH while it composes (so a deep document
    never reaches Python's recursion limit)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YAMLRefused(f"nested deeper than {MAX_DEPTH} levels{_where(self.peek_event().start_mark)}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _scalar(node: yaml.Node) -> None:
    """Refuse a number or a date that cannot be built (2026-13-45, a whole number of thousands of
    digits: a ValueError deep in PyYAML otherwise) or a number that is not finite."""
    what = _BUILT.get(node.tag) if isinstance(node, yaml.ScalarNode) else None
    if what is None:
        return
    shown = repr(node.value) if len(node.value) <= 40 else repr(node.value[:37] + "...")
    try:
        value = _SCALARS.yaml_constructors[node.tag](_SCALARS, node)
    except (ValueError, OverflowError):
        raise YAMLRefused(f"{shown} is a {what} out of range{_where(node.start_mark)}") from None
    except yaml.YAMLError:
        return  # not built as such here: left to the constructor, which says why
    if isinstance(value, float) and not math.isfinite(value):
        raise YAMLRefused(f"{shown} is not a finite number{_where(node.start_mark)}")


def check_node(root: yaml.Node) -> None:
    """Refuse a composed document whose aliases loop or expand to more than MAX_VALUES values (or
    deeper than MAX_DEPTH), or that holds a number that is not finite or a number or date that
    cannot be built. Linear in the document's
    size: each node is measured once (iteratively: no recursion limit to reach).

    root: the composed document.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    todo: list[tuple[yaml.Node, bool]] = [(root, False)]
    while todo:
        node, finished = todo.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if size[key] > MAX_VALUES:
                raise YAMLRefused(
                    f"its aliases expand to more than {MAX_VALUES:,} values{_where(node.start_mark)}; "
                    "write the values out, or use fewer aliases"
                )
            if depth[key] > MAX_DEPTH:
                raise YAMLRefused(f"its aliases nest deeper than {MAX_DEPTH} levels{_where(node.start_mark)}")
            continue
        if key in size:
            continue
        _scalar(node)
        on_path.add(key)
        todo.append((node, True))
        for kid in _children(node):
            if id(kid) in on_path:
                raise YAMLRefused(f"an alias refers to a value that contains it{_where(kid.start_mark)}")
            if id(kid) not in size:
                todo.append((kid, False))


def load(source: str, check: Callable[[yaml.Node], None] | None = None) -> Any:
    """Load one YAML document with safe types, refusing what check_node refuses and nesting deeper
    than MAX_DEPTH (YAMLRefused), or bad YAML (yaml.YAMLError).

    source: the YAML text.
    check: a check of its own on the composed document, before any value is built.
    Example: load("a: 1") -> {"a": 1}; load("{x: .nan}") raises YAMLRefused.
    """
    loader = Loader(source)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_node(node)
        if check is not None:
            check(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def describe(err: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: what is wrong and where.

    err: the error PyYAML raised.
    """
    if isinstance(err, yaml.MarkedYAMLError):
        return f"invalid YAML{_where(err.problem_mark or err.context_mark)}: {err.problem or err.context}"
    return f"invalid YAML ({type(err).__name__})"
