"""The existing names nearest to one the catalog does not know: the "did you mean" of errors."""

from __future__ import annotations

from collections.abc import Iterable
from difflib import SequenceMatcher, get_close_matches

from sqlalchemy import select
from sqlalchemy.orm import Session

from quarterdeck.catalog import search
from quarterdeck.catalog.models import SearchDocument

__all__ = ["closest_names", "closest_names_each", "did_you_mean"]

WHOLE_NAME_CUTOFF = 0.6
"""How alike (difflib's ratio) a whole slug or name must be to `name` to be suggested."""
HIT_CUTOFF = 0.4
"""How alike a search hit's slug must be to `name`, unless it contains it: a hit found by words of its
description or owner is no spelling of what was typed."""


def closest_names(
    session: Session, name: str, *, entity_type: str | None = None, limit: int = 3
) -> list[str]:
    """The slugs of at most `limit` entities (of `entity_type`, or any) named most like `name`, the
    most alike first.

    The candidates are search's own matches (prefixes, words spelt like the index's words) and whole
    slugs and names spelt alike, which catch what matching word by word misses (`chekout-apo` for
    `checkout-api`: `apo` is too short to be corrected, so search finds nothing)."""
    return closest_names_each(session, [name], entity_type=entity_type, limit=limit)[name]


def closest_names_each(
    session: Session, names: Iterable[str], *, entity_type: str | None = None, limit: int = 3
) -> dict[str, list[str]]:
    """`closest_names` of each of `names`, the whole slugs and names read once for all of them."""
    statement = select(SearchDocument.slug, SearchDocument.name)
    if entity_type is not None:
        statement = statement.where(SearchDocument.entity_type == entity_type)
    slug_of: dict[str, str] = {}
    for slug, title in session.execute(statement):
        slug_of.setdefault(slug.lower(), slug)
        slug_of.setdefault(title.lower(), slug)
    return {name: _closest(session, name, slug_of, entity_type, limit) for name in names}


def _closest(
    session: Session, name: str, slug_of: dict[str, str], entity_type: str | None, limit: int
) -> list[str]:
    key = name.strip().lower()
    found = [
        hit.slug
        for hit in search.search(session, name, limit=limit, entity_type=entity_type)
        if key in hit.slug.lower() or _alike(key, hit.slug) >= HIT_CUTOFF
    ]
    alike = get_close_matches(key, slug_of, n=limit, cutoff=WHOLE_NAME_CUTOFF)
    found += [slug_of[match] for match in alike]
    candidates = {slug for slug in found if slug.lower() != key}
    return sorted(candidates, key=lambda slug: (-_alike(key, slug), slug))[:limit]


def _alike(key: str, slug: str) -> float:
    return SequenceMatcher(None, key, slug.lower()).ratio()


def did_you_mean(names: list[str]) -> str:
    """`; did you mean 'a', 'b' or 'c'?` to end a message with, or nothing when there are no names."""
    if not names:
        return ""
    quoted = [repr(name) for name in names]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f"; did you mean {listed}?"
