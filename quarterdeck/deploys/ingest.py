"""Writing new deploy reports in bulk: releases, deploys, their first events, live versions and audit
entries in a few statements per batch, whatever its size. Reports arrive here checked (service.py holds
the rules)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor
from quarterdeck.db import bulk_insert
from quarterdeck.deploys import live, queries, transitions
from quarterdeck.deploys.models import Deploy, Environment, Release
from quarterdeck.deploys.queries import LiveKey
from quarterdeck.deploys.reading import deploy_out
from quarterdeck.deploys.schemas import DeployOut, DeployReport
from quarterdeck.deploys.states import DeployStatus

ReleaseKey = tuple[str, str]


@dataclass
class NewDeploy:
    report: DeployReport
    env: Environment
    tier: int | None
    """The service's tier as it is when the deploy is reported."""
    approval_id: int | None


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


def _advance_live(session: Session, stored: list[DeployOut], environments: dict[str, int]) -> None:
    """New succeeded deploys may be live now: each key's newest of them against the one live before."""
    added: dict[LiveKey, set[int]] = defaultdict(set)
    for deploy in stored:
        if deploy.status is DeployStatus.SUCCEEDED:
            added[(deploy.service, environments[deploy.environment])].add(deploy.id)
    live.refresh(session, list(added), added=added)


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
        "service_tier": deploy.service_tier,
        "approval": deploy.approval,
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
            "service_tier": item.tier,
            "approval_id": item.approval_id,
        }
        for item in items
    ]
    bulk_insert(session, Deploy.__table__, rows)  # type: ignore[arg-type]
    stored = queries.columns_by_external_id(session, [item.report.id for item in items])
    outs = [
        deploy_out(stored[item.report.id], item.env, releases[(item.report.service, item.report.version)])
        for item in items
    ]
    transitions.record_created(
        session,
        [(out.id, out.status, f"reported by {out.source.value}") for out in outs],
        at=at,
        actor=actor.label,
    )
    _advance_live(session, outs, {item.env.slug: item.env.id for item in items})
    changes = [access.Change("deploy.report", ("deploy", str(out.id)), after=_audited(out)) for out in outs]
    access.record_many(session, actor, changes, at=at)
    return outs
