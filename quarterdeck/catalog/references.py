"""References that name nothing in the catalog: an owner, system, dependency, contact, parent team,
member or domain that no entity has.

Descriptors keep relations as names (models.py), so a misspelt owner imports and whois then answers
"ask chekout". `dangling` lists such references for a batch of entities, rows or drafts, in a few
queries per kind of target whatever the batch's size: imports run it on what they write (sync.py),
portal edits on the entity edited (service.py), entity pages on their entity, the admins' list on
the whole catalog (`catalog_dangling`). A stored service answer lists the same problems from what
its build resolved anyway (readmodel.py, with `problem`). The nearest names (suggest.py) depend on
the whole catalog, so they are looked up only where someone reads them (`with_suggestions`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor
from quarterdeck.catalog import cache, queries, schemas, search
from quarterdeck.catalog.descriptors.drafts import (
    Draft,
    EntityDraft,
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
    System,
    Team,
)
from quarterdeck.catalog.suggest import closest_names_each, did_you_mean
from quarterdeck.errors import Invalid

__all__ = [
    "Dangling",
    "Overlay",
    "catalog_dangling",
    "dangling",
    "dangling_page",
    "is_person_ref",
    "overlay",
    "problem",
    "problems_of",
    "refuse_dangling",
    "suggested",
    "with_suggestions",
]

Row = Service | Team | Person | System
ENTITY_ORDER = {"service": 0, "team": 1, "system": 2, "person": 3}
WORDS = {
    "owner": "owner",
    "system": "system",
    "domain": "domain",
    "parent": "parent team",
    "children": "child team",
    "members": "member",
    "teams": "team",
    "contacts": "contact",
    "depends_on": "dependency",
    "dependency_of": "dependent",
    "consumes_api": "consumed API",
    "provides_api": "provided API",
    "part_of": "parent component",
}
"""How a message names the thing each field refers to."""
TARGET_PAGES = {"team": "/teams/", "person": "/people/", "system": "/systems/", "service": "/services/"}
SCAN_BATCH = 5000
"""Entities whose references the whole-catalog scan resolves at once."""
SUGGESTED_NAMES = 100
"""At most this many missing names get suggestions in one go (an import, a page of the list)."""


def is_person_ref(ref: str) -> bool:
    """An owner reference names a person (`user:handle` or an e-mail), else a team."""
    return ref.startswith("user:") or "@" in ref


def _owner_target(ref: str) -> str:
    return "person" if is_person_ref(ref) else "team"


def _service_ref(kind: str, slug: str) -> str:
    """A service as a descriptor names it: its slug, with its kind unless it is a component."""
    return slug if kind == "component" else f"{kind}:{slug}"


def _message(field: str, ref: str) -> str:
    return f"{WORDS.get(field, field)} {ref!r} is not in the catalog"


def problem(field: str, ref: str, target: str) -> schemas.ReferenceProblem:
    return schemas.ReferenceProblem(field=field, ref=ref, target=target, message=_message(field, ref))


@dataclass(frozen=True)
class Dangling:
    """A reference that names nothing: who refers (`entity_type`, `entity`, a service's `kind`), by
    which field, the missing name as written (`ref`) and what it should name (`target`: team,
    person, system or service), where the referring entity was imported from, and the nearest
    existing names once looked up. `key` is the name looked up (`kind:slug` for a service)."""

    entity_type: str
    entity: str
    kind: str | None
    field: str
    target: str
    ref: str
    key: str
    source: str | None = None
    file: str | None = None
    line: int | None = None
    suggestions: tuple[str, ...] = ()

    @property
    def identity(self) -> tuple[str, str]:
        """The referring entity's identity, as Draft.identity and store.identity_of spell it."""
        if self.entity_type == "service":
            return ("service", f"{self.kind}:{self.entity}")
        return (self.entity_type, self.entity)

    @property
    def label(self) -> str:
        """`service checkout-api`, `api payments-rest`, `team payments`."""
        if self.entity_type == "service" and self.kind != "component":
            return f"{self.kind} {self.entity}"
        return f"{self.entity_type} {self.entity}"

    @property
    def message(self) -> str:
        return _message(self.field, self.ref) + did_you_mean(list(self.suggestions))

    @property
    def sentence(self) -> str:
        """The message with who refers: `service checkout-api: owner 'chekout' is not in ...`."""
        return f"{self.label}: {self.message}"

    @property
    def url(self) -> str:
        """The referring entity's page."""
        if self.entity_type == "service":
            return search.service_url(self.kind or "component", self.entity)
        return TARGET_PAGES[self.entity_type] + self.entity


# ---------------------------------------------------------------- what entities name


@dataclass(frozen=True)
class _Referrer:
    entity_type: str
    entity: str
    kind: str | None = None
    source: str | None = None
    file: str | None = None
    line: int | None = None

    def ref(self, field: str, target: str, ref: str, key: str | None = None) -> Dangling:
        return Dangling(
            self.entity_type,
            self.entity,
            self.kind,
            field,
            target,
            ref,
            key or ref,
            self.source,
            self.file,
            self.line,
        )


def _service_refs(
    who: _Referrer,
    owner: str | None,
    system: str | None,
    contacts: Iterable[str],
    dependencies: Iterable[tuple[str, str, str]],
) -> list[Dangling]:
    found = [who.ref("owner", _owner_target(owner), owner)] if owner else []
    found += [who.ref("system", "system", system)] if system else []
    found += [who.ref("contacts", "person", ref) for ref in dict.fromkeys(contacts)]
    found += [
        who.ref(relation, "service", _service_ref(kind, slug), f"{kind}:{slug}")
        for relation, kind, slug in dict.fromkeys(dependencies)
    ]
    return found


def _team_refs(
    who: _Referrer, parent: str | None, children: Iterable[str], members: Iterable[str]
) -> list[Dangling]:
    found = [who.ref("parent", "team", parent)] if parent else []
    found += [who.ref("children", "team", ref) for ref in dict.fromkeys(children)]
    return found + [who.ref("members", "person", ref) for ref in dict.fromkeys(members)]


def _system_refs(who: _Referrer, owner: str | None, domain: str | None) -> list[Dangling]:
    found = [who.ref("owner", _owner_target(owner), owner)] if owner else []
    return found + ([who.ref("domain", "system", domain)] if domain else [])


def _of_draft(entity: EntityDraft, file: str | None, line: int | None) -> list[Dangling]:
    if isinstance(entity, ServiceDraft):
        who = _Referrer("service", entity.slug, entity.kind, file=file, line=line)
        contacts = [ref for _role, ref in entity.contacts]
        return _service_refs(who, entity.owner_ref, entity.system_ref, contacts, entity.dependencies)
    if isinstance(entity, TeamDraft):
        who = _Referrer("team", entity.slug, file=file, line=line)
        return _team_refs(who, entity.parent_ref, entity.child_refs, [ref for ref, _role in entity.members])
    if isinstance(entity, PersonDraft):
        who = _Referrer("person", entity.slug, file=file, line=line)
        return [who.ref("teams", "team", ref) for ref in dict.fromkeys(entity.teams)]
    return _system_refs(
        _Referrer("system", entity.slug, file=file, line=line), entity.owner_ref, entity.domain_ref
    )


def _by_id(rows: Iterable[Any]) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row[1:])
    return grouped


def _of_rows(session: Session, table: str, ids: Sequence[int]) -> list[Dangling]:
    """The references the stored entities of `table` with these ids make, children included."""
    found: list[Dangling] = []
    if table == "service":
        contacts = _by_id(
            queries.columns_where(session, ServiceContact.service_id, ids, ServiceContact.person_ref)
        )
        edges = _by_id(
            queries.columns_where(
                session,
                ServiceDependency.service_id,
                ids,
                ServiceDependency.relation,
                ServiceDependency.target_kind,
                ServiceDependency.target_slug,
            )
        )
        columns: tuple[Any, ...] = (Service.kind, Service.slug, Service.owner_ref, Service.system_ref)
        for row in queries.columns_where(session, Service.id, ids, *columns, *_provenance(Service)):
            who = _Referrer("service", row.slug, row.kind, row.source, row.source_file, row.source_line)
            refs = [ref for (ref,) in contacts.get(row.id, [])]
            found += _service_refs(who, row.owner_ref, row.system_ref, refs, edges.get(row.id, []))
    elif table == "team":
        members = _by_id(queries.columns_where(session, Membership.team_id, ids, Membership.person_ref))
        columns = (Team.slug, Team.parent_ref, Team.child_refs)
        for row in queries.columns_where(session, Team.id, ids, *columns, *_provenance(Team)):
            who = _Referrer("team", row.slug, None, row.source, row.source_file, row.source_line)
            people = [ref for (ref,) in members.get(row.id, [])]
            found += _team_refs(who, row.parent_ref, row.child_refs or [], people)
    elif table == "person":
        teams = _by_id(queries.columns_where(session, Membership.person_id, ids, Membership.team_ref))
        for row in queries.columns_where(session, Person.id, ids, Person.slug, *_provenance(Person)):
            who = _Referrer("person", row.slug, None, row.source, row.source_file, row.source_line)
            found += [who.ref("teams", "team", ref) for (ref,) in teams.get(row.id, [])]
    else:
        columns = (System.slug, System.owner_ref, System.domain_ref)
        for row in queries.columns_where(session, System.id, ids, *columns, *_provenance(System)):
            who = _Referrer("system", row.slug, None, row.source, row.source_file, row.source_line)
            found += _system_refs(who, row.owner_ref, row.domain_ref)
    return found


def _provenance(model: type[Row]) -> tuple[Any, ...]:
    return (model.source, model.source_file, model.source_line)


# ---------------------------------------------------------------- resolving


@dataclass(frozen=True)
class Overlay:
    """The catalog as a write will leave it: the names it adds resolve, and a name the database
    finds only in a row the write rewrites or removes (`replaced`, by identity) does not."""

    added: dict[str, frozenset[str]]
    replaced: frozenset[tuple[str, str]]


def _names(entity: EntityDraft) -> tuple[str, set[str]]:
    """(target, every name a reference may give the entity)."""
    if isinstance(entity, ServiceDraft):
        return "service", {f"{entity.kind}:{entity.slug}"}
    if isinstance(entity, PersonDraft):
        return "person", {entity.slug, f"user:{entity.slug}"} | (
            {entity.email.lower()} if entity.email else set()
        )
    return ("team" if isinstance(entity, TeamDraft) else "system"), {entity.slug}


def overlay(entities: Iterable[EntityDraft], replaced: Iterable[tuple[str, str]] = ()) -> Overlay:
    """The catalog once `entities` are written and the rows `replaced` names rewritten or removed."""
    added: dict[str, set[str]] = {}
    for entity in entities:
        target, names = _names(entity)
        added.setdefault(target, set()).update(names)
    return Overlay({target: frozenset(names) for target, names in added.items()}, frozenset(replaced))


def _existing(
    session: Session, keys: dict[str, set[str]], replaced: frozenset[tuple[str, str]]
) -> set[tuple[str, str]]:
    """(target, key) of the asked names the database has, in rows not `replaced`: a query per CHUNK."""
    rows: list[tuple[str, str, str]] = []  # (target, key, identity key of the row found)
    teams = queries.teams_by_slugs(session, keys.get("team", set()))
    rows += [("team", slug, team.slug) for slug, team in teams.items()]
    people = queries.people_by_refs(session, keys.get("person", set()))
    rows += [("person", ref, person.slug) for ref, person in people.items()]
    systems = queries.systems_by_slugs(session, keys.get("system", set()))
    rows += [("system", slug, system.slug) for slug, system in systems.items()]
    split = (key.partition(":") for key in keys.get("service", set()))
    found = queries.service_ids_by_keys(session, {(kind, slug) for kind, _colon, slug in split})
    rows += [("service", f"{kind}:{slug}", f"{kind}:{slug}") for kind, slug in found]
    return {(target, key) for target, key, row in rows if (target, row) not in replaced}


def _unresolved(session: Session, refs: list[Dangling], after: Overlay | None) -> list[Dangling]:
    added = after.added if after else {}
    asked: dict[str, set[str]] = {}
    for ref in refs:
        if ref.key not in added.get(ref.target, ()):
            asked.setdefault(ref.target, set()).add(ref.key)
    existing = _existing(session, asked, after.replaced if after else frozenset())
    return [
        ref
        for ref in refs
        if ref.key not in added.get(ref.target, ()) and (ref.target, ref.key) not in existing
    ]


def _table(row: Row) -> str:
    return {Service: "service", Team: "team", Person: "person", System: "system"}[type(row)]


def _identity(row: Row) -> tuple[str, str]:
    """As store.identity_of spells it (store.py imports the read model, which imports this module)."""
    if isinstance(row, Service):
        return ("service", f"{row.kind}:{row.slug}")
    return (_table(row), row.slug)


def dangling(
    session: Session, entities: Iterable[Draft | EntityDraft | Row], *, after: Overlay | None = None
) -> list[Dangling]:
    """The references of `entities` (drafts, located or not, or stored rows) that name nothing in
    the catalog, or nothing in it once the write `after` describes is applied; a few queries per
    kind of target, whatever the number of entities."""
    refs: list[Dangling] = []
    ids: dict[str, list[int]] = {}
    for entity in entities:
        if isinstance(entity, Draft):
            refs += _of_draft(entity.entity, entity.origin.file, entity.origin.line)
        elif isinstance(entity, ServiceDraft | TeamDraft | PersonDraft | SystemDraft):
            refs += _of_draft(entity, None, None)
        else:
            ids.setdefault(_table(entity), []).append(entity.id)
    for table, table_ids in ids.items():
        refs += _of_rows(session, table, table_ids)
    return _unresolved(session, refs, after)


def _order(found: Dangling) -> tuple[Any, ...]:
    return (ENTITY_ORDER[found.entity_type], found.entity, found.kind or "", found.field, found.ref)


def catalog_dangling(session: Session) -> list[Dangling]:
    """Every dangling reference of the catalog, services first, by entity: the whole catalog read in
    batches of SCAN_BATCH entities, a few queries each."""
    found: list[Dangling] = []
    for table, model in (("service", Service), ("team", Team), ("system", System), ("person", Person)):
        ids = queries.all_ids(session, model)
        for start in range(0, len(ids), SCAN_BATCH):
            found += _unresolved(session, _of_rows(session, table, ids[start : start + SCAN_BATCH]), None)
    return sorted(found, key=_order)


def problems_of(found: Iterable[Dangling]) -> list[schemas.ReferenceProblem]:
    return [problem(d.field, d.ref, d.target) for d in found]


# ---------------------------------------------------------------- suggestions


def _suggestions(
    session: Session, wanted: Iterable[tuple[str, str]], limit: int = SUGGESTED_NAMES
) -> dict[tuple[str, str], tuple[str, ...]]:
    """The nearest existing names for each (target, missing name), the first `limit` of them; said
    the way the reference was (`user:` before a handle given so)."""
    by_target: dict[str, dict[str, str]] = {}  # target -> missing name -> what to look for
    for target, ref in list(dict.fromkeys(wanted))[:limit]:
        name = ref.removeprefix("user:") if target == "person" else ref.split(":", 1)[-1]
        by_target.setdefault(target, {})[ref] = name
    found: dict[tuple[str, str], tuple[str, ...]] = {}
    for target, names in by_target.items():
        near = closest_names_each(session, set(names.values()), entity_type=target)
        for ref, name in names.items():
            prefix = "user:" if target == "person" and ref.startswith("user:") else ""
            found[(target, ref)] = tuple(prefix + slug for slug in near[name] if prefix + slug != ref)
    return found


def with_suggestions(
    session: Session, found: Sequence[Dangling], *, limit: int = SUGGESTED_NAMES
) -> list[Dangling]:
    """`found` with the nearest existing names of (at most `limit` distinct) missing names."""
    near = _suggestions(session, [(d.target, d.ref) for d in found], limit)
    return [replace(d, suggestions=near.get((d.target, d.ref), ())) for d in found]


@dataclass(frozen=True)
class Suggested:
    """A problem as a page shows it: its message, and the nearest names with their pages."""

    problem: schemas.ReferenceProblem
    names: list[tuple[str, str]]


def suggested(session: Session, problems: Sequence[schemas.ReferenceProblem]) -> list[Suggested]:
    near = _suggestions(session, [(p.target, p.ref) for p in problems])
    return [
        Suggested(
            p,
            [
                (name, TARGET_PAGES[p.target] + name.removeprefix("user:"))
                for name in near.get((p.target, p.ref), ())
            ],
        )
        for p in problems
    ]


# ---------------------------------------------------------------- use cases


def refuse_dangling(session: Session, entity: EntityDraft, *, replacing: Row | None = None) -> None:
    """Strict references (QD_STRICT_REFERENCES): refuse a portal write of `entity` that names
    something the catalog does not have, each such field named with the nearest names. Names the
    row it replaces already gave are let be: the edit does not make them, and may not be able to
    mend them (a Backstage `providesApis` is not editable through the API)."""
    replaced = [_identity(replacing)] if replacing is not None else []
    found = dangling(session, [entity], after=overlay([entity], replaced))
    if replacing is not None and found:
        before = {(d.field, d.key) for d in dangling(session, [replacing])}
        found = [d for d in found if (d.field, d.key) not in before]
    if not found:
        return
    found = with_suggestions(session, found)
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    raise Invalid(
        found[0].message + more,
        code="catalog.dangling_reference",
        details=[
            {"field": d.field, "ref": d.ref, "message": d.message, "suggestions": list(d.suggestions)}
            for d in found
        ],
    )


def dangling_page(
    session: Session, actor: Actor, *, page: int = 1, per_page: int = 50
) -> schemas.Page[schemas.DanglingOut]:
    """A page of every dangling reference in the catalog, for admins. The whole list is built once
    per catalog generation (cache.py); suggestions only for the page shown."""
    access.require(actor, "admin")
    everything = cache.cached(session, ("dangling-references",), lambda: catalog_dangling(session))
    shown = with_suggestions(session, everything[(page - 1) * per_page : page * per_page])
    items = [
        schemas.DanglingOut(
            field=d.field,
            ref=d.ref,
            target=d.target,
            message=_message(d.field, d.ref),
            entity_type=d.entity_type,
            entity=d.entity,
            kind=d.kind,
            url=d.url,
            source=d.source,
            file=d.file,
            line=d.line,
            suggestions=list(d.suggestions),
        )
        for d in shown
    ]
    return schemas.Page[schemas.DanglingOut](items=items, total=len(everything), page=page, per_page=per_page)
