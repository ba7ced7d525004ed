"""Catalog reads as the API and pages show them: services from the materialized read model
(readmodel.py), teams, people and systems built from their rows and the services' stored summaries."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quarterdeck.catalog import queries, readmodel, references, schemas, search, store
from quarterdeck.catalog.models import Person, Service, System, Team
from quarterdeck.catalog.readmodel import (
    OUTGOING,
    directed_edges,
    errors_of,
    owner_of,
    person_brief,
    source_of,
    system_ref,
    team_brief,
)
from quarterdeck.catalog.schemas import ServiceFilters
from quarterdeck.errors import Invalid, NotFound

__all__ = ["OUTGOING", "directed_edges", "team_brief"]


def etag_of(row: store.Entity) -> str:
    table, _key = store.identity_of(row)
    return f'"{table}-{row.id}-v{row.version}"'


def _owner(session: Session, ref: str | None) -> schemas.Owner | None:
    if not ref:
        return None
    if references.is_person_ref(ref):
        return owner_of(ref, {}, queries.people_by_refs(session, {ref}))
    return owner_of(ref, queries.teams_by_slugs(session, {ref}), {})


def _system_ref(session: Session, slug: str | None) -> schemas.Ref | None:
    return system_ref(slug, queries.systems_by_slugs(session, {slug} if slug else set()))


def _not_found(slug: str, kind: str | None) -> NotFound:
    what = f"{kind} {slug!r}" if kind else f"service {slug!r}"
    return NotFound(f"{what} is not in the catalog", code="catalog.service_not_found")


def get_service(session: Session, slug: str, kind: str | None = None) -> Service:
    service = queries.service_by_slug(session, slug.lower(), kind)
    if service is None:
        raise _not_found(slug, kind)
    return service


def service_view(session: Session, slug: str, kind: str | None = None) -> schemas.ServiceOut:
    """A service with every reference resolved, as stored by the last write that changed it."""
    view = readmodel.stored_view(session, slug, kind)
    if view is None:
        raise _not_found(slug, kind)
    return view


def service_json(session: Session, slug: str, kind: str | None = None) -> tuple[str, bytes]:
    """(ETag, JSON body) of a service as the API answers it: one indexed read of stored bytes."""
    found = readmodel.stored_json(session, slug, kind)
    if found is None:
        raise _not_found(slug, kind)
    return found


def _after(cursor: str, page: int) -> tuple[str, str]:
    if page != 1:
        raise Invalid(
            "send either cursor or page, not both",
            code="catalog.cursor_and_page",
            details=[{"field": "page", "message": "must be left out when a cursor is sent"}],
        )
    try:
        slug, kind = schemas.key_of_cursor(cursor, 2)
    except ValueError as exc:
        raise Invalid(
            f"cursor: {exc}; send the next_cursor of a previous page",
            code="catalog.bad_cursor",
            details=[{"field": "cursor", "message": str(exc)}],
        ) from exc
    return slug, kind


def list_services(
    session: Session,
    filters: ServiceFilters,
    *,
    page: int = 1,
    per_page: int = 50,
    cursor: str | None = None,
) -> schemas.CursorPage[schemas.ServiceSummary]:
    """A page of services by slug; a `cursor` (a page's `next_cursor`) continues after the service it
    names in one index range, instead of counting `page` pages from the start."""
    query = queries.filtered_services(filters)
    total = queries.count(session, query)
    after = _after(cursor, page) if cursor is not None else None
    if after is not None:
        query = query.where(queries.after_key(after))
    offset = 0 if after is not None else (page - 1) * per_page
    items = readmodel.summaries(session, query, Service.slug, Service.kind, offset=offset, limit=per_page)
    last = items[-1] if len(items) == per_page else None
    return schemas.CursorPage[schemas.ServiceSummary](
        items=items,
        total=total,
        page=page,
        per_page=per_page,
        next_cursor=schemas.cursor_of(last.slug, last.kind) if last else None,
    )


def members_of(session: Session, memberships: list[Any]) -> list[schemas.Member]:
    people = queries.people_by_refs(session, {m.person_ref for m in memberships})
    members: dict[str, schemas.Member] = {}
    for membership in memberships:
        person = people.get(membership.person_ref)
        key = person.slug if person else membership.person_ref
        if key not in members or membership.role != "member":
            members[key] = schemas.Member(
                role=membership.role,
                ref=membership.person_ref,
                person=person_brief(person) if person else None,
            )
    order = {"lead": 0, "manager": 1}
    return sorted(
        members.values(), key=lambda m: (order.get(m.role, 2), m.person.name if m.person else m.ref)
    )


def get_team(session: Session, slug: str) -> Team:
    team = session.scalar(select(Team).where(Team.slug == slug.lower()))
    if team is None:
        raise NotFound(f"team {slug!r} is not in the catalog", code="catalog.team_not_found")
    return team


def team_view(session: Session, slug: str) -> schemas.TeamOut:
    team = get_team(session, slug)
    parent = (
        queries.teams_by_slugs(session, {team.parent_ref}).get(team.parent_ref) if team.parent_ref else None
    )
    return schemas.TeamOut(
        **team_brief(team).model_dump(),
        description=team.description,
        type=team.type,
        parent=schemas.Ref(
            type="team",
            ref=team.parent_ref,
            slug=team.parent_ref,
            name=parent.name if parent else None,
            url=f"/teams/{team.parent_ref}" if parent else None,
            exists=parent is not None,
        )
        if team.parent_ref
        else None,
        children=[team_brief(child) for child in queries.child_teams(session, team)],
        members=members_of(session, queries.memberships_of_team(session, team.slug)),
        services=readmodel.summaries(
            session, select(Service).where(Service.owner_ref == team.slug), Service.tier, Service.slug
        ),
        links=team.links,
        annotations=team.annotations,
        source=source_of(team),
        import_errors=errors_of(team),
        problems=references.problems_of(references.dangling(session, [team])),
        version=team.version,
        etag=etag_of(team),
    )


def get_person(session: Session, key: str) -> Person:
    person = queries.person_by_key(session, key)
    if person is None:
        raise NotFound(f"person {key!r} is not in the catalog", code="catalog.person_not_found")
    return person


def person_view(session: Session, key: str) -> schemas.PersonOut:
    person = get_person(session, key)
    team_refs = {m.team_ref for m in queries.memberships_of_person(session, person)}
    teams = queries.teams_by_slugs(session, team_refs)
    return schemas.PersonOut(
        **person_brief(person).model_dump(),
        avatar_url=person.avatar_url,
        teams=[team_brief(teams[ref]) for ref in sorted(team_refs) if ref in teams],
        contact_for=[
            {
                "role": contact.role,
                "slug": s.slug,
                "title": s.title,
                "url": search.service_url(s.kind, s.slug),
            }
            for contact, s in queries.contacts_of_person(session, person)
        ],
        links=person.links,
        annotations=person.annotations,
        source=source_of(person),
        import_errors=errors_of(person),
        problems=references.problems_of(references.dangling(session, [person])),
        version=person.version,
        etag=etag_of(person),
    )


def get_system(session: Session, slug: str) -> System:
    system = session.scalar(select(System).where(System.slug == slug.lower()))
    if system is None:
        raise NotFound(f"system {slug!r} is not in the catalog", code="catalog.system_not_found")
    return system


def system_view(session: Session, slug: str) -> schemas.SystemOut:
    system = get_system(session, slug)
    return schemas.SystemOut(
        slug=system.slug,
        kind=system.kind,
        title=system.title,
        description=system.description,
        owner=_owner(session, system.owner_ref),
        domain=_system_ref(session, system.domain_ref),
        systems=[
            schemas.Ref(
                type="system", ref=s.slug, slug=s.slug, name=s.title, url=f"/systems/{s.slug}", exists=True
            )
            for s in queries.systems_in_domain(session, system.slug)
        ],
        services=readmodel.summaries(
            session, select(Service).where(Service.system_ref == system.slug), Service.slug
        ),
        links=system.links,
        annotations=system.annotations,
        source=source_of(system),
        import_errors=errors_of(system),
        problems=references.problems_of(references.dangling(session, [system])),
        version=system.version,
        etag=etag_of(system),
        url=f"/systems/{system.slug}",
    )


def list_entities(
    session: Session, table: str, *, text: str | None = None, page: int = 1, per_page: int = 50
) -> tuple[list[Any], int]:
    """Teams, people or systems, ordered by slug, optionally narrowed by a text fragment."""
    model = store.MODELS[table]
    query = select(model)
    if text:
        column = model.title if model is System else model.name  # type: ignore[union-attr]
        pattern = "%" + queries.like_literal(text) + "%"
        query = query.where(column.ilike(pattern, escape="\\") | model.slug.ilike(pattern, escape="\\"))
    total = queries.count(session, query)  # type: ignore[arg-type]
    rows = list(session.scalars(query.order_by(model.slug).offset((page - 1) * per_page).limit(per_page)))
    return rows, total


def _ref(entity_type: str, key: str, slug: str, name: str, url: str) -> schemas.Ref:
    return schemas.Ref(type=entity_type, ref=key, slug=slug, name=name, url=url, exists=True)


def _service_key(key: str) -> tuple[str, str]:
    """(kind, slug) of a service named as references name it: `slug`, or `kind:slug`."""
    kind, colon, slug = key.partition(":")
    return (kind, slug) if colon else ("component", key)


def entity_refs(session: Session, entity_type: str, keys: Iterable[str]) -> dict[str, schemas.Ref]:
    """The entities of `entity_type` these keys name, by key (lower-cased), each as a Ref whose `ref`
    is its canonical key: a few columns each, a query per 900 keys. A service is named by its slug,
    or `kind:slug` when it is an API or a resource; a person by handle or e-mail (the canonical key
    is the handle). Keys that name nothing are left out."""
    wanted = {key.strip().lower() for key in keys}
    if entity_type == "service":
        parsed = {key: _service_key(key) for key in wanted}
        found = queries.services_by_keys(session, set(parsed.values()))
        return {
            key: _ref(
                "service",
                slug if kind == "component" else f"{kind}:{slug}",
                slug,
                brief.title,
                search.service_url(kind, slug),
            )
            for key, (kind, slug) in parsed.items()
            if (brief := found.get((kind, slug))) is not None
        }
    if entity_type == "team":
        teams = queries.teams_by_slugs(session, wanted)
        return {key: _ref("team", t.slug, t.slug, t.name, f"/teams/{t.slug}") for key, t in teams.items()}
    if entity_type == "person":
        people = queries.people_by_refs(session, wanted)
        return {
            key: _ref("person", p.slug, p.slug, p.name, f"/people/{p.slug}")
            for key in wanted
            if (p := people.get(key)) is not None
        }
    if entity_type == "system":
        systems = queries.systems_by_slugs(session, wanted)
        return {
            key: _ref("system", s.slug, s.slug, s.title, f"/systems/{s.slug}") for key, s in systems.items()
        }
    known = ", ".join(search.ENTITY_TYPES)
    raise Invalid(
        f"entity type {entity_type!r} is not one of {known}",
        code="catalog.bad_entity_type",
        details=[{"field": "type", "message": f"one of {known}"}],
    )


def services_owned_by(
    session: Session, owners: Collection[str], *, limit: int
) -> schemas.Page[schemas.ServiceOut]:
    """The services whose owner is one of `owners` (team slugs, or a person as `user:handle` or
    e-mail), the most critical first (tier 1 first, untiered last, then by slug): the stored answers
    of at most `limit` of them, and how many there are in all."""
    refs = sorted({owner.lower() for owner in owners})
    if not refs:
        return schemas.Page[schemas.ServiceOut](items=[], total=0, page=1, per_page=limit)
    query = select(Service).where(Service.owner_ref.in_(refs))
    order = (Service.tier.is_(None), Service.tier, Service.slug, Service.kind)
    items = readmodel.views(session, query, *order, limit=limit)
    total = queries.count(session, query)
    return schemas.Page[schemas.ServiceOut](items=items, total=total, page=1, per_page=limit)
