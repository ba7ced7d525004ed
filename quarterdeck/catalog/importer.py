"""The import use case: read a source outside any transaction, then apply it in one."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.catalog import sources, sync
from quarterdeck.catalog.sync import ImportReport
from quarterdeck.clock import Clock
from quarterdeck.config import Settings
from quarterdeck.db import transaction

__all__ = ["ImportReport", "import_source"]


def import_source(
    sessions: sessionmaker[Session],
    target: str,
    *,
    settings: Settings,
    clock: Clock,
    progress: sources.Progress | None = None,
) -> ImportReport:
    """Import a file, folder or git URL. Cloning and parsing happen before the write transaction."""
    tree = sources.open_source(target, settings.git_cache_dir)
    results = sources.read_tree(tree, progress)
    with transaction(sessions) as session:
        return sync.apply_import(
            session,
            key=tree.key,
            kind=tree.kind,
            location=tree.location,
            revision=tree.revision,
            results=results,
            now=clock.now(),
            ignored_files=tree.ignored,
            notices=tree.notices,
        )
