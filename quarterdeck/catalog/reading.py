"""Catalog read models: entities with their references resolved, as the API and pages show them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from quarterdeck.catalog import cache, queries, schemas, search, store
from quarterdeck.catalog.models import Person, Service, System, Team
from quarterdeck.catalog.schemas import ServiceFilters
from quarterdeck.errors import NotFound

OUTGOING = ("depends_on", "consumes_api", "provides_api", "part_of")


def etag_of(row: store.Entity) -> str:
    table, _key = store.identity_of(row)
    return f'"{table}-{row.id}-v{row.version}"'


def _person_brief(person: Person) -> schemas.PersonBrief:
    return schemas.PersonBrief(
        slug=person.slug,
        name=person.name,
        email=person.email,
        chat_handle=person.chat_handle,
        title=person.title,
        url=f"/people/{person.slug}",
    )


def team_brief(team: Team) -> schemas.TeamBrief:
    return schemas.TeamBrief(
        slug=team.slug,
        name=team.name,
        email=team.email,
        chat_channel=team.chat_channel,
        url=f"/teams/{team.slug}",
    )


def summary_of(service: Service) -> schemas.ServiceSummary:
    return schemas.ServiceSummary(
        kind=service.kind,
        slug=service.slug,
        title=service.title,
        description=service.description,
        type=service.type,
        lifecycle=service.lifecycle,
        tier=service.tier,
        owner=service.owner_ref,
        system=service.system_ref,
        tags=[tag.tag for tag in service.tags],
        url=search.service_url(service.kind, service.slug),
    )


def _source(row: store.Entity) -> schemas.SourceInfo:
    return schemas.SourceInfo(
        source=row.source,
        file=row.source_file,
        line=row.source_line,
        detached_from=row.detached_from,
        descriptor=row.descriptor,
    )


def _errors(row: store.Entity) -> list[schemas.ImportError_]:
    return [schemas.ImportError_(**error) for error in row.import_errors or []]


def _owner(session: Session, ref: str | None) -> schemas.Owner | None:
    if not ref:
        return None
    if ref.startswith("user:") or "@" in ref:
        person = queries.people_by_refs(session, {ref}).get(ref)
        return schemas.Owner(ref=ref, person=_person_brief(person) if person else None)
    team = queries.teams_by_slugs(session, {ref}).get(ref)
    return schemas.Owner(ref=ref, team=team_brief(team) if team else None)


def _system_ref(session: Session, slug: str | None) -> schemas.Ref | None:
    if not slug:
        return None
    system = session.scalar(select(System).where(System.slug == slug))
    return schemas.Ref(
        type="system",
        ref=slug,
        slug=slug,
        name=system.title if system else None,
        url=f"/systems/{slug}" if system else None,
        exists=system is not None,
    )


def get_service(session: Session, slug: str, kind: str | None = None) -> Service:
    service = queries.service_by_slug(session, slug.lower(), kind)
    if service is None:
        what = f"{kind} {slug!r}" if kind else f"service {slug!r}"
        raise NotFound(f"{what} is not in the catalog", code="catalog.service_not_found")
    return service


def _edge(relation: str, key: queries.Key, found: queries.ServiceBrief | None) -> schemas.Edge:
    kind, slug = key
    return schemas.Edge(
        relation=relation,
        kind=kind,
        slug=slug,
        title=found.title if found else None,
        tier=found.tier if found else None,
        url=search.service_url(kind, slug) if found else None,
        exists=found is not None,
    )


def directed_edges(edges: list[queries.Edge]) -> list[tuple[queries.Key, str, queries.Key]]:
    """Edges as (caller, relation, callee): `dependencyOf` is a dependency written on the other side."""
    directed = []
    for source, relation, target in edges:
        if relation == "dependency_of":
            directed.append((target, "depends_on", source))
        else:
            directed.append((source, relation, target))
    return list(dict.fromkeys(directed))


def service_edges(session: Session, service: Service) -> tuple[list[schemas.Edge], list[schemas.Edge]]:
    """(what it depends on, what depends on it), from edges declared on either side."""
    me = (service.kind, service.slug)
    edges = directed_edges(queries.edges_touching(session, {me}))
    outgoing = [
        (relation, callee) for caller, relation, callee in edges if caller == me and relation in OUTGOING
    ]
    incoming = [(relation, caller) for caller, relation, callee in edges if callee == me and caller != me]
    found = queries.services_by_keys(session, {key for _r, key in outgoing + incoming})
    incoming.sort(key=lambda edge: edge[1][1])
    return (
        [_edge(relation, key, found.get(key)) for relation, key in outgoing],
        [_edge(relation, key, found.get(key)) for relation, key in incoming],
    )


def service_view(session: Session, slug: str, kind: str | None = None) -> schemas.ServiceOut:
    """A service with every reference resolved; cached until the catalog next changes."""
    return cache.cached(session, ("service", slug.lower(), kind), lambda: _service_view(session, slug, kind))


def cached_service_json(session: Session, slug: str, kind: str | None = None) -> tuple[str, bytes] | None:
    """The cached (ETag, JSON body) of a service if there is one: one one-row query, nothing built."""
    found = cache.peek(session, ("service-json", slug.lower(), kind))
    return found if isinstance(found, tuple) else None


def service_json(session: Session, slug: str, kind: str | None = None) -> tuple[str, bytes]:
    """(ETag, JSON body) of a service as the API answers it; cached like the view."""

    def build() -> tuple[str, bytes]:
        view = service_view(session, slug, kind)
        return view.etag, view.model_dump_json().encode()

    return cache.cached(session, ("service-json", slug.lower(), kind), build)


def _service_view(session: Session, slug: str, kind: str | None) -> schemas.ServiceOut:
    service = get_service(session, slug, kind)
    people = queries.people_by_refs(session, {c.person_ref for c in service.contacts})
    depends_on, dependents = service_edges(session, service)
    return schemas.ServiceOut(
        **summary_of(service).model_dump(),
        owner_detail=_owner(session, service.owner_ref),
        system_detail=_system_ref(session, service.system_ref),
        contacts=[
            schemas.Contact(
                role=c.role,
                ref=c.person_ref,
                person=_person_brief(people[c.person_ref]) if c.person_ref in people else None,
            )
            for c in service.contacts
        ],
        links=service.links,
        depends_on=depends_on,
        dependents=dependents,
        image=service.image_repository,
        definition=service.definition,
        annotations=service.annotations,
        custom=service.custom_fields,
        source=_source(service),
        import_errors=_errors(service),
        version=service.version,
        etag=etag_of(service),
        created_at=service.created_at,
        updated_at=service.updated_at,
    )


def list_services(
    session: Session, filters: ServiceFilters, *, page: int = 1, per_page: int = 50
) -> schemas.Page[schemas.ServiceSummary]:
    query = queries.filtered_services(filters)
    total = queries.count(session, query)
    rows = session.scalars(
        query.options(selectinload(Service.tags))
        .order_by(Service.slug, Service.kind)
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return schemas.Page[schemas.ServiceSummary](
        items=[summary_of(row) for row in rows], total=total, page=page, per_page=per_page
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
                person=_person_brief(person) if person else None,
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
        services=[summary_of(s) for s in queries.services_owned_by(session, [team.slug])],
        links=team.links,
        annotations=team.annotations,
        source=_source(team),
        import_errors=_errors(team),
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
        **_person_brief(person).model_dump(),
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
        source=_source(person),
        import_errors=_errors(person),
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
        services=[summary_of(s) for s in queries.services_in_system(session, system.slug)],
        links=system.links,
        annotations=system.annotations,
        source=_source(system),
        import_errors=_errors(system),
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
