"""Multi-document YAML with the line of every key, so problems can name file, line and field."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml


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


def _record_lines(node: yaml.Node, path: str, lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            lines[child] = key_node.start_mark.line + 1
            _record_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = f"{path}.{index}" if path else str(index)
            lines[child] = item.start_mark.line + 1
            _record_lines(item, child, lines)


# libyaml's parser when PyYAML was built with it (the PyPI wheels are): same nodes and marks, 10x faster.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_documents(text: str) -> list[Document]:
    """Every non-empty document of a YAML stream; raises YamlSyntaxError naming the line."""
    loader = _Loader(text)
    documents: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[str, int] = {}
            _record_lines(node, "", lines)
            data = loader.construct_document(node)
            raw = text[node.start_mark.index : node.end_mark.index]
            documents.append(Document(data, node.start_mark.line + 1, raw, lines))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise YamlSyntaxError(f"YAML syntax error: {exc.problem or exc}", line) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML error: {exc}", None) from exc
    finally:
        loader.dispose()
    return [doc for doc in documents if doc.data is not None]


def load_json_documents(text: str) -> list[Document]:
    """A .json descriptor: one entity or a list of them. Lines are not tracked by the JSON parser."""
    data = json.loads(text)
    items = data if isinstance(data, list) else [data]
    return [Document(item, 1, json.dumps(item, indent=2)) for item in items]
