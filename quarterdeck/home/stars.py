"""Stars: a person marks services, teams, people and systems to see them on their home.

The rules: only a person stars (a service token has nobody's home); only what the catalog has can be
starred, each under the catalog's own key for it; starring twice or unstarring what is not starred
changes nothing; a person has at most STAR_LIMIT stars. Callers own the transaction.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, cast
from urllib.parse import quote

from sqlalchemy.orm import Session

from quarterdeck.access.schemas import Actor
from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.schemas import Ref
from quarterdeck.db import hold_lock
from quarterdeck.errors import Conflict, Forbidden, NotFound
from quarterdeck.home import queries
from quarterdeck.home.models import Star
from quarterdeck.home.schemas import ENTITY_KINDS, EntityKind, StarButton, StarList, StarOut

STAR_LIMIT = 500
"""The most stars one person may have: the home lists them, and a list has to end somewhere."""


def _person(actor: Actor) -> int:
    if actor.user_id is None:
        raise Forbidden(
            "stars belong to a person: sign in (a service token or the server has no home to star for)",
            code="home.no_person",
        )
    return actor.user_id


def _entity(session: Session, kind: EntityKind, slug: str) -> Ref:
    """The entity `slug` names in the catalog (NotFound, with the nearest names, when none does)."""
    found = catalog.entity_refs(session, kind, [slug]).get(slug.strip().lower())
    if found is None:
        near = catalog.closest_names(session, slug.split(":", 1)[-1], entity_type=kind)
        raise NotFound(
            f"{kind} {slug!r} is not in the catalog{catalog.did_you_mean(near)}",
            code="home.unknown_entity",
            details={"kind": kind, "slug": slug, "suggestions": near},
        )
    return found


def _out(star: Star, ref: Ref | None) -> StarOut:
    return StarOut(
        kind=cast(EntityKind, star.entity_kind),
        slug=star.entity_slug,
        name=ref.name if ref else None,
        url=ref.url if ref else None,
        exists=ref is not None,
        starred_at=star.created_at,
    )


def star(
    session: Session, actor: Actor, kind: EntityKind, slug: str, *, at: datetime
) -> tuple[StarOut, bool]:
    """Star an entity; the star, and whether this call added it (False: it was starred already).

    A person's star writes take turns (an advisory lock on PostgreSQL, SQLite's one writer), so two
    racing requests cannot pass the cap together; the insert is guarded by the unique key anyway."""
    user_id = _person(actor)
    ref = _entity(session, kind, slug)
    hold_lock(session, f"home.stars:{user_id}")
    existing = queries.star_of(session, user_id, kind, ref.ref)
    if existing is not None:
        return _out(existing, ref), False
    if queries.count_of(session, user_id) >= STAR_LIMIT:
        raise Conflict(
            f"you have starred {STAR_LIMIT} entities, the most one person may: unstar some before "
            f"starring {kind} {ref.ref!r}",
            code="home.too_many_stars",
            details={"limit": STAR_LIMIT},
        )
    added = queries.insert_star(session, user_id, kind, ref.ref, at=at)
    row = queries.star_of(session, user_id, kind, ref.ref)
    assert row is not None, "the star was just added, or another request added it first"
    return _out(row, ref), added


def unstar(session: Session, actor: Actor, kind: EntityKind, slug: str) -> None:
    """Remove a star. Idempotent: unstarring what is not starred changes nothing. A star of something
    the catalog no longer has is removed by its key; a name that is neither starred nor in the
    catalog is NotFound, with the nearest names."""
    user_id = _person(actor)
    if queries.delete_star(session, user_id, kind, slug.strip().lower()):
        return
    queries.delete_star(session, user_id, kind, _entity(session, kind, slug).ref)


def starred_one(session: Session, actor: Actor, kind: EntityKind, slug: str) -> StarOut:
    """The actor's star of one entity; NotFound when they have none."""
    user_id = _person(actor)
    key = slug.strip().lower()
    row = queries.star_of(session, user_id, kind, key)
    if row is None:
        ref = _entity(session, kind, slug)
        row = queries.star_of(session, user_id, kind, ref.ref)
        if row is None:
            raise NotFound(f"you have not starred {kind} {ref.ref!r}", code="home.not_starred")
        return _out(row, ref)
    return _out(row, catalog.entity_refs(session, kind, [key]).get(key))


def starred(
    session: Session, actor: Actor, *, kind: EntityKind | None = None, limit: int = STAR_LIMIT
) -> StarList:
    """The actor's stars, the newest first (at most `limit`), with each entity's name and page as the
    catalog has them now: a query per kind of entity."""
    user_id = _person(actor)
    rows = queries.stars_of(session, user_id, kind=kind, limit=limit)
    by_kind: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_kind[row.entity_kind].append(row.entity_slug)
    refs = {
        (entity_kind, key): ref
        for entity_kind, slugs in by_kind.items()
        for key, ref in catalog.entity_refs(session, entity_kind, slugs).items()
    }
    total = queries.count_of(session, user_id) if kind is None else len(rows)
    items = [_out(row, refs.get((row.entity_kind, row.entity_slug))) for row in rows]
    return StarList(items=items, total=total, limit=STAR_LIMIT)


def action_of(kind: str, slug: str) -> str:
    """Where an entity's star button posts."""
    return f"/stars/{kind}/{quote(slug, safe='/:@')}"


def button(
    session: Session, actor: Actor, kind: EntityKind, slug: str, *, name: str, next_: str
) -> StarButton | None:
    """The star button of an entity for this viewer; None for one who cannot star (nobody signed in,
    a service token)."""
    if actor.user_id is None:
        return None
    starred_now = queries.star_of(session, actor.user_id, kind, slug) is not None
    return StarButton(
        kind=kind, slug=slug, name=name, starred=starred_now, action=action_of(kind, slug), next=next_
    )


def set_star(
    session: Session,
    actor: Actor,
    kind: EntityKind,
    slug: str,
    *,
    on: bool,
    at: datetime,
    next_: str | None,
) -> StarButton:
    """A star button pressed: star (`on`) or unstar, as the button said, so a double submit does not
    undo itself; the button as it is now."""
    if on:
        out, _added = star(session, actor, kind, slug, at=at)
        name, key, url = out.name or out.slug, out.slug, out.url
    else:
        unstar(session, actor, kind, slug)
        ref = catalog.entity_refs(session, kind, [slug]).get(slug.strip().lower())
        name, key, url = (ref.name or ref.ref, ref.ref, ref.url) if ref else (slug, slug.lower(), None)
    return StarButton(
        kind=kind, slug=key, name=name, starred=on, action=action_of(kind, key), next=next_ or url or "/"
    )


def star_context(session: Session, actor: Actor, *, entity_type: str, key: str, name: str) -> dict[str, Any]:
    """The catalog's entity pages' share of the home (Domain.entity_page_context): their star button."""
    if entity_type not in ENTITY_KINDS:
        return {}
    return {"star": button(session, actor, entity_type, key, name=name, next_=_page_of(entity_type, key))}


def _page_of(kind: EntityKind, key: str) -> str:
    if kind == "service":
        entity_kind, colon, slug = key.partition(":")
        return f"/services/{slug}?kind={entity_kind}" if colon else f"/services/{key}"
    return {"team": "/teams/", "person": "/people/", "system": "/systems/"}[kind] + key
