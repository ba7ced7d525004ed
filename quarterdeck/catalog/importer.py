"""The import use case: read a source outside any transaction, then apply it in one.

A git URL becomes a source that stays in sync: source_sync.py imports it and arms its periodic sync.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor
from quarterdeck.catalog import source_sync, sources, sync
from quarterdeck.catalog.sync import ImportReport
from quarterdeck.clock import Clock
from quarterdeck.config import Settings
from quarterdeck.db import transaction
from quarterdeck.integrations import git

__all__ = ["ImportReport", "import_source"]


def import_source(
    sessions: sessionmaker[Session],
    target: str,
    *,
    settings: Settings,
    clock: Clock,
    progress: sources.Progress | None = None,
    actor: Actor | None = None,
    sync_every: int | None = None,
    sync_on: bool | None = None,
) -> ImportReport:
    """Import a file, folder or git URL. Cloning and parsing happen before the write transaction.

    The import is one audit entry: its counts and the files whose outcome was not "unchanged". A git
    repository then syncs on its own every `sync_every` seconds (unless `sync_on` is False); None
    keeps what the source had (5 minutes, on, for a new one).
    """
    actor = actor or Actor.system("import")
    access.require(actor, "catalog.import")
    git.refuse_option_like(target, "import target")
    if git.looks_like_git_url(target):
        return source_sync.import_git(
            sessions,
            target,
            settings=settings,
            clock=clock,
            actor=actor,
            progress=progress,
            sync_every=sync_every,
            sync=sync_on,
        )
    tree = sources.open_source(target)
    results = sources.read_tree(tree, progress)
    with transaction(sessions) as session:
        report = sync.apply_import(
            session,
            key=tree.key,
            kind=tree.kind,
            location=tree.location,
            revision=tree.revision,
            results=results,
            now=clock.now(),
            ignored_files=tree.ignored,
            notices=tree.notices,
            strict_references=settings.strict_references,
        )
        sync.audit_import(session, actor, report, at=clock.now())
        return report
