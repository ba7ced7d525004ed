"""Writing entity drafts into the catalog tables, and finding rows by identity.

Imports and the API both end here, so a service made in the UI and one read from git are stored
by the same code. Callers own the transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from quarterdeck.catalog import search
from quarterdeck.catalog.descriptors.drafts import (
    EntityDraft,
    Origin,
    PersonDraft,
    ServiceDraft,
    SystemDraft,
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

Entity = Service | Team | Person | System
MODELS: dict[str, type[Service] | type[Team] | type[Person] | type[System]] = {
    "service": Service,
    "team": Team,
    "person": Person,
    "system": System,
}


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


def new_row(entity: EntityDraft) -> Entity:
    if isinstance(entity, ServiceDraft):
        return Service(kind=entity.kind, slug=entity.slug)
    if isinstance(entity, TeamDraft):
        return Team(slug=entity.slug)
    if isinstance(entity, PersonDraft):
        return Person(slug=entity.slug)
    return System(slug=entity.slug)


def write(
    session: Session,
    row: Entity,
    entity: EntityDraft,
    *,
    source: str,
    origin: Origin | None,
    content_hash: str | None,
    now: datetime,
) -> Entity:
    """Make `row` say what `entity` says; a new row is added to the session.

    Memberships and the search row need the row's id: call `finish()` once after a batch of writes.
    """
    is_new = row.id is None
    if is_new:
        row.created_at = now
        row.version = 1
        session.add(row)
    else:
        row.version += 1
    row.updated_at = now
    row.source = source
    row.source_file = origin.file if origin else None
    row.source_line = origin.line if origin else None
    row.descriptor = origin.descriptor if origin else None
    row.content_hash = content_hash
    row.import_errors = None
    row.annotations = dict(entity.annotations)
    row.links = [dict(link) for link in entity.links]
    if isinstance(row, Service) and isinstance(entity, ServiceDraft):
        _write_service(row, entity)
    elif isinstance(row, Team) and isinstance(entity, TeamDraft):
        _write_team(row, entity)
    elif isinstance(row, Person) and isinstance(entity, PersonDraft):
        _write_person(row, entity)
    elif isinstance(row, System) and isinstance(entity, SystemDraft):
        _write_system(row, entity)
    return row


def finish(session: Session, written: list[tuple[Entity, EntityDraft]]) -> None:
    """Flush a batch of writes, then store their memberships and search rows."""
    session.flush()
    for row, entity in written:
        if isinstance(row, Team | Person):
            _write_memberships(session, row, entity)
    search.index_entities(session, [row for row, _entity in written])


def _write_service(row: Service, entity: ServiceDraft) -> None:
    row.title, row.description, row.type = entity.title, entity.description, entity.type
    row.lifecycle, row.tier = entity.lifecycle, entity.tier
    row.system_ref, row.owner_ref = entity.system_ref, entity.owner_ref
    row.image_repository, row.definition = entity.image_repository, entity.definition
    row.custom_fields = dict(entity.custom_fields)
    if [t.tag for t in row.tags] != entity.tags:
        row.tags = [ServiceTag(tag=tag) for tag in entity.tags]
    if [(c.role, c.person_ref) for c in row.contacts] != entity.contacts:
        row.contacts = [ServiceContact(role=role, person_ref=ref) for role, ref in entity.contacts]
    current = [(d.relation, d.target_kind, d.target_slug) for d in row.dependencies]
    if current != entity.dependencies:
        row.dependencies = [
            ServiceDependency(relation=relation, target_kind=kind, target_slug=slug)
            for relation, kind, slug in entity.dependencies
        ]


def _write_team(row: Team, entity: TeamDraft) -> None:
    row.name, row.description, row.type = entity.name, entity.description, entity.type
    row.email, row.chat_channel = entity.email, entity.chat_channel
    row.parent_ref, row.child_refs = entity.parent_ref, list(entity.child_refs)


def _write_person(row: Person, entity: PersonDraft) -> None:
    row.name, row.email, row.chat_handle = entity.name, entity.email, entity.chat_handle
    row.title, row.avatar_url = entity.title, entity.avatar_url


def _write_system(row: System, entity: SystemDraft) -> None:
    row.kind, row.title, row.description = entity.kind, entity.title, entity.description
    row.owner_ref, row.domain_ref = entity.owner_ref, entity.domain_ref


def _write_memberships(session: Session, row: Team | Person, entity: EntityDraft) -> None:
    if isinstance(row, Team) and isinstance(entity, TeamDraft):
        session.execute(delete(Membership).where(Membership.team_id == row.id))
        session.add_all(
            Membership(team_ref=row.slug, person_ref=person, role=role, team_id=row.id)
            for person, role in entity.members
        )
    elif isinstance(row, Person) and isinstance(entity, PersonDraft):
        session.execute(delete(Membership).where(Membership.person_id == row.id))
        session.add_all(
            Membership(team_ref=team, person_ref=row.slug, role="member", person_id=row.id)
            for team in entity.teams
        )


def remove(session: Session, row: Entity) -> None:
    table, _key = identity_of(row)
    search.unindex_entity(session, table, row.id)
    session.delete(row)
