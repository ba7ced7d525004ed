"""Writing new deploy reports in bulk: releases, deploys, live versions and audit entries in a few
statements per batch, whatever its size. Reports arrive here checked (service.py holds the rules)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor
from quarterdeck.db import bulk_insert
from quarterdeck.deploys import queries
from quarterdeck.deploys.models import Deploy, DeployStatus, Environment, LiveVersion, Release
from quarterdeck.deploys.queries import LiveOrder
from quarterdeck.deploys.reading import env_out, release_out
from quarterdeck.deploys.schemas import DeployOut, DeployReport, ReleaseOut

ReleaseKey = tuple[str, str]


@dataclass
class NewDeploy:
    report: DeployReport
    env: Environment


@dataclass
class NewRelease:
    """A version first seen in this batch; later reports of the same version may fill its gaps."""

    service: str
    version: str
    image: str | None
    digest: str | None
    commit: str | None
    notes: str


def _insert_releases(
    session: Session, actor: Actor, pending: dict[ReleaseKey, NewRelease], at: datetime
) -> dict[ReleaseKey, Release]:
    rows = [
        {
            "service_slug": r.service,
            "version": r.version,
            "image": r.image,
            "digest": r.digest,
            "commit": r.commit,
            "notes": r.notes,
            "created_by": actor.label,
            "created_at": at,
        }
        for r in pending.values()
    ]
    bulk_insert(session, Release.__table__, rows)  # type: ignore[arg-type]
    return queries.releases_for(session, pending)


def _advance_live(session: Session, written: list[tuple[DeployReport, Environment, int]]) -> None:
    """Each (service, environment) takes its newest succeeded deploy, unless a later one is live."""
    best: dict[tuple[str, int], LiveOrder] = {}
    for report, env, deploy_id in written:
        if report.status is not DeployStatus.SUCCEEDED:
            continue
        order = (report.finished_at or report.started_at, report.started_at, deploy_id)
        key = (report.service, env.id)
        if key not in best or order > best[key]:
            best[key] = order
    if not best:
        return
    current = queries.live_orders(session, best)
    inserts = [
        {"service_slug": s, "environment_id": e, "deploy_id": o[2]}
        for (s, e), o in best.items()
        if (s, e) not in current
    ]
    moves = [
        {"service_slug": s, "environment_id": e, "deploy_id": order[2]}
        for (s, e), order in best.items()
        if (s, e) in current and order > current[(s, e)]
    ]
    bulk_insert(session, LiveVersion.__table__, inserts)  # type: ignore[arg-type]
    if moves:
        session.execute(update(LiveVersion), moves)


def _audited(deploy: DeployOut) -> dict[str, object]:
    return {
        "external_id": deploy.external_id,
        "service": deploy.service,
        "environment": deploy.environment,
        "version": deploy.release.version,
        "status": deploy.status.value,
        "image": deploy.release.image,
        "commit": deploy.release.commit,
        "started_at": deploy.started_at.isoformat(),
        "finished_at": deploy.finished_at.isoformat() if deploy.finished_at else None,
        "source": deploy.source.value,
    }


def insert_new(
    session: Session,
    actor: Actor,
    items: list[NewDeploy],
    releases: dict[ReleaseKey, Release],
    pending: dict[ReleaseKey, NewRelease],
    *,
    at: datetime,
) -> list[DeployOut]:
    """Store new deploys (and their new releases), move live versions on, audit each; their views."""
    session.flush()
    if pending:
        releases = releases | _insert_releases(session, actor, pending, at)
    views: dict[ReleaseKey, ReleaseOut] = {key: release_out(row) for key, row in releases.items()}
    rows = [
        {
            "external_id": item.report.id,
            "service_slug": item.report.service,
            "environment_id": item.env.id,
            "release_id": releases[(item.report.service, item.report.version)].id,
            "status": item.report.status.value,
            "source": item.report.source.value,
            "deployed_by": actor.label,
            "started_at": item.report.started_at,
            "finished_at": item.report.finished_at,
            "notes": item.report.notes,
            "reported_at": at,
        }
        for item in items
    ]
    bulk_insert(session, Deploy.__table__, rows)  # type: ignore[arg-type]
    ids = queries.deploy_ids(session, [item.report.id for item in items])
    outs = [
        DeployOut(
            id=ids[item.report.id],
            external_id=item.report.id,
            service=item.report.service,
            environment=env_out(item.env).slug,
            status=item.report.status,
            source=item.report.source,
            deployed_by=actor.label,
            started_at=item.report.started_at.astimezone(UTC),
            finished_at=item.report.finished_at.astimezone(UTC) if item.report.finished_at else None,
            notes=item.report.notes,
            release=views[(item.report.service, item.report.version)],
            url=f"/deploys/{ids[item.report.id]}",
        )
        for item in items
    ]
    _advance_live(session, [(item.report, item.env, ids[item.report.id]) for item in items])
    changes = [access.Change("deploy.report", ("deploy", str(out.id)), after=_audited(out)) for out in outs]
    access.record_many(session, actor, changes, at=at)
    return outs
