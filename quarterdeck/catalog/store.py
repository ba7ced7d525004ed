"""Writing entity drafts into the catalog tables, and finding rows by identity.

Imports and the API both end here, so a service made in the UI and one read from git are stored
by the same code. Writes are batched: one INSERT ... RETURNING per table for new rows, and child
rows (tags, contacts, dependencies, memberships, search rows) replaced with a few statements, so
an import of ten thousand services stays a matter of seconds. Callers own the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from quarterdeck.catalog import cache, readmodel, search
from quarterdeck.catalog.descriptors.drafts import (
    EntityDraft,
    Origin,
    PersonDraft,
    ServiceDraft,
    TeamDraft,
)
from quarterdeck.catalog.models import (
    Membership,
    Person,
    Service,
    ServiceContact,
    ServiceDependency,
    ServiceTag,
    System,
    Team,
)
from quarterdeck.db import bulk_insert

Entity = Service | Team | Person | System
Model = type[Service] | type[Team] | type[Person] | type[System]
MODELS: dict[str, Model] = {"service": Service, "team": Team, "person": Person, "system": System}
CHUNK = 900


@dataclass
class Write:
    """One entity to store: `row` is the existing row to update, or None to create one."""

    entity: EntityDraft
    origin: Origin | None = None
    content_hash: str | None = None
    row: Entity | None = None


def identity_of(entity: Entity) -> tuple[str, str]:
    if isinstance(entity, Service):
        return ("service", f"{entity.kind}:{entity.slug}")
    table = {Team: "team", Person: "person", System: "system"}[type(entity)]
    return (table, entity.slug)


def find(session: Session, identity: tuple[str, str]) -> Entity | None:
    table, key = identity
    if table == "service":
        kind, slug = key.split(":", 1)
        return session.scalar(select(Service).where(Service.kind == kind, Service.slug == slug))
    model = MODELS[table]
    return cast("Entity | None", session.scalar(select(model).where(model.slug == key)))


def _columns(entity: EntityDraft) -> dict[str, Any]:
    """The entity's own column values (children excluded)."""
    common = {"annotations": dict(entity.annotations), "links": [dict(link) for link in entity.links]}
    if isinstance(entity, ServiceDraft):
        return common | {
            "kind": entity.kind,
            "slug": entity.slug,
            "title": entity.title,
            "description": entity.description,
            "type": entity.type,
            "lifecycle": entity.lifecycle,
            "tier": entity.tier,
            "system_ref": entity.system_ref,
            "owner_ref": entity.owner_ref,
            "image_repository": entity.image_repository,
            "definition": entity.definition,
            "custom_fields": dict(entity.custom_fields),
        }
    if isinstance(entity, TeamDraft):
        return common | {
            "slug": entity.slug,
            "name": entity.name,
            "description": entity.description,
            "type": entity.type,
            "email": entity.email,
            "chat_channel": entity.chat_channel,
            "parent_ref": entity.parent_ref,
            "child_refs": list(entity.child_refs),
        }
    if isinstance(entity, PersonDraft):
        return common | {
            "slug": entity.slug,
            "name": entity.name,
            "email": entity.email,
            "chat_handle": entity.chat_handle,
            "title": entity.title,
            "avatar_url": entity.avatar_url,
        }
    return common | {
        "slug": entity.slug,
        "kind": entity.kind,
        "title": entity.title,
        "description": entity.description,
        "owner_ref": entity.owner_ref,
        "domain_ref": entity.domain_ref,
    }


def _provenance(write: Write, source: str, now: datetime) -> dict[str, Any]:
    origin = write.origin
    return {
        "source": source,
        "source_file": origin.file if origin else None,
        "source_line": origin.line if origin else None,
        "descriptor": origin.descriptor if origin else None,
        "content_hash": write.content_hash,
        "import_errors": None,
        "updated_at": now,
    }


def save(session: Session, writes: list[Write], *, source: str, now: datetime) -> list[int]:
    """Create or update every entity in `writes`, and the answers of every service they show in;
    returns their ids in the same order."""
    if not writes:
        return []
    readmodel.lock_catalog(session)
    changes = _changes_before(session, writes)
    ids: list[int] = [0] * len(writes)
    for table, model in MODELS.items():
        positions = [i for i, w in enumerate(writes) if w.entity.entity_type == table]
        new = [i for i in positions if writes[i].row is None]
        values = [
            _columns(writes[i].entity)
            | _provenance(writes[i], source, now)
            | {"created_at": now, "version": 1}
            for i in new
        ]
        bulk_insert(session, model.__table__, values)  # type: ignore[arg-type]
        new_ids = _ids_by_key(session, model, {_key(writes[i].entity) for i in new})
        for i in new:
            ids[i] = new_ids[_key(writes[i].entity)]
        for i in positions:
            row = writes[i].row
            if row is None:
                continue
            for key, value in (_columns(writes[i].entity) | _provenance(writes[i], source, now)).items():
                setattr(row, key, value)
            row.version += 1
            ids[i] = row.id
            if isinstance(row, Service):
                session.expire(row, ["tags", "contacts", "dependencies"])
    session.flush()
    updated = {w.entity.entity_type: set[int]() for w in writes}
    for write, entity_id in zip(writes, ids, strict=True):
        if write.row is not None:
            updated[write.entity.entity_type].add(entity_id)
    _replace_children(session, writes, ids, updated)
    search.replace_documents(session, [(w.entity, i) for w, i in zip(writes, ids, strict=True)], updated)
    for write, entity_id in zip(writes, ids, strict=True):
        _note(changes, write.entity, entity_id)
    readmodel.refresh(session, changes)
    cache.bump_generation(session)
    return ids


def _changes_before(session: Session, writes: list[Write]) -> readmodel.Changes:
    """What the rows about to be rewritten show now: edges they declare, a person's old e-mail."""
    changes = readmodel.Changes()
    updated_services = [w.row.id for w in writes if isinstance(w.row, Service)]
    changes.service_keys |= readmodel.declared_targets(session, updated_services)
    for write in writes:
        if isinstance(write.row, Person):
            changes.person_refs |= readmodel.person_refs(write.row.slug, write.row.email)
    return changes


def _note(changes: readmodel.Changes, entity: EntityDraft, entity_id: int) -> None:
    if isinstance(entity, ServiceDraft):
        changes.services.add(entity_id)
    elif isinstance(entity, TeamDraft):
        changes.teams.add(entity.slug)
    elif isinstance(entity, PersonDraft):
        changes.person_refs |= readmodel.person_refs(entity.slug, entity.email)
    else:
        changes.systems.add(entity.slug)


def _key(entity: EntityDraft) -> tuple[str, str]:
    return (entity.kind if isinstance(entity, ServiceDraft) else "", entity.slug)


def _ids_by_key(session: Session, model: Model, keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Ids of just-inserted rows by (kind, slug): slugs are unique per table (per kind for services)."""
    found: dict[tuple[str, str], int] = {}
    slugs = sorted({slug for _kind, slug in keys})
    for start in range(0, len(slugs), CHUNK):
        chunk = slugs[start : start + CHUNK]
        if model is Service:
            rows = session.execute(
                select(Service.id, Service.kind, Service.slug).where(Service.slug.in_(chunk))
            )
            found.update({(kind, slug): row_id for row_id, kind, slug in rows})
        else:
            others = session.execute(select(model.id, model.slug).where(model.slug.in_(chunk)))
            found.update({("", slug): row_id for row_id, slug in others})
    return found


def _delete_where(session: Session, model: Any, column: Any, ids: Iterable[int]) -> None:
    ordered = sorted(ids)
    for start in range(0, len(ordered), CHUNK):
        session.execute(
            delete(model)
            .where(column.in_(ordered[start : start + CHUNK]))
            .execution_options(synchronize_session=False)
        )


def _replace_children(
    session: Session, writes: list[Write], ids: list[int], updated: dict[str, set[int]]
) -> None:
    """Tags, contacts, dependencies and memberships of the written entities, replaced wholesale."""
    service_ids = updated.get("service", set())
    for model in (ServiceTag, ServiceContact, ServiceDependency):
        _delete_where(session, model, model.service_id, service_ids)
    _delete_where(session, Membership, Membership.team_id, updated.get("team", set()))
    _delete_where(session, Membership, Membership.person_id, updated.get("person", set()))
    tags: list[dict[str, Any]] = []
    contacts: list[dict[str, Any]] = []
    dependencies: list[dict[str, Any]] = []
    memberships: list[dict[str, Any]] = []
    for write, entity_id in zip(writes, ids, strict=True):
        entity = write.entity
        if isinstance(entity, ServiceDraft):
            tags += [{"service_id": entity_id, "tag": tag} for tag in entity.tags]
            contacts += [{"service_id": entity_id, "role": r, "person_ref": p} for r, p in entity.contacts]
            dependencies += [
                {"service_id": entity_id, "relation": rel, "target_kind": kind, "target_slug": slug}
                for rel, kind, slug in entity.dependencies
            ]
        elif isinstance(entity, TeamDraft):
            memberships += [
                {
                    "team_ref": entity.slug,
                    "person_ref": p,
                    "role": role,
                    "team_id": entity_id,
                    "person_id": None,
                }
                for p, role in entity.members
            ]
        elif isinstance(entity, PersonDraft):
            memberships += [
                {
                    "team_ref": t,
                    "person_ref": entity.slug,
                    "role": "member",
                    "team_id": None,
                    "person_id": entity_id,
                }
                for t in entity.teams
            ]
    bulk_insert(session, ServiceTag.__table__, tags)  # type: ignore[arg-type]
    bulk_insert(session, ServiceContact.__table__, contacts)  # type: ignore[arg-type]
    bulk_insert(session, ServiceDependency.__table__, dependencies)  # type: ignore[arg-type]
    bulk_insert(session, Membership.__table__, memberships)  # type: ignore[arg-type]


def remove(session: Session, row: Entity) -> None:
    """Delete an entity, and mend the answers of the services that showed it."""
    readmodel.lock_catalog(session)
    table, _key = identity_of(row)
    changes = readmodel.Changes()
    if isinstance(row, Service):
        changes.service_keys = {(row.kind, row.slug)} | readmodel.declared_targets(session, [row.id])
        readmodel.forget(session, row.id)
    elif isinstance(row, Team):
        changes.teams.add(row.slug)
    elif isinstance(row, Person):
        changes.person_refs |= readmodel.person_refs(row.slug, row.email)
    else:
        changes.systems.add(row.slug)
    search.unindex_entity(session, table, row.id)
    session.delete(row)
    readmodel.refresh(session, changes)
    cache.bump_generation(session)


def record_import_errors(session: Session, row: Entity, errors: list[dict[str, Any]]) -> None:
    """Keep an entity whose descriptor failed to import, showing why (its answer shows the errors)."""
    row.import_errors = errors
    if isinstance(row, Service):
        readmodel.refresh(session, readmodel.Changes(services={row.id}))
        cache.bump_generation(session)


def refresh_statistics(session: Session) -> None:
    """ANALYZE the catalog tables (same statement on both databases) after a large import, so the
    query planner does not keep planning for the empty tables it saw before."""
    for table in (
        "services",
        "service_tags",
        "service_contacts",
        "service_dependencies",
        "teams",
        "people",
        "systems",
        "memberships",
        "search_documents",
    ):
        session.execute(text(f"ANALYZE {table}"))
