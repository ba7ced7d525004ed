"""What an audit entry changed, as a reader wants it: the fields whose values differ between `before`
and `after`, each with its old and new value, instead of two JSON documents side by side.

Nested objects are walked into dotted paths ("links.0.url"); lists of plain values (tags) are compared
as a whole so that one added tag reads as one change, not as every later position shifting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

ChangeKind = Literal["added", "removed", "changed"]

MAX_LINES = 200
"""Past this many changed fields an entry shows the first ones and says how many more there are."""
MAX_VALUE = 300
"""Characters of one value shown; the export keeps the whole document."""


@dataclass(frozen=True)
class DiffLine:
    path: str
    kind: ChangeKind
    before: str | None
    after: str | None


@dataclass(frozen=True)
class AuditDiff:
    lines: tuple[DiffLine, ...]
    hidden: int
    """Changed fields past MAX_LINES, not in `lines`."""

    @property
    def summary(self) -> str:
        """Says "owner, tier and 2 more changed", or "no field changed"."""
        total = len(self.lines) + self.hidden
        if total == 0:
            return "no field changed"
        names = [line.path for line in self.lines[:3]]
        rest = total - len(names)
        listed = ", ".join(names)
        return f"{listed} and {rest} more changed" if rest else f"{listed} changed"


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _is_plain_list(value: object) -> bool:
    return isinstance(value, list) and all(not isinstance(item, (dict, list)) for item in value)


def _walk(before: object, after: object, path: str) -> Iterator[DiffLine]:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after), key=str):
            child = f"{path}.{key}" if path else str(key)
            if key not in after:
                yield DiffLine(child, "removed", _shown(before[key]), None)
            elif key not in before:
                yield DiffLine(child, "added", None, _shown(after[key]))
            else:
                yield from _walk(before[key], after[key], child)
        return
    if (
        isinstance(before, list)
        and isinstance(after, list)
        and not (_is_plain_list(before) and _is_plain_list(after))
    ):
        for index in range(max(len(before), len(after))):
            child = f"{path}.{index}" if path else str(index)
            if index >= len(after):
                yield DiffLine(child, "removed", _shown(before[index]), None)
            elif index >= len(before):
                yield DiffLine(child, "added", None, _shown(after[index]))
            else:
                yield from _walk(before[index], after[index], child)
        return
    if before != after:
        yield DiffLine(path or "value", "changed", _shown(before), _shown(after))


def audit_diff(before: object, after: object) -> AuditDiff:
    """The changed fields of one entry. A create (no `before`) lists every field as added, a delete
    every field as removed."""
    if before is None and after is None:
        return AuditDiff((), 0)
    lines: list[DiffLine] = []
    hidden = 0
    for line in _walk({} if before is None else before, {} if after is None else after, ""):
        if len(lines) < MAX_LINES:
            lines.append(line)
        else:
            hidden += 1
    return AuditDiff(tuple(lines), hidden)
