"""Deploy statements: lookups by id and slug, history pages, the newest succeeded deploy, live rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, func, select, tuple_
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


CHUNK = 500


def deploys_by_external_id(session: Session, ids: Iterable[str]) -> dict[str, Deploy]:
    ordered = sorted(set(ids))
    found: dict[str, Deploy] = {}
    for start in range(0, len(ordered), CHUNK):
        rows = session.scalars(select(Deploy).where(Deploy.external_id.in_(ordered[start : start + CHUNK])))
        found.update({row.external_id: row for row in rows})
    return found


def deploy_ids(session: Session, ids: Iterable[str]) -> dict[str, int]:
    ordered = sorted(set(ids))
    found: dict[str, int] = {}
    for start in range(0, len(ordered), CHUNK):
        rows = session.execute(
            select(Deploy.external_id, Deploy.id).where(
                Deploy.external_id.in_(ordered[start : start + CHUNK])
            )
        )
        found.update({external: row_id for external, row_id in rows})
    return found


def releases_for(session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Release]:
    """Releases by (service, version), looked up by the pair (indexed by its unique constraint)."""
    wanted = sorted(set(keys))
    found: dict[tuple[str, str], Release] = {}
    for start in range(0, len(wanted), CHUNK):
        pairs = wanted[start : start + CHUNK]
        rows = session.scalars(
            select(Release).where(tuple_(Release.service_slug, Release.version).in_(pairs))
        )
        found.update({(row.service_slug, row.version): row for row in rows})
    return found


LiveOrder = tuple[datetime, datetime, int]


def live_orders(session: Session, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], LiveOrder]:
    """For each (service, environment id) with a live deploy: (finished or started, started, id) of it."""
    wanted = set(keys)
    services = sorted({service for service, _env in wanted})
    found: dict[tuple[str, int], LiveOrder] = {}
    for start in range(0, len(services), CHUNK):
        rows = session.execute(
            select(
                LiveVersion.service_slug,
                LiveVersion.environment_id,
                func.coalesce(Deploy.finished_at, Deploy.started_at),
                Deploy.started_at,
                Deploy.id,
            )
            .join(Deploy, Deploy.id == LiveVersion.deploy_id)
            .where(LiveVersion.service_slug.in_(services[start : start + CHUNK]))
        )
        for service, env_id, finished, started, deploy_id in rows:
            if (service, env_id) in wanted:
                found[(service, env_id)] = (_aware(finished), _aware(started), deploy_id)
    return found


def _aware(moment: datetime) -> datetime:
    """coalesce() loses the column type on SQLite, so its value may come back as naive or as text."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
