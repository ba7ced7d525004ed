"""Multi-document YAML with the line of every key, so problems can name file, line and field.

libyaml composes each document into a node graph, where an alias is one more reference to the node
its anchor names. The graph of an alias bomb is a few dozen nodes; constructing it would build
billions. So each graph is measured against the limits in limits.py before it is constructed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from quarterdeck.catalog.descriptors.limits import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_DOCUMENTS,
    MAX_NODES,
    Refused,
)

ALIAS_SIGN = "*"
MAX_PATH_CHARS = 300
"""Keys deeper than this many characters of path are not given a line of their own (their parent's
is used): recorded paths grow with depth times key length, which a hostile file would choose."""


@dataclass
class Document:
    data: Any
    line: int
    text: str
    key_lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, path: str) -> int:
        """The line of `path` ("spec.owner", "links.0.url"), or of its nearest parent, or of the doc."""
        parts = path.split(".") if path else []
        while parts:
            found = self.key_lines.get(".".join(parts))
            if found is not None:
                return found
            parts.pop()
        return self.line


class YamlSyntaxError(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _too_deep(line: int | None) -> Refused:
    return Refused(f"nesting is too deep: the limit is {MAX_DEPTH} levels", line)


def _children(node: yaml.Node) -> Iterable[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return ()


def _record_lines(node: yaml.Node, path: str, lines: dict[str, int], seen: set[int] | None) -> None:
    """Each key's and list item's line by path, in a document already measured (so not too deep).

    A node met again through an alias is not recorded again under the alias's path (`seen`, needed
    only where aliases may be): a problem inside it is located at the alias's key or list item.
    """
    if seen is not None:
        if id(node) in seen:
            return
        seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        children = [
            (str(key.value), key, value) for key, value in node.value if isinstance(key, yaml.ScalarNode)
        ]
    elif isinstance(node, yaml.SequenceNode):
        children = [(str(index), item, item) for index, item in enumerate(node.value)]
    else:
        return
    for name, marker, child in children:
        child_path = f"{path}.{name}" if path else name
        if len(child_path) > MAX_PATH_CHARS:
            continue
        lines[child_path] = _line(marker)
        _record_lines(child, child_path, lines, seen)


class _Budget:
    """What one file has spent of its allowance. Its documents share it, so that many small documents
    cannot add up to what one large document may not be."""

    def __init__(self) -> None:
        self.documents = 0
        self.nodes = 0
        self.aliases = 0

    def add_document(self, node: yaml.Node) -> None:
        self.documents += 1
        if self.documents > MAX_DOCUMENTS:
            raise Refused(f"too many YAML documents: the limit is {MAX_DOCUMENTS} in one file", _line(node))

    def spend(self, nodes: int, node: yaml.Node) -> None:
        self.nodes += nodes
        if self.nodes > MAX_NODES:
            raise Refused(
                f"too many YAML nodes once aliases are expanded: the limit is {MAX_NODES} in one file",
                _line(node),
            )

    def add_alias(self, node: yaml.Node) -> None:
        self.aliases += 1
        if self.aliases > MAX_ALIASES:
            raise Refused(
                f"too many alias references (*name): the limit is {MAX_ALIASES} in one file", _line(node)
            )


def _measure_tree(root: yaml.Node, budget: _Budget) -> None:
    """Nodes and depth of a document without aliases, level by level, remembering no node."""
    level = [root]
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise _too_deep(_line(level[0]))
        budget.spend(len(level), level[0])
        following: list[yaml.Node] = []
        for node in level:
            if isinstance(node, yaml.MappingNode):
                for pair in node.value:
                    following.extend(pair)
            elif isinstance(node, yaml.SequenceNode):
                following.extend(node.value)
        level = following


class _GraphWalk:
    """One pass over a document's node graph, each node visited once: a node reached again is an
    alias, and costs the expanded size and height measured on its first visit."""

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self.measured: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes when expanded, height)
        self.open: set[int] = set()  # the nodes on the path being walked

    def visit(self, node: yaml.Node, depth: int) -> tuple[int, int]:
        if depth > MAX_DEPTH:
            raise _too_deep(_line(node))
        key = id(node)
        if key in self.open:
            raise Refused("an alias refers to a node that contains it (a recursive alias)", _line(node))
        known = self.measured.get(key)
        if known is not None:
            self.budget.add_alias(node)
            if depth + known[1] - 1 > MAX_DEPTH:
                raise _too_deep(_line(node))
            self.budget.spend(known[0], node)
            return known
        self.budget.spend(1, node)
        self.open.add(key)
        size, height = 1, 1
        for child in _children(node):
            child_size, child_height = self.visit(child, depth + 1)
            size += child_size
            height = max(height, child_height + 1)
        self.open.discard(key)
        self.measured[key] = (size, height)
        return size, height


def _syntax_error(exc: yaml.MarkedYAMLError) -> YamlSyntaxError | Refused:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    if "maximum nesting depth" in str(exc.problem):  # libyaml's own stop, at 1,000 levels
        return _too_deep(line)
    return YamlSyntaxError(f"YAML syntax error: {exc.problem or exc}", line)


# libyaml's parser when PyYAML was built with it (the PyPI wheels are): same nodes and marks, 10x faster.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _construct(loader: Any, node: yaml.Node, text: str, budget: _Budget) -> Document:
    """One composed document, measured against the limits and only then constructed.

    An alias is written `*name`, so a document without `*` has none and is measured by the cheaper
    walk: most documents, and the whole of the generated benchmark catalog.
    """
    raw = text[node.start_mark.index : node.end_mark.index]
    aliases_possible = ALIAS_SIGN in raw
    if aliases_possible:
        _GraphWalk(budget).visit(node, 1)
    else:
        _measure_tree(node, budget)
    lines: dict[str, int] = {}
    _record_lines(node, "", lines, set() if aliases_possible else None)
    return Document(loader.construct_document(node), _line(node), raw, lines)


def load_documents(text: str) -> list[Document]:
    """Every non-empty document of a YAML stream; raises YamlSyntaxError naming the line, or Refused
    naming the limit the stream breaks (limits.py)."""
    loader = _Loader(text)
    budget = _Budget()
    documents: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                budget.add_document(node)
                documents.append(_construct(loader, node, text, budget))
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML error: {exc}", None) from exc
    except RecursionError as exc:  # only PyYAML's pure-Python composer recurses; libyaml stops first
        raise _too_deep(None) from exc
    finally:
        loader.dispose()
    return [doc for doc in documents if doc.data is not None]


def load_json_documents(text: str) -> list[Document]:
    """A .json descriptor: one entity or a list of them. Lines are not tracked by the JSON parser."""
    try:
        data = json.loads(text)
    except RecursionError as exc:
        raise _too_deep(None) from exc
    items = data if isinstance(data, list) else [data]
    if len(items) > MAX_DOCUMENTS:
        raise Refused(f"too many entities: the limit is {MAX_DOCUMENTS} in one file", 1)
    _measure_data(data)
    return [Document(item, 1, json.dumps(item, indent=2)) for item in items]


def _measure_data(data: Any) -> None:
    """The node and depth limits for parsed JSON, which has no aliases; walked without recursion."""
    nodes = 0
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise _too_deep(1)
        children: Iterable[Any] = ()
        if isinstance(value, dict):
            children = value.values()
            nodes += len(value)  # the keys
        elif isinstance(value, list):
            children = value
        nodes += 1
        if nodes > MAX_NODES:
            raise Refused(f"too many JSON values: the limit is {MAX_NODES} in one file", 1)
        pending.extend((child, depth + 1) for child in children)
