"""Catalog read statements: look-ups by reference and the filtered service list. No rules here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, func, or_, select
from sqlalchemy.orm import Session

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
from quarterdeck.catalog.schemas import ServiceFilters

CHUNK = 900


def like_literal(text: str) -> str:
    """`text` for a LIKE pattern, its own % and _ matched literally (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + CHUNK] for i in range(0, len(values), CHUNK)]


def people_by_refs(session: Session, refs: set[str]) -> dict[str, Person]:
    """People named by e-mail, handle or `user:handle`, keyed by the reference as given."""
    found: dict[str, Person] = {}
    emails = sorted(ref for ref in refs if "@" in ref)
    handles: dict[str, list[str]] = {}  # `ada` and `user:ada` may both be asked for
    for ref in refs:
        if "@" not in ref:
            handles.setdefault(ref.removeprefix("user:"), []).append(ref)
    for chunk in _chunks(emails):
        for person in session.scalars(select(Person).where(Person.email.in_(chunk)).order_by(Person.id)):
            found.setdefault(person.email or "", person)
    for chunk in _chunks(sorted(handles)):
        for person in session.scalars(select(Person).where(Person.slug.in_(chunk))):
            found.update(dict.fromkeys(handles[person.slug], person))
    return found


def teams_by_slugs(session: Session, slugs: set[str]) -> dict[str, Team]:
    found: dict[str, Team] = {}
    for chunk in _chunks(sorted(slugs)):
        for team in session.scalars(select(Team).where(Team.slug.in_(chunk))):
            found[team.slug] = team
    return found


@dataclass(frozen=True)
class ServiceBrief:
    kind: str
    slug: str
    title: str
    tier: int | None


def services_by_keys(session: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], ServiceBrief]:
    """Title and tier of the named services: enough to draw an edge, without loading whole rows."""
    found: dict[tuple[str, str], ServiceBrief] = {}
    slugs = sorted({slug for _kind, slug in keys})
    for chunk in _chunks(slugs):
        query = select(Service.kind, Service.slug, Service.title, Service.tier).where(Service.slug.in_(chunk))
        for kind, slug, title, tier in session.execute(query):
            if (kind, slug) in keys:
                found[(kind, slug)] = ServiceBrief(kind, slug, title, tier)
    return found


def service_by_slug(session: Session, slug: str, kind: str | None) -> Service | None:
    query = select(Service).where(Service.slug == slug)
    if kind:
        return session.scalar(query.where(Service.kind == kind))
    candidates = list(session.scalars(query))
    order = {"component": 0, "api": 1, "resource": 2}
    candidates.sort(key=lambda s: order.get(s.kind, 9))
    return candidates[0] if candidates else None


Key = tuple[str, str]
Edge = tuple[Key, str, Key]  # (declaring service, relation, target)


def edges_touching(session: Session, keys: set[Key]) -> list[Edge]:
    """Every edge declared by, or pointing at, one of the services named by (kind, slug), in the
    order they were declared."""
    slugs = sorted({slug for _kind, slug in keys})
    columns = (
        ServiceDependency.id,
        Service.kind,
        Service.slug,
        ServiceDependency.relation,
        ServiceDependency.target_kind,
        ServiceDependency.target_slug,
    )
    found: dict[int, Edge] = {}
    for chunk in _chunks(slugs):
        joined = select(*columns).join(Service, Service.id == ServiceDependency.service_id)
        for query in (
            joined.where(Service.slug.in_(chunk)),
            joined.where(ServiceDependency.target_slug.in_(chunk)),
        ):
            for edge_id, kind, slug, relation, target_kind, target_slug in session.execute(query):
                if (kind, slug) in keys or (target_kind, target_slug) in keys:
                    found[edge_id] = ((kind, slug), relation, (target_kind, target_slug))
    return list(dict.fromkeys(found[edge_id] for edge_id in sorted(found)))


def service_ids_by_keys(session: Session, keys: set[Key]) -> dict[Key, int]:
    found: dict[Key, int] = {}
    for chunk in _chunks(sorted({slug for _kind, slug in keys})):
        for service_id, kind, slug in session.execute(
            select(Service.id, Service.kind, Service.slug).where(Service.slug.in_(chunk))
        ):
            if (kind, slug) in keys:
                found[(kind, slug)] = service_id
    return found


def columns_where(session: Session, key: Any, ids: Sequence[int], *columns: Any) -> list[Row[Any]]:
    """`key` and `columns` of the rows whose `key` (an id column) is in `ids`, a query per CHUNK ids."""
    found: list[Row[Any]] = []
    for start in range(0, len(ids), CHUNK):
        found += session.execute(select(key, *columns).where(key.in_(ids[start : start + CHUNK])))
    return found


def all_ids(session: Session, model: type[Service] | type[Team] | type[Person] | type[System]) -> list[int]:
    return list(session.scalars(select(model.id).order_by(model.id)))


def systems_by_slugs(session: Session, slugs: set[str]) -> dict[str, System]:
    found: dict[str, System] = {}
    for chunk in _chunks(sorted(slugs)):
        for system in session.scalars(select(System).where(System.slug.in_(chunk))):
            found[system.slug] = system
    return found


def filtered_services(filters: ServiceFilters) -> Select[Service]:
    query = select(Service)
    if filters.owner:
        query = query.where(Service.owner_ref == filters.owner.lower())
    if filters.tier is not None:
        query = query.where(Service.tier == filters.tier)
    if filters.lifecycle:
        query = query.where(Service.lifecycle == filters.lifecycle.lower())
    if filters.system:
        query = query.where(Service.system_ref == filters.system.lower())
    if filters.kind:
        query = query.where(Service.kind == filters.kind.lower())
    if filters.type:
        query = query.where(Service.type == filters.type.lower())
    if filters.tag:
        query = query.where(
            Service.id.in_(select(ServiceTag.service_id).where(ServiceTag.tag == filters.tag.lower()))
        )
    if filters.text:
        pattern = "%" + like_literal(filters.text.lower()) + "%"
        query = query.where(
            or_(
                func.lower(Service.slug).like(pattern, escape="\\"),
                func.lower(Service.title).like(pattern, escape="\\"),
                func.lower(Service.description).like(pattern, escape="\\"),
            )
        )
    return query


def after_key(key: tuple[str, str]) -> ColumnElement[bool]:
    """Services after (slug, kind) in the list's order: the keyset condition, one index range."""
    slug, kind = key
    return or_(Service.slug > slug, and_(Service.slug == slug, Service.kind > kind))


def count(session: Session, query: Select[Service]) -> int:
    return session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0


def memberships_of_team(session: Session, slug: str) -> list[Membership]:
    return list(
        session.scalars(select(Membership).where(Membership.team_ref == slug).order_by(Membership.id))
    )


def memberships_of_person(session: Session, person: Person) -> list[Membership]:
    refs = [person.slug] + ([person.email] if person.email else [])
    return list(session.scalars(select(Membership).where(Membership.person_ref.in_(refs))))


def contacts_of_person(session: Session, person: Person) -> list[tuple[ServiceContact, Service]]:
    refs = [person.slug, f"user:{person.slug}"] + ([person.email] if person.email else [])
    query = (
        select(ServiceContact, Service)
        .join(Service, Service.id == ServiceContact.service_id)
        .where(ServiceContact.person_ref.in_(refs))
        .order_by(Service.slug)
    )
    return [(contact, service) for contact, service in session.execute(query)]


def child_teams(session: Session, team: Team) -> list[Team]:
    query = select(Team).where(or_(Team.parent_ref == team.slug, Team.slug.in_(team.child_refs or [])))
    return list(session.scalars(query.order_by(Team.name)))


def systems_in_domain(session: Session, slug: str) -> list[System]:
    return list(session.scalars(select(System).where(System.domain_ref == slug).order_by(System.slug)))


def person_by_key(session: Session, key: str) -> Person | None:
    """A person by handle, e-mail or numeric id; a handle made of digits wins over an id."""
    if "@" in key:
        return session.scalar(select(Person).where(Person.email == key.lower()).order_by(Person.id).limit(1))
    person = session.scalar(select(Person).where(Person.slug == key.lower()))
    if person is None and key.isdigit() and len(key) <= 9:
        person = session.get(Person, int(key))
    return person


def distinct_values(session: Session) -> dict[str, list[str]]:
    def values(column: object) -> list[str]:
        return [v for v in session.scalars(select(column).distinct().order_by(column)) if v]  # type: ignore[call-overload]

    return {
        "owner": values(Service.owner_ref),
        "lifecycle": values(Service.lifecycle),
        "system": values(Service.system_ref),
        "tag": values(ServiceTag.tag),
    }
