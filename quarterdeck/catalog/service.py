"""Catalog use cases: editing entities, whois, search and the dependency graph; reads in reading.py.

The only place catalog rules live. Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor, Resource
from quarterdeck.catalog import cache, graph, queries, readmodel, references, schemas, search, store
from quarterdeck.catalog.descriptors.drafts import PersonDraft, ServiceDraft, SystemDraft, TeamDraft
from quarterdeck.catalog.descriptors.quarterdeck_format import FIELDS_MODELS, to_entity
from quarterdeck.catalog.models import UI_SOURCE, Person, Service, System, Team
from quarterdeck.catalog.reading import (
    OUTGOING,
    directed_edges,
    entity_refs,
    etag_of,
    get_person,
    get_service,
    get_system,
    get_team,
    list_entities,
    list_services,
    person_view,
    service_json,
    service_view,
    services_owned_by,
    system_view,
    team_view,
)
from quarterdeck.catalog.references import dangling_page, suggested
from quarterdeck.catalog.schemas import ServiceFilters, ServiceRef
from quarterdeck.catalog.suggest import closest_names, did_you_mean
from quarterdeck.catalog.whois import whois
from quarterdeck.db import RUNTIME_KEY, lock_row
from quarterdeck.errors import Conflict, Forbidden, Invalid, NotFound, PreconditionFailed

__all__ = [
    "OUTGOING",
    "ServiceFilters",
    "ServiceRef",
    "catalog_stats",
    "check_read_model",
    "closest_names",
    "create",
    "current_fields",
    "dangling_page",
    "delete",
    "did_you_mean",
    "editable_row",
    "entity_refs",
    "etag_of",
    "list_entities",
    "list_services",
    "may_edit",
    "neighbourhood",
    "person_view",
    "read_model_missing",
    "rebuild_read_model",
    "render_neighbourhood",
    "search_catalog",
    "service_facets",
    "service_json",
    "service_ref",
    "service_refs",
    "service_view",
    "services_owned_by",
    "suggested",
    "system_view",
    "team_view",
    "teams_of_email",
    "update",
    "whois",
]


# ---------------------------------------------------------------- writing


def _validate(table: str, fields: dict[str, Any]) -> Any:
    """Fields checked as POST and PUT check them, with errors in the same shape (PATCH merges first)."""
    try:
        return FIELDS_MODELS[table].model_validate(fields)
    except ValidationError as exc:
        raise Invalid.from_validation(exc) from exc


def current_etag(session: Session, row: store.Entity) -> str:
    """The ETag a GET answers now: a service's is its stored answer's (it changes when anything the
    answer shows changes); other entities' are their own version's."""
    if isinstance(row, Service):
        return readmodel.stored_etag(session, row.id) or etag_of(row)
    return etag_of(row)


def _check_etag(session: Session, row: store.Entity, if_match: str | None) -> None:
    if if_match is None:
        return
    etag = current_etag(session, row)
    sent = if_match.strip()
    if sent == "*" or sent == etag:
        return
    hint = ""
    if not sent.startswith(('"', 'W/"')):
        hint = "; an ETag is sent as it was received, double quotes included"
    raise PreconditionFailed(
        f"the {store.identity_of(row)[0]} changed since you read it "
        f"(its ETag is {etag}, you sent {sent}){hint}",
        code="catalog.stale_etag",
    )


def resource_of(entity: store.Entity | Any) -> Resource:
    """A catalog row or draft as the access policy sees it: its type, key, owning team and tier."""
    if isinstance(entity, Service | ServiceDraft):
        return Resource(type="service", key=entity.slug, team=entity.owner_ref, tier=entity.tier)
    if isinstance(entity, Team | TeamDraft):
        return Resource(type="team", key=entity.slug, team=entity.slug)
    if isinstance(entity, Person | PersonDraft):
        return Resource(type="person", key=entity.slug)
    return Resource(type="system", key=entity.slug, team=entity.owner_ref)


def _ref(row: Any) -> ServiceRef:
    return ServiceRef(
        slug=row.slug,
        kind=row.kind,
        title=row.title,
        owner=row.owner_ref,
        tier=row.tier,
        lifecycle=row.lifecycle,
        image_repository=row.image_repository,
    )


REF_COLUMNS = (
    Service.slug,
    Service.kind,
    Service.title,
    Service.owner_ref,
    Service.tier,
    Service.lifecycle,
    Service.image_repository,
)


def service_ref(session: Session, slug: str, kind: str | None = None) -> ServiceRef:
    """One service as other domains see it (a component before an API or resource of the same slug);
    NotFound, with the closest slugs as suggestions, when there is none."""
    row = queries.service_by_slug(session, slug.lower(), kind)
    if row is None:
        what = f"{kind} {slug!r}" if kind else f"service {slug!r}"
        near = closest_names(session, slug, entity_type="service")
        raise NotFound(
            f"{what} is not in the catalog{did_you_mean(near)}",
            code="catalog.service_not_found",
            details={"suggestions": near},
        )
    return _ref(row)


def service_refs(session: Session, slugs: Iterable[str]) -> dict[str, ServiceRef]:
    """Many components at once (lower-case slug -> ServiceRef), a few columns each, a query per 500
    slugs: the hot path of deploy reports. Unknown slugs are left out."""
    found: dict[str, ServiceRef] = {}
    ordered = sorted({slug.lower() for slug in slugs})
    for start in range(0, len(ordered), 500):
        rows = session.execute(
            select(*REF_COLUMNS).where(
                Service.slug.in_(ordered[start : start + 500]), Service.kind == "component"
            )
        )
        found.update({row.slug: _ref(row) for row in rows})
    return found


def _audit_target(row: store.Entity) -> tuple[str, str]:
    table, key = store.identity_of(row)
    return table, key.removeprefix("component:")


def _person_resource(session: Session, actor: Actor, row: store.Entity) -> Resource:
    """A person's own entry is theirs to edit: the actor's user has the person's e-mail."""
    resource = resource_of(row)
    if (
        isinstance(row, Person)
        and row.email
        and actor.user_id is not None
        and access.find_user(session, actor.user_id).email == row.email.lower()
    ):
        return Resource(type="person", key=row.slug, owner_user_id=actor.user_id)
    return resource


def _strict_references(session: Session) -> bool:
    """QD_STRICT_REFERENCES of the runtime that made the session (off for a bare session): every
    path that edits in the portal (API, pages) is held to it without passing it along."""
    runtime = session.info.get(RUNTIME_KEY)
    return bool(runtime is not None and runtime.settings.strict_references)


def create(
    session: Session,
    actor: Actor,
    table: str,
    fields: dict[str, Any],
    *,
    now: datetime,
) -> store.Entity:
    """Add an entity made in the portal; it belongs to the UI source, never touched by imports.
    With QD_STRICT_REFERENCES one naming something the catalog does not have is refused."""
    entity = to_entity(_validate(table, fields))
    access.require(actor, "catalog.create", resource_of(entity))
    readmodel.lock_catalog(session)
    draft_identity = ("service", f"component:{entity.slug}") if table == "service" else (table, entity.slug)
    existing = store.find(session, draft_identity)
    if existing is not None:
        raise Conflict(
            f"{table} {entity.slug!r} already exists", code="catalog.duplicate", details={"slug": entity.slug}
        )
    if _strict_references(session):
        references.refuse_dangling(session, entity)
    store.save(session, [store.Write(entity)], source=UI_SOURCE, now=now)
    row = store.find(session, draft_identity)
    assert row is not None
    access.record(
        session, actor, f"{table}.create", target=_audit_target(row), at=now, after=current_fields(row)
    )
    return row


def editable_row(session: Session, actor: Actor, slug: str, kind: str | None) -> store.Entity:
    """A component for its edit page: refused unless the actor may edit it."""
    row = find_row(session, "service", slug, kind)
    access.require(actor, "catalog.edit", resource_of(row))
    return row


def may_edit(actor: Actor, row: store.Entity) -> bool:
    """Whether the page shows its Edit button: the rule `update` enforces."""
    return bool(access.can(actor, "catalog.edit", resource_of(row)))


def current_fields(row: store.Entity) -> dict[str, Any]:
    """An entity as the body PUT takes, for PATCH to merge into."""
    links = [{k: v for k, v in link.items() if v or k != "title"} for link in row.links]
    common: dict[str, Any] = {"annotations": dict(row.annotations), "links": links}
    if isinstance(row, Service):
        return {
            **common,
            "slug": row.slug,
            "title": row.title,
            "description": row.description,
            "type": row.type,
            "lifecycle": row.lifecycle,
            "tier": row.tier,
            "system": row.system_ref,
            "owner": row.owner_ref,
            "contacts": [{"role": c.role, "person": c.person_ref} for c in row.contacts],
            "tags": [t.tag for t in row.tags],
            "depends_on": [
                d.target_slug if d.target_kind == "component" else f"{d.target_kind}:{d.target_slug}"
                for d in row.dependencies
                if d.relation == "depends_on"
            ],
            "image": row.image_repository,
            "custom": dict(row.custom_fields),
        }
    if isinstance(row, Team):
        return {
            **common,
            "slug": row.slug,
            "name": row.name,
            "description": row.description,
            "email": row.email,
            "chat": row.chat_channel,
            "parent": row.parent_ref,
        }
    if isinstance(row, Person):
        return {
            **common,
            "email": row.email,
            "name": row.name,
            "handle": row.slug,
            "chat": row.chat_handle,
            "title": row.title,
        }
    return {
        **common,
        "slug": row.slug,
        "title": row.title,
        "description": row.description,
        "owner": row.owner_ref,
        "domain": row.domain_ref,
    }


def update(
    session: Session,
    actor: Actor,
    row: store.Entity,
    fields: dict[str, Any],
    *,
    if_match: str | None,
    partial: bool,
    now: datetime,
) -> store.Entity:
    """Edit an entity in the portal. An imported entity becomes the portal's: imports leave it alone.

    The actor must be allowed to edit the entity as it is and, when the owner changes, as it will be:
    nobody hands a service to a team and keeps editing it, nor takes one from another team. With
    QD_STRICT_REFERENCES an edit naming something the catalog does not have is refused.
    """
    readmodel.lock_catalog(session)
    lock_row(session, row)
    access.require(actor, "catalog.edit", _person_resource(session, actor, row))
    _check_etag(session, row, if_match)
    table, _key = store.identity_of(row)
    before = current_fields(row)
    if partial:
        fields = {**current_fields(row), **fields}
        if table == "team" and "members" not in fields:
            fields["members"] = _teammembers_of(session, row)
        if isinstance(row, Person) and "teams" not in fields:
            fields["teams"] = [
                m.team_ref for m in queries.memberships_of_person(session, row) if m.person_id == row.id
            ]
    key = "handle" if table == "person" else "slug"
    if fields.get(key, row.slug) != row.slug:
        raise Invalid(
            f"{key} cannot be changed (it is {row.slug!r})",
            code="catalog.slug_immutable",
            details=[{"field": key, "message": "cannot be changed"}],
        )
    fields.setdefault(key, row.slug)
    entity = to_entity(_validate(table, fields))
    if isinstance(row, Person) and isinstance(entity, PersonDraft):
        _require_rights_it_grants(session, actor, row, entity)
    else:
        access.require(actor, "catalog.edit", resource_of(entity))
    _keep_what_the_api_cannot_say(row, entity)
    if _strict_references(session):
        references.refuse_dangling(session, entity, replacing=row)
    if row.source != UI_SOURCE:
        row.detached_from = row.source
    store.save(session, [store.Write(entity, row=row)], source=UI_SOURCE, now=now)
    after = current_fields(row)
    changed = {k for k in after if after.get(k) != before.get(k)}
    access.record(
        session,
        actor,
        f"{table}.update",
        target=_audit_target(row),
        at=now,
        before={k: before.get(k) for k in sorted(changed)},
        after={k: after[k] for k in sorted(changed)},
    )
    return row


def _require_rights_it_grants(session: Session, actor: Actor, row: Person, entity: PersonDraft) -> None:
    """A person's teams, and the e-mail that ties the entry to an account, give that account team
    roles. So a change to them is decided against the teams as they are now: joining a team takes
    one of its owners (or an admin); leaving one takes that too, unless you leave yourself; moving
    the e-mail takes an owner of every team the entry is in, or would be in under the new address."""
    own_entry = _person_resource(session, actor, row).owner_user_id is not None
    declared = {m.team_ref for m in queries.memberships_of_person(session, row) if m.person_id == row.id}
    wanted = set(entity.teams)
    touched = wanted - declared if own_entry else wanted ^ declared
    old_email, new_email = (row.email or "").lower(), (entity.email or "").lower()
    if new_email != old_email:
        if new_email:
            _refuse_taken_email(session, row, new_email)
        moved = Person(slug=row.slug, email=new_email or None)
        touched |= {m.team_ref for m in queries.memberships_of_person(session, row)}
        touched |= {m.team_ref for m in queries.memberships_of_person(session, moved)}
    for team in sorted(touched):
        decision = access.can(actor, "catalog.edit", Resource(type="team", key=team, team=team))
        if not decision:
            what = "the e-mail of" if new_email != old_email else "the teams of"
            raise Forbidden(
                f"changing {what} {row.slug!r} hands out team {team!r}'s rights: only its owners and "
                "admins may do that",
                code="access.forbidden",
                details={"action": "catalog.edit", "team": team},
            )


def _refuse_taken_email(session: Session, row: Person, email: str) -> None:
    other = queries.person_by_key(session, email)
    if other is not None and other.id != row.id:
        raise Conflict(
            f"the e-mail {email!r} belongs to {other.slug!r} already",
            code="catalog.duplicate_email",
            details=[{"field": "email", "message": f"used by {other.slug}"}],
        )


def _keep_what_the_api_cannot_say(row: store.Entity, entity: Any) -> None:
    """Backstage-only facts (API definitions, provided APIs, sub-teams, avatars) survive a portal edit."""
    if isinstance(row, Service) and isinstance(entity, ServiceDraft):
        entity.kind, entity.definition = row.kind, row.definition
        entity.dependencies += [
            (d.relation, d.target_kind, d.target_slug) for d in row.dependencies if d.relation != "depends_on"
        ]
    elif isinstance(row, Team) and isinstance(entity, TeamDraft):
        entity.type, entity.child_refs = row.type, list(row.child_refs or [])
    elif isinstance(row, Person) and isinstance(entity, PersonDraft):
        entity.avatar_url = row.avatar_url
    elif isinstance(row, System) and isinstance(entity, SystemDraft):
        entity.kind = row.kind


def _teammembers_of(session: Session, row: store.Entity) -> list[dict[str, str]]:
    return [
        {"person": m.person_ref, "role": m.role}
        for m in queries.memberships_of_team(session, row.slug)
        if m.team_id == row.id
    ]


def delete(session: Session, actor: Actor, row: store.Entity, *, if_match: str | None, now: datetime) -> None:
    readmodel.lock_catalog(session)
    lock_row(session, row)
    access.require(actor, "catalog.delete", _person_resource(session, actor, row))
    _check_etag(session, row, if_match)
    table, _key = store.identity_of(row)
    before, target = current_fields(row), _audit_target(row)
    store.remove(session, row)
    access.record(session, actor, f"{table}.delete", target=target, at=now, before=before)


OWNER_ROLES = frozenset({"owner", "lead", "manager", "tech-lead", "tech_lead"})
"""Catalog membership roles that make a person an owner of their team in the portal."""


def teams_of_email(session: Session, email: str) -> dict[str, str]:
    """Team slug -> "owner" or "member" for the catalog person with this e-mail (none: no teams)."""
    person = queries.person_by_key(session, email)
    if person is None:
        return {}
    teams: dict[str, str] = {}
    for membership in queries.memberships_of_person(session, person):
        role = "owner" if membership.role.lower() in OWNER_ROLES else "member"
        if teams.get(membership.team_ref) != "owner":
            teams[membership.team_ref] = role
    return teams


def find_row(session: Session, table: str, key: str, kind: str | None = None) -> store.Entity:
    """The row behind an API path: a service by slug (and kind), a person by id/e-mail/handle."""
    if table == "service":
        return get_service(session, key, kind)
    if table == "team":
        return get_team(session, key)
    if table == "person":
        return get_person(session, key)
    return get_system(session, key)


# ---------------------------------------------------------------- search and whois


def search_catalog(
    session: Session, query: str, *, limit: int = 20, entity_type: str | None = None
) -> list[schemas.SearchHit]:
    if entity_type and entity_type not in search.ENTITY_TYPES:
        raise Invalid(f"type must be one of {', '.join(search.ENTITY_TYPES)}", code="search.bad_type")
    return [
        schemas.SearchHit(
            type=h.entity_type,
            slug=h.slug,
            name=h.name,
            summary=h.summary,
            url=h.url,
            matched_by=h.matched_by,
        )
        for h in search.search(session, query, limit=limit, entity_type=entity_type)
    ]


# ---------------------------------------------------------------- dependency graph


def neighbourhood(
    session: Session, slug: str, kind: str | None = None, *, depth: int = 2
) -> graph.Neighbourhood:
    """What a service depends on and what depends on it, `depth` hops each way, a few queries a hop."""
    centre = get_service(session, slug, kind)
    me = (centre.kind, centre.slug)
    hood = graph.Neighbourhood(graph.Node(f"{centre.kind}:{centre.slug}", centre.title, None, centre.tier))
    edges_by_hop: list[list[tuple[queries.Key, str, queries.Key]]] = []
    frontier = {me}
    seen = {me}
    levels: dict[queries.Key, int] = {me: 0}
    for hop in range(1, depth + 1):
        edges = directed_edges(queries.edges_touching(session, frontier))
        edges_by_hop.append(edges)
        next_frontier = set()
        for caller, relation, callee in edges:
            if relation not in OUTGOING:
                continue
            for here, there, direction in ((caller, callee, 1), (callee, caller, -1)):
                if here in frontier and levels.get(here, 0) * direction >= 0 and there not in seen:
                    seen.add(there)
                    levels[there] = direction * hop
                    next_frontier.add(there)
        frontier = next_frontier
    found = queries.services_by_keys(session, set(levels))
    for key, level in sorted(levels.items(), key=lambda item: (item[1], item[0][1])):
        if level == 0:
            continue
        brief = found.get(key)
        node = graph.Node(
            f"{key[0]}:{key[1]}",
            brief.title if brief else key[1],
            search.service_url(*key) if brief else None,
            brief.tier if brief else None,
            brief is not None,
        )
        hood.add(level, node)
    for edges in edges_by_hop:
        for caller, relation, callee in edges:
            if (
                relation in OUTGOING
                and caller in levels
                and callee in levels
                and levels[caller] < levels[callee]
            ):
                hood.edges.append((f"{caller[0]}:{caller[1]}", f"{callee[0]}:{callee[1]}"))
    hood.edges = list(dict.fromkeys(hood.edges))
    return hood


def render_neighbourhood(session: Session, slug: str, kind: str | None = None) -> str:
    return cache.cached(
        session, ("graph", slug.lower(), kind), lambda: graph.render_svg(neighbourhood(session, slug, kind))
    )


# ---------------------------------------------------------------- page helpers


def catalog_stats(session: Session) -> dict[str, int]:
    return {table: queries.count(session, select(model)) for table, model in store.MODELS.items()}


def service_facets(session: Session) -> dict[str, list[str]]:
    """Values the service list can be filtered by, for its filter menus."""
    return queries.distinct_values(session)


def rebuild_read_model(session: Session) -> int:
    """Materialize every service's answer again; the number rebuilt."""
    readmodel.lock_catalog(session)
    count = readmodel.rebuild_all(session)
    cache.bump_generation(session)
    return count


def check_read_model(session: Session) -> list[str]:
    """Where the stored answers differ from the tables (empty: consistent)."""
    return readmodel.differences(session)


def read_model_missing(session: Session) -> int:
    return readmodel.missing_count(session)
