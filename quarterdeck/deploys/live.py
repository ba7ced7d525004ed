"""Keeping `live_versions` true: what runs in each environment, by the one rule in queries.LIVE_ORDER."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import delete, tuple_, update
from sqlalchemy.orm import Session

from quarterdeck.db import bulk_insert
from quarterdeck.deploys import queries
from quarterdeck.deploys.models import LiveVersion
from quarterdeck.deploys.queries import LiveKey


def refresh(
    session: Session, keys: Collection[LiveKey], *, added: Mapping[LiveKey, Collection[int]] | None = None
) -> None:
    """Point each (service, environment id) at its live deploy after a change of its deploys.

    With `added`, the only change was new deploys (their ids by key): the live one is then the newest of
    them and the one live before, so older deploys are not read again. Without it, every succeeded
    deploy of the key counts (a status change may have ended the live one). The live rows are locked
    first, so two writers of one key take turns and the second sees the first's deploys; two first
    writers of a key with no live row yet collide on its primary key instead, and the request that
    loses is run again (db.retrying_on_race).
    """
    if not keys:
        return
    current = queries.live_for_update(session, keys)
    if added is None:
        found = {key: queries.live_deploy_id(session, key) for key in keys}
        newest = {key: deploy_id for key, deploy_id in found.items() if deploy_id is not None}
    else:
        candidates = {key: {*added.get(key, ()), *([current[key]] if key in current else [])} for key in keys}
        newest = queries.live_among(session, candidates)
    inserts = [_row(key, deploy_id) for key, deploy_id in newest.items() if key not in current]
    moves = [
        _row(key, deploy_id)
        for key, deploy_id in newest.items()
        if key in current and current[key] != deploy_id
    ]
    gone = [key for key in current if key not in newest]
    bulk_insert(session, LiveVersion.__table__, inserts)  # type: ignore[arg-type]
    if moves:
        session.execute(update(LiveVersion), moves)
    if gone:
        session.execute(
            delete(LiveVersion).where(tuple_(LiveVersion.service_slug, LiveVersion.environment_id).in_(gone))
        )


def _row(key: LiveKey, deploy_id: int) -> dict[str, object]:
    return {"service_slug": key[0], "environment_id": key[1], "deploy_id": deploy_id}
