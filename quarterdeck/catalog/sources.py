"""Where descriptors come from: a file, a folder tree or a git repository, read into FileResults.

A git repository is fetched and its files chosen by source_sync.py and incremental.py (which read
only what changed since the last sync); they read each file through `read_files` here.

Nothing outside the source is read: every path is resolved, symbolic links included, and refused
when it leads outside the source's root or is not a regular file, before it is opened; reads stop
at the size limit whatever the file claims (files.py reports each refusal as that file's problem).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from io import BufferedReader
from pathlib import Path
from typing import Protocol

from quarterdeck.catalog.descriptors import (
    MAX_FILE_BYTES,
    FileResult,
    Problem,
    Refused,
    read_descriptor_file,
    report_refusal,
)
from quarterdeck.catalog.descriptors.foreign import format_by_name
from quarterdeck.errors import NotFound
from quarterdeck.integrations import git

GIT_DIR = ".git"
SKIPPED_DIRS = {
    GIT_DIR,
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
SNIFF_BYTES = 8192
GLOB_CHARS = "*?["
# Opening never follows a symbolic link nor waits for a FIFO's writer, should the path change after the check.
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
NOT_REGULAR = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
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
    text_reads: dict[str, list[str]] = field(default_factory=dict)
    """Descriptor file -> the files its `$text`/`$json`/`$yaml` references asked for, relative to
    the root as written (an incremental sync reads the descriptor again when one of them changes)."""


def open_source(target: str) -> SourceTree:
    """Resolve a file or folder the user named: it must exist. Git URLs go to source_sync.py."""
    git.refuse_option_like(target, "import target")
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
    """Descriptor files of the tree; folders behind symbolic links are not entered (os.walk's default)."""
    if tree.single_file:
        yield tree.single_file
        return
    for folder, dirs, files in os.walk(tree.root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            if not name.lower().endswith(EXTENSIONS):
                continue
            path = Path(folder) / name
            if is_descriptor_name(name) or says_it_is_a_descriptor(tree, path):
                yield path
            else:
                tree.ignored += 1


def says_it_is_a_descriptor(tree: SourceTree, path: Path) -> bool:
    """A YAML file with another name is read only when it says it is a descriptor. One that may not
    be opened (outside the source, not a regular file) is not one: it is ignored, as other files are."""
    try:
        with _open_inside(tree.root, path) as (handle, _size):
            head = handle.read(SNIFF_BYTES).decode("utf-8", errors="replace")
    except (OSError, Refused):
        return False
    return SNIFF.search(head) is not None


def _relative(tree: SourceTree, path: Path) -> str:
    try:
        return path.relative_to(tree.root).as_posix()
    except ValueError:
        return path.as_posix()


def _resolve_inside(root: Path, path: Path) -> Path:
    """`path` with every symbolic link resolved; Refused when that leads outside `root`, or into its
    `.git` folder (whose config may hold the credentials the repository was cloned with)."""
    try:
        resolved = path.resolve(strict=True)
    except RuntimeError as exc:  # Python 3.11 reports a symbolic link loop so, 3.13 as an OSError
        raise Refused("the file is a symbolic link loop; not read") from exc
    if not resolved.is_relative_to(root):
        what = "the file is a symbolic link to a place" if path.is_symlink() else "the path leads"
        raise Refused(f"{what} outside the source; not read")
    if GIT_DIR in resolved.relative_to(root).parts:
        raise Refused(f"the path leads into the source's {GIT_DIR} folder; not read")
    return resolved


def _check_regular(status: os.stat_result) -> None:
    if stat.S_ISDIR(status.st_mode):
        raise IsADirectoryError("is a folder")
    for test, kind in NOT_REGULAR:
        if test(status.st_mode):
            raise Refused(f"the file is {kind}, not a regular file; not read")
    if not stat.S_ISREG(status.st_mode):
        raise Refused("the file is not a regular file; not read")


@contextmanager
def _open_inside(root: Path, path: Path) -> Iterator[tuple[BufferedReader, int]]:
    """`path` opened, with its size, when it is a regular file inside `root`: checked before it is
    opened, and the opened file checked again in case the path changed in between."""
    resolved = _resolve_inside(root, path)
    status = resolved.stat()
    _check_regular(status)
    with open(os.open(resolved, OPEN_FLAGS), "rb") as handle:
        opened = os.fstat(handle.fileno())
        if (opened.st_dev, opened.st_ino) != (status.st_dev, status.st_ino):
            raise Refused("the file changed while it was being opened; not read")
        yield handle, opened.st_size


def _read_inside(root: Path, path: Path, *, errors: str = "strict") -> str:
    """The text of a regular file inside `root` of at most MAX_FILE_BYTES (limits.py). Raises OSError
    when it cannot be read (missing, a folder), Refused when it must not be."""
    with _open_inside(root, path) as (handle, size):
        if size > MAX_FILE_BYTES:
            raise Refused(f"the file is {size} bytes; the limit is {MAX_FILE_BYTES}")
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:  # it grew, or is a special file whose size says nothing
        raise Refused(f"the file is larger than the limit of {MAX_FILE_BYTES} bytes")
    return data.decode("utf-8", errors=errors)


def _read_file(tree: SourceTree, path: Path) -> FileResult:
    name = _relative(tree, path)
    try:
        content = _read_inside(tree.root, path)
    except Refused as exc:
        return report_refusal(name, exc)
    except (OSError, UnicodeDecodeError) as exc:
        result = FileResult(name, format="yaml")
        result.problems.append(Problem(name, None, f"cannot read the file: {exc}"))
        return result

    def read_text(target: str) -> str | None:
        wanted = Path(os.path.normpath(path.parent / target))
        tree.text_reads.setdefault(name, []).append(_relative(tree, wanted))
        try:
            return _read_inside(tree.root, path.parent / target, errors="replace")
        except OSError:
            return None

    return read_descriptor_file(name, content, read_text)


def _location_files(tree: SourceTree, result: FileResult) -> list[Path]:
    """Files a Location points at, inside the source; remote targets are reported, not fetched.

    A target is checked as written (`../`) before anything is listed, and each file it names again
    with symbolic links resolved; globs are matched while walking the source, never outside it.
    """
    base = (tree.root / result.file).parent
    found: list[Path] = []

    def note(target: str, why: str) -> None:
        tree.notices.append(Problem(result.file, None, f"Location target {target!r} {why}"))

    for target in result.location_targets:
        if "://" in target:
            note(target, "is remote; not followed")
            continue
        written = Path(os.path.normpath(base / target))
        matches: list[Path] | None = None
        if written.is_relative_to(tree.root):
            globbed = any(ch in target for ch in GLOB_CHARS)
            matches = _glob_inside(tree.root, written) if globbed else [written]
        if matches is None:
            note(target, "is outside the source")
            continue
        for match in matches:
            problem = _location_problem(tree.root, match)
            if problem:
                note(target, problem)
            else:
                found.append(match.resolve())
    return found


def _location_problem(root: Path, match: Path) -> str | None:
    """Why a Location's file is not read, or None; _read_file refuses what is not a regular file."""
    try:
        resolved = match.resolve(strict=True)
    except (OSError, RuntimeError):
        return "does not exist"
    if not resolved.is_relative_to(root):
        return "is outside the source"
    return "is a folder" if resolved.is_dir() else None


def _glob_inside(root: Path, pattern: Path) -> list[Path] | None:
    """Files under `root` matching `pattern` (`*`, `?`, `[...]`, and `**` for any folders), found
    by walking from its last folder without wildcards, through no symbolic link to a folder; None
    when that folder is a symbolic link out of the source."""
    parts = pattern.relative_to(root).parts
    fixed = next((i for i, part in enumerate(parts) if any(ch in part for ch in GLOB_CHARS)), len(parts))
    start = root.joinpath(*parts[:fixed])
    try:
        if not start.resolve(strict=True).is_relative_to(root):
            return None
    except (OSError, RuntimeError):
        return []
    wanted = parts[fixed:]
    levels = None if "**" in wanted else len(wanted) - 1
    matches: list[Path] = []
    for folder, dirs, files in os.walk(start):
        here = Path(folder)
        depth = len(here.relative_to(start).parts)
        if levels is not None and depth >= levels:
            dirs[:] = []
        matches.extend(
            here / name for name in files if _glob_matches((*here.relative_to(start).parts, name), wanted)
        )
    return sorted(matches)


def _glob_matches(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Whether path components match glob segments, `**` standing for any number of folders."""
    states = _after_stars({0}, pattern)
    for part in parts:
        following = set()
        for index in states:
            if index < len(pattern) and pattern[index] == "**":
                following.add(index)
            elif index < len(pattern) and fnmatchcase(part, pattern[index]):
                following.add(index + 1)
        states = _after_stars(following, pattern)
    return len(pattern) in states


def _after_stars(states: set[int], pattern: tuple[str, ...]) -> set[int]:
    """`states`, plus the positions reached by letting each `**` there match no folder at all."""
    reached = set(states)
    for index in sorted(states):
        while index < len(pattern) and pattern[index] == "**":
            index += 1
            reached.add(index)
    return reached


def read_tree(tree: SourceTree, progress: Progress | None = None) -> list[FileResult]:
    """Read every descriptor in the tree, then whatever Location entities point at."""
    candidates = list(_candidates(tree))
    return read_files(tree, candidates, seen={_identity(path) for path in candidates}, progress=progress)


class Seen(Protocol):
    """Files not to read again when a Location leads to them: a set of resolved paths, or alike."""

    def __contains__(self, path: object, /) -> bool: ...

    def add(self, path: Path, /) -> None: ...


def read_files(
    tree: SourceTree, paths: list[Path], *, seen: Seen, progress: Progress | None = None
) -> list[FileResult]:
    """Read `paths` in order, then the files their Location entities point at that are not in `seen`
    (resolved paths: the tree's candidates, read now or not), in the order they are found."""
    pending = list(paths)
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


def _identity(path: Path) -> Path:
    """The file a path names, so one reached again through a Location is not read twice."""
    try:
        return path.resolve()
    except RuntimeError:  # a symbolic link loop: _read_file reports it
        return path
