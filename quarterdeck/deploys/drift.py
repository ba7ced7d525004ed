"""Version drift in the environment matrix: which environments run a version of a service other than its
reference version. Pure: no database.

The reference version is the one most of the service's production environments run (on a tie, the one
the first of them in the portal's order runs); when no production environment runs the service, the one
most of its environments run (on a tie, the first). An environment that runs nothing does not drift.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    environment: str
    production: bool
    version: str | None
    """None: nothing runs there."""


def _most_common(versions: list[str]) -> str | None:
    """The most frequent version; on a tie, the one seen first."""
    if not versions:
        return None
    counts = Counter(versions)
    top = max(counts.values())
    return next(version for version in versions if counts[version] == top)


def reference_version(cells: Sequence[Cell]) -> str | None:
    production = [c.version for c in cells if c.production and c.version is not None]
    return _most_common(production) or _most_common([c.version for c in cells if c.version is not None])


def drift(cells: Sequence[Cell]) -> tuple[str | None, list[str]]:
    """(the reference version, the environments that run another version), in the cells' order."""
    reference = reference_version(cells)
    return reference, [
        c.environment for c in cells if c.version is not None and reference and c.version != reference
    ]
