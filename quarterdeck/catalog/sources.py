"""Where descriptors come from: a file, a folder tree or a git repository, read into FileResults."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from quarterdeck.catalog.descriptors import FileResult, Problem, read_descriptor_file
from quarterdeck.catalog.descriptors.foreign import format_by_name
from quarterdeck.errors import NotFound
from quarterdeck.integrations import git

SKIPPED_DIRS = {
    ".git",
    "node_modules",
    ".venv",
    "venv",
    "__pycache__",
    ".tox",
    ".mypy_cache",
    "dist",
    "build",
}
EXTENSIONS = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 2_000_000
# A descriptor says so in its apiVersion; a Kubernetes manifest merely labelled for Backstage does not.
SNIFF = re.compile(
    r"""^\s*["']?apiVersion["']?\s*:\s*["']?(?:backstage\.io/|scaffolder\.backstage\.io/|quarterdeck/v1)""",
    re.M,
)

Progress = Callable[[int, int, str], None]


@dataclass
class SourceTree:
    key: str
    kind: str
    location: str
    root: Path
    revision: str | None = None
    single_file: Path | None = None
    ignored: int = 0
    notices: list[Problem] = field(default_factory=list)


def open_source(target: str, git_cache: Path) -> SourceTree:
    """Resolve what the user named: a git URL is cloned, a path must exist."""
    if git.looks_like_git_url(target):
        root, revision = git.checkout(target, git_cache)
        return SourceTree(f"git:{target}", "git", target, root, revision)
    path = Path(target).expanduser()
    if not path.exists():
        raise NotFound(f"{target}: no such file or folder", code="import.path_not_found")
    path = path.resolve()
    if path.is_file():
        return SourceTree(f"file:{path}", "file", str(path), path.parent, single_file=path)
    return SourceTree(f"dir:{path}", "dir", str(path), path)


def is_descriptor_name(name: str) -> bool:
    lower = name.lower()
    return (
        lower.startswith("catalog-info.")
        or lower.endswith(("catalog-info.yaml", "catalog-info.yml", "catalog-info.json"))
        or lower in {"quarterdeck.yaml", "quarterdeck.yml"}
        or lower.endswith((".quarterdeck.yaml", ".quarterdeck.yml"))
        or format_by_name(lower) is not None
    )


def _candidates(tree: SourceTree) -> Iterator[Path]:
    if tree.single_file:
        yield tree.single_file
        return
    for folder, dirs, files in os.walk(tree.root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            if not name.lower().endswith(EXTENSIONS):
                continue
            path = Path(folder) / name
            if is_descriptor_name(name) or _sniff(path):
                yield path
            else:
                tree.ignored += 1


def _sniff(path: Path) -> bool:
    """A YAML file with another name is read only when it says it is a descriptor."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8192).decode("utf-8", errors="replace")
    except OSError:
        return False
    return SNIFF.search(head) is not None


def _relative(tree: SourceTree, path: Path) -> str:
    try:
        return path.relative_to(tree.root).as_posix()
    except ValueError:
        return path.as_posix()


def _read_file(tree: SourceTree, path: Path) -> FileResult:
    name = _relative(tree, path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            result = FileResult(name, format="yaml")
            result.problems.append(
                Problem(name, None, f"file is {size} bytes; the limit is {MAX_FILE_BYTES}")
            )
            return result
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        result = FileResult(name, format="yaml")
        result.problems.append(Problem(name, None, f"cannot read the file: {exc}"))
        return result

    def read_text(target: str) -> str | None:
        resolved = (path.parent / target).resolve()
        if resolved.is_relative_to(tree.root) and resolved.is_file():
            return resolved.read_text(encoding="utf-8", errors="replace")
        return None

    return read_descriptor_file(name, content, read_text)


def _location_files(tree: SourceTree, result: FileResult) -> list[Path]:
    """Files a Location points at, inside the source; remote targets are reported, not fetched."""
    base = (tree.root / result.file).parent
    found: list[Path] = []
    for target in result.location_targets:
        if "://" in target:
            tree.notices.append(
                Problem(result.file, None, f"Location target {target!r} is remote; not followed")
            )
            continue
        matches = sorted(base.glob(target)) if any(ch in target for ch in "*?[") else [base / target]
        for match in matches:
            resolved = match.resolve()
            if not resolved.is_relative_to(tree.root):
                tree.notices.append(
                    Problem(result.file, None, f"Location target {target!r} is outside the source")
                )
            elif resolved.is_file():
                found.append(resolved)
            else:
                tree.notices.append(Problem(result.file, None, f"Location target {target!r} does not exist"))
    return found


def read_tree(tree: SourceTree, progress: Progress | None = None) -> list[FileResult]:
    """Read every descriptor in the tree, then whatever Location entities point at."""
    pending = list(_candidates(tree))
    seen = {path.resolve() for path in pending}
    results: list[FileResult] = []
    index = 0
    while index < len(pending):
        path = pending[index]
        index += 1
        result = _read_file(tree, path)
        results.append(result)
        if progress:
            progress(index, len(pending), result.file)
        for extra in _location_files(tree, result):
            if extra not in seen:
                seen.add(extra)
                pending.append(extra)
    return results
