"""A service's dependency neighbourhood laid out in columns and drawn as SVG; pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

NODE_W, NODE_H, COL_GAP, ROW_GAP, MARGIN = 190, 44, 70, 14, 20
MAX_PER_COLUMN = 10
TIER_CLASS = {1: "tier1", 2: "tier2", 3: "tier3", 4: "tier4"}


@dataclass(frozen=True)
class Node:
    key: str  # "kind:slug"
    title: str
    url: str | None
    tier: int | None = None
    exists: bool = True


@dataclass
class Neighbourhood:
    """Columns from the furthest callers (negative) to the furthest dependencies (positive)."""

    centre: Node
    columns: dict[int, list[Node]] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)  # (from key, to key): from depends on to
    hidden: dict[int, int] = field(default_factory=dict)

    def add(self, level: int, node: Node) -> bool:
        """Place a node once, in the first column it is seen in; False when the column is full."""
        if (
            any(node.key == n.key for column in self.columns.values() for n in column)
            or node.key == self.centre.key
        ):
            return True
        column = self.columns.setdefault(level, [])
        if len(column) >= MAX_PER_COLUMN:
            self.hidden[level] = self.hidden.get(level, 0) + 1
            return False
        column.append(node)
        return True


def render_svg(hood: Neighbourhood) -> str:
    """SVG markup; every text is escaped, so hostile titles stay text."""
    levels = sorted({0, *hood.columns})
    columns = {level: hood.columns.get(level, []) for level in levels}
    columns[0] = [hood.centre]
    tallest = max(len(nodes) + (1 if hood.hidden.get(level) else 0) for level, nodes in columns.items())
    height = MARGIN * 2 + tallest * (NODE_H + ROW_GAP)
    width = MARGIN * 2 + len(levels) * NODE_W + (len(levels) - 1) * COL_GAP
    positions: dict[str, tuple[float, float]] = {}
    parts: list[str] = []
    for index, level in enumerate(levels):
        x = MARGIN + index * (NODE_W + COL_GAP)
        nodes = columns[level]
        offset = (height - len(nodes) * (NODE_H + ROW_GAP)) / 2
        for row, node in enumerate(nodes):
            y = offset + row * (NODE_H + ROW_GAP)
            positions[node.key] = (x, y)
            parts.append(_node(node, x, y, centre=level == 0))
        if hood.hidden.get(level):
            y = offset + len(nodes) * (NODE_H + ROW_GAP)
            parts.append(
                f'<text class="more" x="{x + NODE_W / 2}" y="{y + 16}" text-anchor="middle">'
                f"+{hood.hidden[level]} more</text>"
            )
    lines = []
    for source, target in hood.edges:
        if source in positions and target in positions:
            (x1, y1), (x2, y2) = positions[source], positions[target]
            start_x, end_x = x1 + NODE_W, x2
            if x2 < x1:
                start_x, end_x = x1, x2 + NODE_W
            mid = (start_x + end_x) / 2
            lines.append(
                f'<path class="edge" d="M{start_x},{y1 + NODE_H / 2} C{mid},{y1 + NODE_H / 2} '
                f'{mid},{y2 + NODE_H / 2} {end_x},{y2 + NODE_H / 2}" marker-end="url(#arrow)"/>'
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="depgraph" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="group" '
        f'aria-label="Dependencies of {escape(hood.centre.title)}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>'
        + "".join(lines)
        + "".join(parts)
        + "</svg>"
    )


def _node(node: Node, x: float, y: float, *, centre: bool) -> str:
    classes = ["node", TIER_CLASS.get(node.tier or 0, "tierless")]
    if centre:
        classes.append("centre")
    if not node.exists:
        classes.append("missing")
    title = node.title if len(node.title) <= 24 else node.title[:23] + "…"
    subtitle = node.key.split(":", 1)[1] if node.exists else "not in the catalog"
    body = (
        f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8"/>'
        f'<text x="{x + 10}" y="{y + 18}" class="title">{escape(title)}</text>'
        f'<text x="{x + 10}" y="{y + 34}" class="sub">{escape(subtitle[:30])}</text>'
    )
    group = f'<g class="{" ".join(classes)}"><title>{escape(node.title)}</title>{body}</g>'
    if node.url and not centre:
        return f'<a href="{escape(node.url)}">{group}</a>'
    return group
