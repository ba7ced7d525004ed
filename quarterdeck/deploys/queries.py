"""Deploy statements: lookups by id and slug, history pages, the newest succeeded deploy, live rows,
status events."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Select, func, select, tuple_, union_all, update
from sqlalchemy import Row as SqlRow
from sqlalchemy.orm import Session

from quarterdeck.deploys.models import Deploy, DeployEvent, Environment, LiveVersion, Release
from quarterdeck.deploys.states import DeployStatus

Row = tuple[Deploy, Environment, Release]
CHUNK = 500
"""Values per IN (...) list."""
LiveKey = tuple[str, int]
"""(service slug, environment id)"""

LIVE_ORDER = (
    func.coalesce(Deploy.finished_at, Deploy.started_at).desc(),
    Deploy.started_at.desc(),
    Deploy.id.desc(),
)
"""The one rule of what runs: of a service's succeeded deploys to an environment, the live one is the
one that finished last (started last, then recorded last, on a tie)."""


def environments(session: Session) -> list[Environment]:
    return list(session.scalars(select(Environment).order_by(Environment.position, Environment.slug)))


def joined() -> Select[Deploy, Environment, Release]:
    return (
        select(Deploy, Environment, Release)
        .join(Environment, Environment.id == Deploy.environment_id)
        .join(Release, Release.id == Deploy.release_id)
    )


@dataclass(frozen=True, kw_only=True)
class DeployFilters:
    service: str | None = None
    environment: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    flagged: bool = False
    """Only deploys flagged as needing an approval they did not have (flagging.py)."""


def filtered(
    filters: DeployFilters, approval_tiers: Collection[int] = ()
) -> Select[Deploy, Environment, Release]:
    """The deploys the filters let through; `flagged` keeps the production deploys of services then of
    one of `approval_tiers` that no approval was linked to."""
    query = joined()
    if filters.flagged:
        query = query.where(
            Environment.production.is_(True),
            Deploy.service_tier.in_(sorted(approval_tiers)),
            Deploy.approval_id.is_(None),
        )
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


def page_of(
    session: Session,
    filters: DeployFilters,
    *,
    page: int,
    per_page: int,
    approval_tiers: Collection[int] = (),
) -> tuple[list[Row], int]:
    query = filtered(filters, approval_tiers)
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


def previously_live(session: Session, deploy: Deploy) -> Deploy | None:
    """The deploy that was live where `deploy` went, before it: the newest other succeeded deploy of
    the service to that environment that started no later than it."""
    return session.scalar(
        select(Deploy)
        .where(
            Deploy.service_slug == deploy.service_slug,
            Deploy.environment_id == deploy.environment_id,
            Deploy.status == DeployStatus.SUCCEEDED.value,
            Deploy.id != deploy.id,
            Deploy.started_at <= deploy.started_at,
        )
        .order_by(*LIVE_ORDER)
        .limit(1)
    )


def live_deploy_id(session: Session, key: LiveKey) -> int | None:
    """The live deploy of one (service, environment id) by LIVE_ORDER; None when none succeeded there."""
    service, environment_id = key
    return session.scalar(
        select(Deploy.id)
        .where(
            Deploy.service_slug == service,
            Deploy.environment_id == environment_id,
            Deploy.status == DeployStatus.SUCCEEDED.value,
        )
        .order_by(*LIVE_ORDER)
        .limit(1)
    )


def live_among(session: Session, candidates: Mapping[LiveKey, Collection[int]]) -> dict[LiveKey, int]:
    """Of each (service, environment id)'s candidate deploys, the one LIVE_ORDER puts first among those
    that succeeded; keys none of whose candidates succeeded are left out."""
    keys = sorted(candidates)
    found: dict[LiveKey, int] = {}
    for start in range(0, len(keys), CHUNK):
        ids = sorted({deploy_id for key in keys[start : start + CHUNK] for deploy_id in candidates[key]})
        ranked = (
            select(
                Deploy.id,
                Deploy.service_slug,
                Deploy.environment_id,
                func.row_number()
                .over(partition_by=(Deploy.service_slug, Deploy.environment_id), order_by=LIVE_ORDER)
                .label("place"),
            )
            .where(Deploy.id.in_(ids), Deploy.status == DeployStatus.SUCCEEDED.value)
            .subquery()
        )
        rows = session.execute(
            select(ranked.c.service_slug, ranked.c.environment_id, ranked.c.id).where(ranked.c.place == 1)
        )
        found.update({(service, env_id): deploy_id for service, env_id, deploy_id in rows})
    return found


def live_for_update(session: Session, keys: Collection[LiveKey]) -> dict[LiveKey, int]:
    """The live deploy id recorded for each key that has one, those rows locked until the transaction
    ends (PostgreSQL; SQLite's writer holds the whole database already)."""
    wanted = sorted(set(keys))
    found: dict[LiveKey, int] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = session.execute(
            select(LiveVersion.service_slug, LiveVersion.environment_id, LiveVersion.deploy_id)
            .where(
                tuple_(LiveVersion.service_slug, LiveVersion.environment_id).in_(
                    wanted[start : start + CHUNK]
                )
            )
            .with_for_update()
        )
        found.update({(service, env_id): deploy_id for service, env_id, deploy_id in rows})
    return found


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


def deploys_by_external_id(session: Session, ids: Iterable[str]) -> dict[str, Deploy]:
    ordered = sorted(set(ids))
    found: dict[str, Deploy] = {}
    for start in range(0, len(ordered), CHUNK):
        rows = session.scalars(select(Deploy).where(Deploy.external_id.in_(ordered[start : start + CHUNK])))
        found.update({row.external_id: row for row in rows})
    return found


def columns_by_external_id(session: Session, ids: Iterable[str]) -> dict[str, SqlRow[Any]]:
    """The deploys table's columns of each deploy, by reporter's id: read back cheaply after a bulk insert."""
    ordered = sorted(set(ids))
    found: dict[str, SqlRow[Any]] = {}
    for start in range(0, len(ordered), CHUNK):
        rows = session.execute(
            select(*Deploy.__table__.c).where(Deploy.external_id.in_(ordered[start : start + CHUNK]))
        )
        found.update({row.external_id: row for row in rows})
    return found


def events_of(session: Session, deploy_id: int) -> list[DeployEvent]:
    """A deploy's status changes, oldest first."""
    query = select(DeployEvent).where(DeployEvent.deploy_id == deploy_id)
    return list(session.scalars(query.order_by(DeployEvent.id)))


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


PROBES = 100
"""(service, environment) probes per statement: SQLite allows 500 terms in one compound SELECT."""


def latest_per_environment(session: Session, services: Iterable[str]) -> list[Row]:
    """The newest deploy (by start, then id), whatever its status, of each service in each environment
    it went to: a LIMIT 1 probe per (service, environment), each an index range of that service's
    deploys, PROBES of them a statement (a window over every deploy of the services reads them all)."""
    slugs = sorted(set(services))
    environment_ids = list(session.scalars(select(Environment.id).order_by(Environment.id)))
    pairs = [(slug, env_id) for slug in slugs for env_id in environment_ids]
    ids: list[int] = []
    for start in range(0, len(pairs), PROBES):
        probes = [
            select(Deploy.id)
            .where(Deploy.service_slug == slug, Deploy.environment_id == env_id)
            .order_by(Deploy.started_at.desc(), Deploy.id.desc())
            .limit(1)
            .subquery()
            for slug, env_id in pairs[start : start + PROBES]
        ]
        ids += session.scalars(union_all(*(select(probe.c.id) for probe in probes)))
    if not ids:
        return []
    return list(session.execute(joined().where(Deploy.id.in_(ids))))


def recent_of(session: Session, services: Iterable[str], *, limit: int) -> list[Row]:
    """The `limit` newest deploys of these services (by start, then id), newest first."""
    slugs = sorted(set(services))
    if not slugs:
        return []
    query = joined().where(Deploy.service_slug.in_(slugs))
    return list(session.execute(query.order_by(Deploy.started_at.desc(), Deploy.id.desc()).limit(limit)))


def link_approval(session: Session, deploy_id: int, approval_id: int) -> bool:
    """Link an approval to a deploy that has none (guarded: a racing link wins once); whether it did."""
    done: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Deploy)
        .where(Deploy.id == deploy_id, Deploy.approval_id.is_(None))
        .values(approval_id=approval_id)
    )
    return done.rowcount == 1
