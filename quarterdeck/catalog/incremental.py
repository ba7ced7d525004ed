"""Reading a git source again without reading what did not change: the fast path of a sync.

Each sync keeps, per file of the commit it read, the file's git blob SHA and what reading it gave:
the entities it defined, whether it must be read every time, the `$text` files it pulled in. The
next sync lists the new commit's blobs (`git ls-tree`, one command) and reads only:
- descriptor files that are new or whose blob changed (a YAML file of another name is sniffed again);
- files to read every time: those with Location targets (what they point at may have changed, and
  the files they lead to are read after them), those whose last reading had problems or notices (so
  the report still names every bad file), symbolic links (their blob is the link, not the file);
- files whose `$text` targets changed, or cannot be told apart by blob;
- unchanged files defining an entity that a file read now also defines: which of two duplicates
  wins depends on the order a full import reads them in, so both are read, in that order.
Every other file is kept: the entities it defines stay as they are (sync.apply_import's `kept`).

Everything is read when the state cannot be trusted: there is none, another Quarterdeck version
wrote it, `.gitattributes` changed (it can change a checked-out file whose blob did not change), or
the catalog holds another number of this source's entities than the last sync left (one was edited
or deleted in the portal: a full import would bring it back). On the same commit nothing is read,
unless an outcome depended on the rest of the catalog (a conflict with another source).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quarterdeck import __version__
from quarterdeck.catalog import sources
from quarterdeck.catalog.descriptors import FileResult
from quarterdeck.catalog.sources import SourceTree
from quarterdeck.catalog.sync import ImportReport, Kept
from quarterdeck.integrations.git import TreeEntry

STATE_FORMAT = 1
READER = f"{__version__}/{STATE_FORMAT}"
"""Who read the files: a state written by another version is not trusted (parsing may differ)."""
ATTRIBUTES = ".gitattributes"

MEMO_DEFAULTS: tuple[Any, ...] = (None, None, False, [], {})
"""A memo is stored as [blob, outcome, always, entities, texts], trailing defaults left out: at
10,000 files the state is read and written at every sync, and lists are the cheapest to handle."""


def entity_key(identity: tuple[str, str]) -> str:
    """An entity's identity as a memo holds it: `service:component:payments-api`, `team:payments`."""
    return f"{identity[0]}:{identity[1]}"


@dataclass(frozen=True, slots=True)
class FileMemo:
    """What one file of the source gave when it was last read."""

    blob: str | None
    """None: never kept (a symbolic link, or a file only a Location leads to)."""
    outcome: str | None = None
    """None for a YAML file that is not a descriptor."""
    always: bool = False
    """Read at every sync: Location targets, problems or notices."""
    entities: tuple[str, ...] = ()
    """The entities it defined (entity_key)."""
    texts: tuple[tuple[str, str | None], ...] = ()
    """The files its `$text` references read, with their blobs (None: not a plain file of the commit)."""

    def to_json(self) -> list[Any]:
        row: list[Any] = [self.blob, self.outcome, self.always, list(self.entities), dict(self.texts)]
        while len(row) > 1 and row[-1] == MEMO_DEFAULTS[len(row) - 1]:
            row.pop()
        return row

    @classmethod
    def from_json(cls, row: list[Any]) -> FileMemo:
        blob, outcome, always, entities, texts = (*row, *MEMO_DEFAULTS[len(row) :])
        return cls(blob, outcome, bool(always), tuple(entities), tuple(texts.items()))


@dataclass(frozen=True)
class SyncState:
    """What the last sync of a source read: the commit, and each file's memo."""

    commit: str
    attributes: str
    entities: int
    errors: int
    recheck: bool
    """Some outcome depended on the rest of the catalog: even the same commit is read again."""
    files: dict[str, FileMemo]
    reader: str = READER

    def to_json(self) -> dict[str, Any]:
        return {
            "reader": self.reader,
            "commit": self.commit,
            "attributes": self.attributes,
            "entities": self.entities,
            "errors": self.errors,
            "recheck": self.recheck,
            "files": {path: memo.to_json() for path, memo in self.files.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> SyncState | None:
        """The state, or None when there is none or it was written by another reader."""
        if not data or data.get("reader") != READER:
            return None
        try:
            files = {path: FileMemo.from_json(memo) for path, memo in data["files"].items()}
            return cls(
                data["commit"], data["attributes"], data["entities"], data["errors"], data["recheck"], files
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


@dataclass
class Plan:
    """Which files of a commit to read, which to keep, and which are not descriptors."""

    commit: str
    listing: dict[str, TreeEntry]
    full: bool
    read: list[str] = field(default_factory=list)
    kept: dict[str, FileMemo] = field(default_factory=dict)
    ignored: dict[str, str | None] = field(default_factory=dict)
    candidates: list[str] = field(default_factory=list)
    """Every descriptor file of the commit (read or kept), in the order a full import reads them."""


def trusted(previous: SyncState | None, entities_now: int) -> SyncState | None:
    """The previous state when a sync may build on it (see the module's docstring), else None."""
    if previous is None or previous.entities != entities_now:
        return None
    return previous


def nothing_to_read(previous: SyncState | None, commit: str) -> bool:
    """The same commit as the last sync, whose outcomes depended on nothing but the files."""
    return previous is not None and previous.commit == commit and not previous.recheck


def walk_key(path: str) -> list[str]:
    """The order sources.read_tree's walk meets files in: a folder's files (by name) before its
    sub-folders (by name), each sub-folder's whole content in turn. (git lists paths with `/`.)
    Folders are marked "1" and the file "0", so that at the first difference a file comes first."""
    parts = ["1" + part for part in path.split("/")]
    parts[-1] = "0" + parts[-1][1:]
    return parts


def _attributes(listing: dict[str, TreeEntry]) -> str:
    found = sorted((path, entry.blob) for path, entry in listing.items() if path.endswith(ATTRIBUTES))
    return hashlib.sha256(repr(found).encode()).hexdigest()


def _walked(path: str, entry: TreeEntry, root: Path) -> bool:
    """Whether the walk of the checkout would meet this file as a YAML/JSON file: not in a skipped
    folder, and not a symbolic link to a folder (the walk does not follow those)."""
    *folders, name = path.split("/")
    if not name.lower().endswith(sources.EXTENSIONS) or not sources.SKIPPED_DIRS.isdisjoint(folders):
        return False
    if entry.is_symlink:
        return not (root / path).is_dir()
    return entry.is_regular


def _unchanged(memo: FileMemo | None, entry: TreeEntry, listing: dict[str, TreeEntry]) -> bool:
    if memo is None or memo.blob is None or entry.is_symlink or memo.blob != entry.blob:
        return False
    for path, blob in memo.texts:
        now = listing.get(path)
        if blob is None or now is None or not now.is_regular or now.blob != blob:
            return False
    return True


def plan(tree: SourceTree, listing: dict[str, TreeEntry], previous: SyncState | None) -> Plan:
    """What to read of `tree` (checked out at `tree.revision`, listed as `listing`): everything when
    `previous` is None (or cannot be built on), else only what changed or must be read again."""
    if previous is not None and previous.attributes != _attributes(listing):
        previous = None
    decided = Plan(commit=tree.revision or "", listing=listing, full=previous is None)
    for path in sorted(listing, key=walk_key):
        entry = listing[path]
        if not _walked(path, entry, tree.root):
            continue
        memo = previous.files.get(path) if previous else None
        if _unchanged(memo, entry, listing) and memo is not None:
            if memo.outcome is None:
                decided.ignored[path] = entry.blob
                continue
            decided.candidates.append(path)
            if memo.always:
                decided.read.append(path)
            else:
                decided.kept[path] = memo
            continue
        name = path.rsplit("/", 1)[-1]
        if sources.is_descriptor_name(name) or sources.says_it_is_a_descriptor(tree, tree.root / path):
            decided.candidates.append(path)
            decided.read.append(path)
        else:
            decided.ignored[path] = entry.blob if entry.is_regular else None
    return decided


def _resolved(path: Path) -> Path:
    """Where a symbolic link leads, as the walk's `seen` holds it; itself when it loops."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


@dataclass
class _Seen:
    """What a full import would not read again through a Location: the commit's descriptor files,
    held as paths relative to the root (10,000 of them cost no Path objects), and what was reached."""

    root: Path
    candidates: set[str]
    reached: set[Path]

    def __contains__(self, path: object) -> bool:
        if path in self.reached:
            return True
        if not isinstance(path, Path) or not path.is_relative_to(self.root):
            return False
        return path.relative_to(self.root).as_posix() in self.candidates

    def add(self, path: Path) -> None:
        self.reached.add(path)


def read(tree: SourceTree, planned: Plan, progress: sources.Progress | None = None) -> list[FileResult]:
    """The planned files read, in a full import's order; a kept file that defines an entity a file
    read now also defines is read too, and leaves `planned.kept`."""
    root = tree.root
    symlinks = {_resolved(root / path) for path in planned.candidates if planned.listing[path].is_symlink}
    seen = _Seen(root, set(planned.candidates), symlinks)
    results = sources.read_files(tree, [root / path for path in planned.read], seen=seen, progress=progress)
    defined = {entity_key(draft.identity) for result in results for draft in result.drafts}
    colliding = [
        path for path, memo in planned.kept.items() if defined and not defined.isdisjoint(memo.entities)
    ]
    if not colliding:
        return results
    for path in colliding:
        del planned.kept[path]
    results += sources.read_files(tree, [root / path for path in colliding], seen=seen)
    order = {path: index for index, path in enumerate(planned.candidates)}
    # Stable: files only a Location leads to stay after every candidate, in the order they were found.
    return sorted(results, key=lambda result: order.get(result.file, len(order)))


def kept(planned: Plan, previous: SyncState | None, results: list[FileResult]) -> Kept | None:
    """What apply_import keeps; None for a full read (it then looks at every entity of the source)."""
    if planned.full or previous is None:
        return None
    read_now = {result.file for result in results}
    return Kept(
        outcomes={path: memo.outcome or "" for path, memo in planned.kept.items()},
        entities=sum(len(memo.entities) for memo in planned.kept.values()),
        # A file's rows are among the entities it defined when last read (one that keeps stale rows
        # had problems, so it is read every time): files that defined none have no rows to look at.
        others=frozenset(
            path
            for path, memo in previous.files.items()
            if memo.entities and path not in planned.kept and path not in read_now
        ),
    )


def next_state(
    tree: SourceTree, planned: Plan, results: list[FileResult], report: ImportReport, *, entities: int
) -> SyncState:
    """The state after applying `results`: what the next sync builds on."""
    listing = planned.listing
    candidates = set(planned.candidates)
    noted = {problem.file for problem in [*report.errors, *report.notices]}
    files: dict[str, FileMemo] = dict(planned.kept)
    files.update({path: FileMemo(blob) for path, blob in planned.ignored.items()})
    for result in results:
        entry = listing.get(result.file)
        plain = entry is not None and entry.is_regular and result.file in candidates
        texts = tuple(
            (path, listing[path].blob if path in listing and listing[path].is_regular else None)
            for path in tree.text_reads.get(result.file, [])
        )
        files[result.file] = FileMemo(
            blob=entry.blob if plain and entry is not None else None,
            outcome=result.outcome.value,
            entities=tuple(entity_key(draft.identity) for draft in result.drafts),
            always=bool(result.location_targets) or result.file in noted,
            texts=texts,
        )
    return SyncState(
        commit=planned.commit,
        attributes=_attributes(listing),
        entities=entities,
        errors=len(report.errors),
        recheck=bool(report.catalog_dependent),
        files=files,
    )
