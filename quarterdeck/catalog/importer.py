"""The import use case: read a source outside any transaction, then apply it in one."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor
from quarterdeck.catalog import sources, sync
from quarterdeck.catalog.sync import ImportReport
from quarterdeck.clock import Clock
from quarterdeck.config import Settings
from quarterdeck.db import transaction

__all__ = ["ImportReport", "import_source"]

AUDITED_CHANGES = 1000
"""At most this many changed files (and errors) are named in an import's audit entry."""


def import_source(
    sessions: sessionmaker[Session],
    target: str,
    *,
    settings: Settings,
    clock: Clock,
    progress: sources.Progress | None = None,
    actor: Actor | None = None,
) -> ImportReport:
    """Import a file, folder or git URL. Cloning and parsing happen before the write transaction.

    The import is one audit entry: its counts and the files whose outcome was not "unchanged".
    """
    actor = actor or Actor.system("import")
    access.require(actor, "catalog.import")
    tree = sources.open_source(target, settings.git_cache_dir)
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
        )
        changes = {key: outcome for key, outcome in report.outcomes.items() if outcome != "unchanged"}
        if changes or report.errors:
            summary = {k: v for k, v in report.as_json().items() if k not in {"outcomes", "notices"}}
            summary["errors"] = summary["errors"][:AUDITED_CHANGES]
            access.record(
                session,
                actor,
                "catalog.import",
                target=("source", tree.key),
                at=clock.now(),
                after=summary | {"files_changed": dict(sorted(changes.items())[:AUDITED_CHANGES])},
            )
        return report
