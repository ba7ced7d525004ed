"""Deploy statements: lookups by id and slug, history pages, the newest succeeded deploy, live rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from quarterdeck.deploys.models import Deploy, DeployStatus, Environment, LiveVersion, Release

Row = tuple[Deploy, Environment, Release]


def environments(session: Session) -> list[Environment]:
    return list(session.scalars(select(Environment).order_by(Environment.position, Environment.slug)))


def joined() -> Select[Deploy, Environment, Release]:
    return (
        select(Deploy, Environment, Release)
        .join(Environment, Environment.id == Deploy.environment_id)
        .join(Release, Release.id == Deploy.release_id)
    )


@dataclass(frozen=True)
class DeployFilters:
    service: str | None = None
    environment: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def filtered(filters: DeployFilters) -> Select[Deploy, Environment, Release]:
    query = joined()
    if filters.service:
        query = query.where(Deploy.service_slug == filters.service)
    if filters.environment:
        query = query.where(Environment.slug == filters.environment)
    if filters.status:
        query = query.where(Deploy.status == filters.status)
    if filters.since:
        query = query.where(Deploy.started_at >= filters.since)
    if filters.until:
        query = query.where(Deploy.started_at < filters.until)
    return query


def page_of(session: Session, filters: DeployFilters, *, page: int, per_page: int) -> tuple[list[Row], int]:
    query = filtered(filters)
    total = (
        session.scalar(select(func.count()).select_from(query.with_only_columns(Deploy.id).subquery())) or 0
    )
    rows = session.execute(
        query.order_by(Deploy.started_at.desc(), Deploy.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return list(rows), total


def by_id(session: Session, deploy_id: int) -> Row | None:
    return session.execute(joined().where(Deploy.id == deploy_id)).first()


def newest_succeeded(
    session: Session, service: str, environment_id: int, *, before: Deploy | None = None
) -> Deploy | None:
    """The deploy that is live when nothing newer succeeded; with `before`, the one live before it."""
    query = select(Deploy).where(
        Deploy.service_slug == service,
        Deploy.environment_id == environment_id,
        Deploy.status == DeployStatus.SUCCEEDED.value,
    )
    if before is not None:
        query = query.where(Deploy.id != before.id, Deploy.started_at <= before.started_at)
    return session.scalar(
        query.order_by(
            func.coalesce(Deploy.finished_at, Deploy.started_at).desc(),
            Deploy.started_at.desc(),
            Deploy.id.desc(),
        ).limit(1)
    )


def live_rows(session: Session, services: Iterable[str]) -> list[Row]:
    slugs = list(services)
    if not slugs:
        return []
    query = (
        joined()
        .join(LiveVersion, LiveVersion.deploy_id == Deploy.id)
        .where(LiveVersion.service_slug.in_(slugs))
    )
    return list(session.execute(query))


def releases_between(session: Session, service: str, after_id: int | None, upto_id: int) -> list[Release]:
    """A service's releases after one and up to another, newest first. Ids follow the order releases
    were first seen, even within one batch, where their timestamps tie."""
    query = select(Release).where(Release.service_slug == service, Release.id <= upto_id)
    if after_id is not None:
        query = query.where(Release.id > after_id)
    return list(session.scalars(query.order_by(Release.id.desc()).limit(100)))
