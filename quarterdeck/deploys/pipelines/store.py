"""Every statement on the pipeline tables: reading candidates and versions, creating a pipeline, and the
guarded move to its next version. Statements only; the rules are in service.py."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from quarterdeck.deploys.pipeline_models import PipelineRow, PipelineVersion
from quarterdeck.deploys.pipelines.choice import Candidate, pipeline_key
from quarterdeck.deploys.pipelines.format import Pipeline
from quarterdeck.deploys.pipelines.schemas import PipelineOut, PipelineVersionOut


def body_digest(body: dict[str, Any]) -> str:
    """SHA-256 of a body's canonical JSON (keys sorted, no spaces): equal bodies, equal digests."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def current_versions(session: Session, *conditions: Any) -> list[tuple[PipelineRow, PipelineVersion]]:
    """Pipelines matching `conditions`, each with its current version."""
    statement = (
        select(PipelineRow, PipelineVersion)
        .join(
            PipelineVersion,
            and_(
                PipelineVersion.pipeline_id == PipelineRow.id,
                PipelineVersion.version == PipelineRow.current_version,
            ),
        )
        .where(*conditions)
        .order_by(PipelineRow.scope_kind, PipelineRow.scope_ref, PipelineRow.environment)
    )
    return [(row, version) for row, version in session.execute(statement)]


def candidate(row: PipelineRow, version: PipelineVersion) -> Candidate:
    return Candidate(
        scope=row.scope_kind,
        ref=row.scope_ref,
        environment=row.environment,
        pipeline=Pipeline.model_validate(version.body),
        digest=version.digest,
        pipeline_id=row.id,
        version=version.version,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def stored_candidates(
    session: Session, *, services: Collection[str], teams: Collection[str]
) -> list[Candidate]:
    """The overrides of `services` and `teams`, the organisation defaults and the product defaults run
    so far, at their current versions: everything the choice of a pipeline for those services reads."""
    found = current_versions(
        session,
        or_(
            and_(PipelineRow.scope_kind == "service", PipelineRow.scope_ref.in_(sorted(services))),
            and_(PipelineRow.scope_kind == "team", PipelineRow.scope_ref.in_(sorted(teams))),
            PipelineRow.scope_kind.in_(("default", "product")),
        ),
    )
    return [candidate(row, version) for row, version in found]


def row_by_key(session: Session, key: str) -> PipelineRow | None:
    return session.scalar(select(PipelineRow).where(PipelineRow.key == key))


def version_of(session: Session, pipeline_id: int, version: int) -> PipelineVersion | None:
    return session.scalar(
        select(PipelineVersion).where(
            PipelineVersion.pipeline_id == pipeline_id, PipelineVersion.version == version
        )
    )


def versions(session: Session, pipeline_id: int, *, limit: int) -> list[PipelineVersion]:
    """Newest first."""
    return list(
        session.scalars(
            select(PipelineVersion)
            .where(PipelineVersion.pipeline_id == pipeline_id)
            .order_by(PipelineVersion.version.desc())
            .limit(limit)
        )
    )


def create(
    session: Session,
    *,
    scope: str,
    ref: str,
    environment: str | None,
    pipeline: Pipeline,
    digest: str,
    by: str,
    at: datetime,
) -> PipelineRow | None:
    """A new pipeline at version 1; None when another transaction created the same one first (its
    unique key stopped this insert, which is undone alone: the caller's transaction goes on)."""
    row = PipelineRow(
        key=pipeline_key(scope, ref, environment),
        scope_kind=scope,
        scope_ref=ref,
        environment=environment,
        name=pipeline.name,
        current_version=1,
        created_by=by,
        created_at=at,
        updated_by=by,
        updated_at=at,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    _add_version(session, row.id, 1, pipeline, digest, by, at)
    return row


def advance(
    session: Session, row: PipelineRow, *, pipeline: Pipeline, digest: str, by: str, at: datetime
) -> bool:
    """Move `row` from the version it was read at to the next, with the new body; False when another
    apply moved it first (the guard `current_version = :read` found no row: nothing was written)."""
    read_at = row.current_version
    moved = session.execute(
        update(PipelineRow)
        .where(PipelineRow.id == row.id, PipelineRow.current_version == read_at)
        .values(current_version=read_at + 1, name=pipeline.name, updated_by=by, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return False
    _add_version(session, row.id, read_at + 1, pipeline, digest, by, at)
    session.refresh(row)
    return True


def _add_version(
    session: Session, pipeline_id: int, version: int, pipeline: Pipeline, digest: str, by: str, at: datetime
) -> None:
    session.add(
        PipelineVersion(
            pipeline_id=pipeline_id,
            version=version,
            body=pipeline.body(),
            digest=digest,
            created_by=by,
            created_at=at,
        )
    )
    session.flush()


def reread(session: Session, key: str) -> PipelineRow | None:
    """The pipeline as another transaction left it (after a lost race)."""
    return session.scalar(
        select(PipelineRow).where(PipelineRow.key == key).execution_options(populate_existing=True)
    )


def pipeline_out(row: PipelineRow, digest: str) -> PipelineOut:
    return PipelineOut(
        id=row.id,
        key=row.key,
        scope=row.scope_kind,
        ref=row.scope_ref,
        environment=row.environment,
        name=row.name,
        version=row.current_version,
        digest=digest,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def version_out(version: PipelineVersion) -> PipelineVersionOut:
    return PipelineVersionOut(
        pipeline_id=version.pipeline_id,
        version=version.version,
        digest=version.digest,
        created_by=version.created_by,
        created_at=version.created_at,
        pipeline=version.body,
    )
