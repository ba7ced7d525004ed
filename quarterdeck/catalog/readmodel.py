"""The catalog's read model: each service's API answer, materialized by the write that changes it.

A service's answer shows more than its own row: its owner team's or person's name and addresses,
its system's title, its contacts, and both ends of its dependency edges. So a write re-materializes,
in its own transaction, every service whose answer it changes (`refresh`): the services it wrote,
the services at either end of their edges before and after, and the services that show a team,
person or system it wrote. Every answer depends only on the rows of its direct neighbours, so one
level is the whole closure. A GET by name is then one indexed read of stored bytes, on any replica,
with nothing to invalidate.

Catalog writes take the `CATALOG_WRITES` lock first: on PostgreSQL two transactions could otherwise
each build a view from the other's rows as they were before it committed; on SQLite the writer lock
already serializes them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from quarterdeck.catalog import annotation_links, queries, schemas, search
from quarterdeck.catalog.models import (
    Person,
    Service,
    ServiceContact,
    ServiceDependency,
    ServiceTag,
    ServiceView,
    System,
    Team,
)
from quarterdeck.catalog.references import is_person_ref, problem
from quarterdeck.config import AnnotationLinkRule
from quarterdeck.db import RUNTIME_KEY, bulk_insert, hold_lock

CATALOG_WRITES = "catalog.writes"
OUTGOING = ("depends_on", "consumes_api", "provides_api", "part_of")
RANK = {"component": 0, "api": 1, "resource": 2}
BATCH = 500
SUMMARY_FIELDS = set(schemas.ServiceSummary.model_fields)


def lock_catalog(session: Session) -> None:
    """Serialize catalog writes; call before reading anything the write decides on."""
    hold_lock(session, CATALOG_WRITES)


@dataclass
class Changes:
    """What a write touched, collected before and after it, for `refresh`."""

    services: set[int] = field(default_factory=set)
    service_keys: set[queries.Key] = field(default_factory=set)
    teams: set[str] = field(default_factory=set)
    person_refs: set[str] = field(default_factory=set)
    systems: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.services or self.service_keys or self.teams or self.person_refs or self.systems)


def person_refs(slug: str, *emails: str | None) -> set[str]:
    """Every way a descriptor may name this person: handle, `user:handle`, e-mail."""
    return {slug, f"user:{slug}"} | {email.lower() for email in emails if email}


def declared_targets(session: Session, service_ids: Iterable[int]) -> set[queries.Key]:
    """The other ends of the edges these services declare, as stored now (before a write replaces them)."""
    found: set[queries.Key] = set()
    ordered = sorted(service_ids)
    for start in range(0, len(ordered), queries.CHUNK):
        rows = session.execute(
            select(ServiceDependency.target_kind, ServiceDependency.target_slug).where(
                ServiceDependency.service_id.in_(ordered[start : start + queries.CHUNK])
            )
        )
        found.update((kind, slug) for kind, slug in rows)
    return found


def _chunked(session: Session, wanted: Any, column: Any, values: Iterable[Any]) -> set[Any]:
    """`wanted` of the rows whose `column` is one of `values`, a statement per CHUNK values (the
    databases cap a statement's parameters: PostgreSQL's driver at 65,535)."""
    ordered = sorted(set(values))
    found: set[Any] = set()
    for start in range(0, len(ordered), queries.CHUNK):
        chunk = ordered[start : start + queries.CHUNK]
        found |= set(session.scalars(select(wanted).where(column.in_(chunk))))
    return found


def affected(session: Session, changes: Changes) -> set[int]:
    """Ids of every service whose answer shows something `changes` touched, as the tables are now."""
    written = set(changes.service_keys)
    ordered = sorted(changes.services)
    for start in range(0, len(ordered), queries.CHUNK):
        rows = session.execute(
            select(Service.kind, Service.slug).where(Service.id.in_(ordered[start : start + queries.CHUNK]))
        )
        written |= {(kind, slug) for kind, slug in rows}
    keys = set(written)
    for source, _relation, target in queries.edges_touching(session, written):
        keys |= {source, target}
    ids = set(changes.services) | set(queries.service_ids_by_keys(session, keys).values())
    ids |= _chunked(session, Service.id, Service.owner_ref, changes.teams | changes.person_refs)
    ids |= _chunked(session, Service.id, Service.system_ref, changes.systems)
    ids |= _chunked(session, ServiceContact.service_id, ServiceContact.person_ref, changes.person_refs)
    return ids


def refresh(session: Session, changes: Changes) -> None:
    """Re-materialize every service whose answer `changes` altered, in the caller's transaction."""
    if not changes:
        return
    session.flush()
    ordered = sorted(affected(session, changes))
    for start in range(0, len(ordered), BATCH):
        store(session, build(session, ordered[start : start + BATCH]))


def forget(session: Session, service_id: int) -> None:
    session.execute(
        delete(ServiceView)
        .where(ServiceView.service_id == service_id)
        .execution_options(synchronize_session=False)
    )


# ---------------------------------------------------------------- building


def person_brief(person: Person) -> schemas.PersonBrief:
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


def owner_of(ref: str | None, teams: dict[str, Team], people: dict[str, Person]) -> schemas.Owner | None:
    if not ref:
        return None
    if is_person_ref(ref):
        person = people.get(ref)
        return schemas.Owner(ref=ref, person=person_brief(person) if person else None)
    team = teams.get(ref)
    return schemas.Owner(ref=ref, team=team_brief(team) if team else None)


def system_ref(slug: str | None, systems: dict[str, System]) -> schemas.Ref | None:
    if not slug:
        return None
    system = systems.get(slug)
    return schemas.Ref(
        type="system",
        ref=slug,
        slug=slug,
        name=system.title if system else None,
        url=f"/systems/{slug}" if system else None,
        exists=system is not None,
    )


def source_of(row: Any) -> schemas.SourceInfo:
    return schemas.SourceInfo(
        source=row.source,
        file=row.source_file,
        line=row.source_line,
        detached_from=row.detached_from,
        descriptor=row.descriptor,
    )


def errors_of(row: Any) -> list[schemas.ImportError_]:
    return [schemas.ImportError_(**error) for error in row.import_errors or []]


def directed_edges(edges: list[queries.Edge]) -> list[tuple[queries.Key, str, queries.Key]]:
    """Edges as (caller, relation, callee): `dependencyOf` is a dependency written on the other side."""
    directed = []
    for source, relation, target in edges:
        if relation == "dependency_of":
            directed.append((target, "depends_on", source))
        else:
            directed.append((source, relation, target))
    return list(dict.fromkeys(directed))


def problems_of(
    owner: schemas.Owner | None,
    system: schemas.Ref | None,
    contacts: list[schemas.Contact],
    depends_on: list[schemas.Edge],
    dependents: list[schemas.Edge],
) -> list[schemas.ReferenceProblem]:
    """The references of a service's answer that resolved to nothing (references.py says the same of
    its rows). A dependent that does not exist can only come from the service's own `dependencyOf`."""
    found = []
    if owner is not None and owner.team is None and owner.person is None:
        found.append(problem("owner", owner.ref, "person" if is_person_ref(owner.ref) else "team"))
    if system is not None and not system.exists:
        found.append(problem("system", system.ref, "system"))
    found += [
        problem("contacts", ref, "person") for ref in dict.fromkeys(c.ref for c in contacts if not c.person)
    ]
    for edges, declared_as in ((depends_on, None), (dependents, "dependency_of")):
        for edge in edges:
            if not edge.exists:
                ref = edge.slug if edge.kind == "component" else f"{edge.kind}:{edge.slug}"
                found.append(problem(declared_as or edge.relation, ref, "service"))
    return found


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


@dataclass
class Built:
    """A service's answer as stored: the JSON body (its ETag inside), and its list summary."""

    service_id: int
    kind: str
    slug: str
    etag: str
    body: str
    summary: str


def _children(
    session: Session, column: Any, order: Any, ids: Sequence[int], *values: Any
) -> dict[int, list[Any]]:
    """Child rows of these services by service id, in `order`: a plain column read, no ORM objects."""
    found: dict[int, list[Any]] = {}
    for row in session.execute(select(column, *values).where(column.in_(ids)).order_by(order)):
        found.setdefault(row[0], []).append(row[1:])
    return found


def _answer(view: schemas.ServiceOut, service_id: int, version: int) -> Built:
    """Serialize once: the ETag is a digest of the body, written into the body's own `etag` field
    (the last `"etag":""` of the dump: only timestamps follow that field)."""
    body = view.model_dump_json()
    digest = hashlib.blake2b(body.encode(), digest_size=6).hexdigest()
    etag = f'"service-{service_id}-v{version}-{digest}"'
    head, placeholder, tail = body.rpartition('"etag":""')
    assert placeholder, "ServiceOut has an etag field"
    return Built(
        service_id=service_id,
        kind=view.kind,
        slug=view.slug,
        etag=etag,
        body=head + '"etag":' + json.dumps(etag) + tail,
        summary=view.model_dump_json(include=SUMMARY_FIELDS),
    )


def link_rules(session: Session) -> dict[str, AnnotationLinkRule]:
    """The annotation link rules of the runtime that made the session (the defaults for a bare one).
    They are part of the stored answers: a changed QD_ANNOTATION_LINKS shows once rebuilt."""
    runtime = session.info.get(RUNTIME_KEY)
    return annotation_links.rules_from(runtime.settings.annotation_links if runtime is not None else {})


def build(session: Session, service_ids: Sequence[int]) -> list[Built]:
    """The answers of these services (at most a few hundred), from the tables, in a handful of queries."""
    rules = link_rules(session)
    rows = list(session.execute(select(Service.__table__).where(Service.id.in_(service_ids))))
    tags = _children(session, ServiceTag.service_id, ServiceTag.tag, service_ids, ServiceTag.tag)
    contacts = _children(
        session,
        ServiceContact.service_id,
        ServiceContact.id,
        service_ids,
        ServiceContact.role,
        ServiceContact.person_ref,
    )
    owners = {row.owner_ref for row in rows if row.owner_ref}
    contact_refs = {ref for found in contacts.values() for _role, ref in found}
    people = queries.people_by_refs(session, {ref for ref in owners if is_person_ref(ref)} | contact_refs)
    teams = queries.teams_by_slugs(session, {ref for ref in owners if not is_person_ref(ref)})
    systems = queries.systems_by_slugs(session, {row.system_ref for row in rows if row.system_ref})
    keys = {(row.kind, row.slug) for row in rows}
    edges = directed_edges(queries.edges_touching(session, keys))
    outgoing: dict[queries.Key, list[tuple[str, queries.Key]]] = {}
    incoming: dict[queries.Key, list[tuple[str, queries.Key]]] = {}
    for caller, relation, callee in edges:
        if caller in keys and relation in OUTGOING:
            outgoing.setdefault(caller, []).append((relation, callee))
        if callee in keys and caller != callee:
            incoming.setdefault(callee, []).append((relation, caller))
    ends = {key for _c, _r, key in edges} | {key for key, _r, _c in edges}
    found = queries.services_by_keys(session, ends)
    built = []
    for row in rows:
        me = (row.kind, row.slug)
        callers = sorted(incoming.get(me, []), key=lambda edge: (edge[1][1], edge[1][0], edge[0]))
        owner = owner_of(row.owner_ref, teams, people)
        system = system_ref(row.system_ref, systems)
        people_named = [
            schemas.Contact(role=role, ref=ref, person=person_brief(people[ref]) if ref in people else None)
            for role, ref in contacts.get(row.id, [])
        ]
        depends_on = [_edge(rel, key, found.get(key)) for rel, key in outgoing.get(me, [])]
        dependents = [_edge(rel, key, found.get(key)) for rel, key in callers]
        view = schemas.ServiceOut(
            kind=row.kind,
            slug=row.slug,
            title=row.title,
            description=row.description,
            type=row.type,
            lifecycle=row.lifecycle,
            tier=row.tier,
            owner=row.owner_ref,
            system=row.system_ref,
            tags=[tag for (tag,) in tags.get(row.id, [])],
            url=search.service_url(row.kind, row.slug),
            owner_detail=owner,
            system_detail=system,
            contacts=people_named,
            links=row.links or [],
            depends_on=depends_on,
            dependents=dependents,
            image=row.image_repository,
            definition=row.definition,
            annotations=row.annotations or {},
            annotation_links=annotation_links.links_for(row.annotations or {}, rules),
            custom=row.custom_fields or {},
            source=source_of(row),
            import_errors=errors_of(row),
            problems=problems_of(owner, system, people_named, depends_on, dependents),
            version=row.version,
            etag="",
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        built.append(_answer(view, row.id, row.version))
    return built


def store(session: Session, built: list[Built]) -> None:
    """Replace the stored answers of the built services."""
    if not built:
        return
    session.execute(
        delete(ServiceView)
        .where(ServiceView.service_id.in_([b.service_id for b in built]))
        .execution_options(synchronize_session=False)
    )
    bulk_insert(
        session,
        ServiceView.__table__,  # type: ignore[arg-type]
        [
            {
                "service_id": b.service_id,
                "kind": b.kind,
                "slug": b.slug,
                "rank": RANK.get(b.kind, 9),
                "etag": b.etag,
                "body": b.body,
                "summary": b.summary,
            }
            for b in built
        ],
    )


# ---------------------------------------------------------------- reading


def stored_json(session: Session, slug: str, kind: str | None) -> tuple[str, bytes] | None:
    """(ETag, body) of a service by slug (a component before an API or a resource): one indexed read."""
    query = select(ServiceView.etag, ServiceView.body).where(ServiceView.slug == slug.lower())
    if kind:
        query = query.where(ServiceView.kind == kind)
    found = session.execute(query.order_by(ServiceView.rank).limit(1)).first()
    return (found[0], found[1].encode()) if found else None


def stored_view(session: Session, slug: str, kind: str | None) -> schemas.ServiceOut | None:
    found = stored_json(session, slug, kind)
    return schemas.ServiceOut.model_validate_json(found[1]) if found else None


def stored_etag(session: Session, service_id: int) -> str | None:
    return session.scalar(select(ServiceView.etag).where(ServiceView.service_id == service_id))


def summaries(
    session: Session, query: Any, *order_by: Any, offset: int = 0, limit: int | None = None
) -> list[schemas.ServiceSummary]:
    """The stored summaries of the services `query` (a select of Service) finds, in `order_by` order.

    The page's ids come first, from the services' indexes alone, then the summaries of just those:
    skipping `offset` rows never reads, nor joins, the summaries of the rows it skips."""
    ids = list(
        session.scalars(query.with_only_columns(Service.id).order_by(*order_by).offset(offset).limit(limit))
    )
    stored = _stored(session, ServiceView.summary, ids)
    return [schemas.ServiceSummary.model_validate_json(stored[i]) for i in ids if i in stored]


def views(session: Session, query: Any, *order_by: Any, limit: int) -> list[schemas.ServiceOut]:
    """The stored answers of the first `limit` services `query` (a select of Service) finds, in
    `order_by` order: ids from the services' indexes, then the answers of just those."""
    ids = list(session.scalars(query.with_only_columns(Service.id).order_by(*order_by).limit(limit)))
    stored = _stored(session, ServiceView.body, ids)
    return [schemas.ServiceOut.model_validate_json(stored[i]) for i in ids if i in stored]


def _stored(session: Session, column: Any, ids: Sequence[int]) -> dict[int, str]:
    """`column` (the summary or the body) of these services' stored answers, by service id."""
    stored: dict[int, str] = {}
    for start in range(0, len(ids), queries.CHUNK):
        rows = session.execute(
            select(ServiceView.service_id, column).where(
                ServiceView.service_id.in_(ids[start : start + queries.CHUNK])
            )
        )
        stored.update({service_id: text for service_id, text in rows})
    return stored


# ---------------------------------------------------------------- rebuilding and checking


def rebuild_all(session: Session) -> int:
    """Materialize every service again (after a migration, or to mend a store edited by hand)."""
    ids = list(session.scalars(select(Service.id).order_by(Service.id)))
    session.execute(delete(ServiceView).execution_options(synchronize_session=False))
    for start in range(0, len(ids), BATCH):
        store(session, build(session, ids[start : start + BATCH]))
    return len(ids)


def differences(session: Session, *, limit: int = 20) -> list[str]:
    """Where the stored answers differ from answers built now from the tables: empty when consistent."""
    problems: list[str] = []
    ids = list(session.scalars(select(Service.id).order_by(Service.id)))
    stored_ids = set(session.scalars(select(ServiceView.service_id)))
    problems += [f"service id {i} has no stored answer" for i in sorted(set(ids) - stored_ids)]
    problems += [f"stored answer {i} has no service" for i in sorted(stored_ids - set(ids))]
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        rows = session.execute(
            select(ServiceView.service_id, ServiceView.body).where(ServiceView.service_id.in_(chunk))
        )
        stored = {service_id: body for service_id, body in rows}
        for b in build(session, chunk):
            body = stored.get(b.service_id)
            if body is not None and json.loads(body) != json.loads(b.body):
                problems.append(f"{b.kind} {b.slug}: stored answer differs from the tables")
    return problems[:limit]


def missing_count(session: Session) -> int:
    """Services without a stored answer: non-zero only after a migration added the read model."""
    services = session.scalar(select(func.count()).select_from(Service)) or 0
    views = session.scalar(select(func.count()).select_from(ServiceView)) or 0
    return services - views
