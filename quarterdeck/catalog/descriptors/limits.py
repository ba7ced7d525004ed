"""How big, deep and alias-rich one descriptor file may be, and the error that names the limit it broke.

The limits keep a hostile file (a YAML alias bomb, 10,000 nested brackets, a symlink to /dev/zero)
down to a located error about that file, within a bounded time and memory, while the rest of the
source still imports. Real descriptors stay far below each of them; the generated benchmark catalog
(bench/generate.py: 2,000 people in one file) does too.
"""

from __future__ import annotations

MAX_FILE_BYTES = 1024 * 1024
"""A descriptor file, or a file a `$text` reference pulls in, is read only up to this size."""

MAX_DOCUMENTS = 5000
"""YAML documents (`---`) in one file, empty ones included."""

MAX_DEPTH = 64
"""Nesting of mappings and sequences, counted with aliases expanded."""

MAX_ALIASES = 100
"""Alias references (`*name`, including `<<: *name` merges) in one file."""

MAX_NODES = 100_000
"""Nodes in one file once every alias is expanded: what constructing the data would build."""


class Refused(Exception):
    """A file, reference or YAML stream the importer will not read, with the limit or rule it broke."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
