"""The search index: one row per entity, and ranked, prefix and typo-tolerant queries over it.

SQLite uses FTS5 kept in step by triggers; PostgreSQL a generated tsvector. Misspelt words are
corrected against the index's own vocabulary, the same way on both. Both branches sit behind
`search()` and are tested alike.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher

from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from quarterdeck.catalog import cache
from quarterdeck.catalog.descriptors.drafts import EntityDraft, PersonDraft, ServiceDraft, TeamDraft
from quarterdeck.catalog.models import SearchDocument
from quarterdeck.db import bulk_insert, dialect_name

ENTITY_TYPES = ("service", "team", "person", "system")
_WORD = re.compile(r"[\w]+", re.UNICODE)
FUZZY_THRESHOLD = 0.72


@dataclass(frozen=True)
class Hit:
    entity_type: str
    entity_id: int
    slug: str
    name: str
    summary: str
    url: str
    score: float
    matched_by: str  # "exact", "text" or "fuzzy"


def service_url(kind: str, slug: str) -> str:
    return f"/services/{slug}" if kind == "component" else f"/services/{slug}?kind={kind}"


def _document(entity: EntityDraft) -> tuple[str, str, str, str, str]:
    """(type, name, summary, body, url) of an entity's search row."""
    if isinstance(entity, ServiceDraft):
        body = " ".join(
            [entity.kind, entity.type, entity.lifecycle, entity.owner_ref or "", entity.system_ref or ""]
            + entity.tags
            + [f"{role} {person}" for role, person in entity.contacts]
        )
        return "service", entity.title, entity.description, body, service_url(entity.kind, entity.slug)
    if isinstance(entity, TeamDraft):
        body = " ".join(filter(None, [entity.email, entity.chat_channel, entity.parent_ref, entity.type]))
        return "team", entity.name, entity.description, body, f"/teams/{entity.slug}"
    if isinstance(entity, PersonDraft):
        body = " ".join(filter(None, [entity.email, entity.chat_handle, entity.title]))
        return "person", entity.name, entity.title or "", body, f"/people/{entity.slug}"
    body = " ".join(filter(None, [entity.kind, entity.owner_ref, entity.domain_ref]))
    return "system", entity.title, entity.description, body, f"/systems/{entity.slug}"


def replace_documents(
    session: Session, written: list[tuple[EntityDraft, int]], updated: dict[str, set[int]]
) -> None:
    """Insert the search rows of written entities, replacing those of updated ones."""
    for entity_type, ids in updated.items():
        ordered = sorted(ids)
        for start in range(0, len(ordered), 900):
            session.execute(
                delete(SearchDocument)
                .where(
                    SearchDocument.entity_type == entity_type,
                    SearchDocument.entity_id.in_(ordered[start : start + 900]),
                )
                .execution_options(synchronize_session=False)
            )
    rows = []
    for entity, entity_id in written:
        entity_type, name, summary, body, url = _document(entity)
        rows.append(
            {
                "entity_type": entity_type,
                "entity_id": entity_id,
                "slug": entity.slug,
                "name": name,
                "summary": summary[:2000],
                "body": body,
                "url": url,
            }
        )
    bulk_insert(session, SearchDocument.__table__, rows)  # type: ignore[arg-type]


def unindex_entity(session: Session, entity_type: str, entity_id: int) -> None:
    session.execute(
        delete(SearchDocument)
        .where(SearchDocument.entity_type == entity_type, SearchDocument.entity_id == entity_id)
        .execution_options(synchronize_session=False)
    )


def query_words(query: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(query)][:8]


def search(session: Session, query: str, *, limit: int = 20, entity_type: str | None = None) -> list[Hit]:
    """Ranked hits: exact name or slug first, then full-text (prefix) matches, then near spellings."""
    words = query_words(query)
    if not words:
        return []
    if dialect_name(session) == "postgresql":
        rows = _postgres_text(session, words, limit * 2, entity_type)
    else:
        rows = _sqlite_text(session, words, limit * 2, entity_type)
    hits = {(row.entity_type, row.entity_id): row for row in rows}
    if len(hits) < limit:
        for hit in _fuzzy(session, words, limit, entity_type):
            hits.setdefault((hit.entity_type, hit.entity_id), hit)
    phrase = " ".join(words)
    ranked = sorted(hits.values(), key=lambda hit: _rank(hit, phrase), reverse=True)
    return ranked[:limit]


def _rank(hit: Hit, phrase: str) -> tuple[int, float]:
    exact = phrase in (hit.slug.lower(), hit.name.lower(), hit.slug.lower().replace("-", " "))
    starts = hit.slug.lower().startswith(phrase.replace(" ", "-")) or hit.name.lower().startswith(phrase)
    return (2 if exact else 1 if starts else 0, hit.score)


_COLUMNS = "d.entity_type, d.entity_id, d.slug, d.name, d.summary, d.url"


def _hit(row: object, score: float, matched_by: str) -> Hit:
    entity_type, entity_id, slug, name, summary, url = row[:6]  # type: ignore[index]
    return Hit(entity_type, entity_id, slug, name, (summary or "")[:240], url, score, matched_by)


def _sqlite_text(session: Session, words: list[str], limit: int, entity_type: str | None) -> list[Hit]:
    match = " ".join(f'"{word}"*' for word in words)
    sql = (
        f"SELECT {_COLUMNS}, bm25(search_fts, 10.0, 10.0, 3.0, 1.0) AS rank "
        "FROM search_fts JOIN search_documents d ON d.id = search_fts.rowid "
        "WHERE search_fts MATCH :match"
        + (" AND d.entity_type = :type" if entity_type else "")
        + " ORDER BY rank LIMIT :limit"
    )
    rows = session.execute(text(sql), {"match": match, "limit": limit, "type": entity_type})
    return [_hit(row, -float(row[6]), "text") for row in rows]


def _postgres_text(session: Session, words: list[str], limit: int, entity_type: str | None) -> list[Hit]:
    tsquery = " & ".join(f"{word}:*" for word in words)
    sql = (
        f"SELECT {_COLUMNS}, ts_rank(d.tsv, q) AS rank FROM search_documents d, "
        "to_tsquery('simple', :q) q WHERE d.tsv @@ q"
        + (" AND d.entity_type = :type" if entity_type else "")
        + " ORDER BY rank DESC LIMIT :limit"
    )
    rows = session.execute(text(sql), {"q": tsquery, "limit": limit, "type": entity_type})
    return [_hit(row, float(row[6]) * 10, "text") for row in rows]


def _similarity(phrase: str, hit_name: str, slug: str) -> float:
    candidates = [hit_name.lower(), slug.lower(), *slug.lower().replace("/", "-").split("-")]
    candidates += hit_name.lower().split()
    return max(SequenceMatcher(None, phrase, candidate).ratio() for candidate in candidates)


def _trigrams(phrase: str) -> list[str]:
    padded = f" {phrase} "
    return sorted({padded[i : i + 3] for i in range(len(padded) - 2)})


class TermIndex:
    """The catalog's name words, indexed by trigram, to find the words a misspelt one meant."""

    def __init__(self, terms: Iterable[str]) -> None:
        self.terms = sorted({term for term in terms if len(term) >= 3 and _WORD.fullmatch(term)})
        self.known = set(self.terms)
        self.postings: dict[str, list[int]] = {}
        for number, term in enumerate(self.terms):
            for gram in _trigrams(term):
                self.postings.setdefault(gram, []).append(number)

    def closest(self, word: str, *, limit: int = 3) -> list[str]:
        if word in self.known:
            return [word]
        shared: Counter[int] = Counter()
        for gram in _trigrams(word):
            shared.update(self.postings.get(gram, ()))
        candidates = [self.terms[number] for number, _count in shared.most_common(40)]
        scored = [(SequenceMatcher(None, word, term).ratio(), term) for term in candidates]
        return [term for score, term in sorted(scored, reverse=True) if score >= FUZZY_THRESHOLD][:limit]


def _vocabulary(session: Session) -> TermIndex:
    """The words of every name and slug, from the search index itself."""
    if dialect_name(session) == "postgresql":
        sql = (
            "SELECT word FROM ts_stat("
            "'SELECT to_tsvector(''simple'', name || '' '' || slug) FROM search_documents')"
        )
    else:
        sql = "SELECT term FROM search_vocab WHERE col IN ('name', 'slug')"
    return TermIndex(row[0] for row in session.execute(text(sql)))


def _fuzzy(session: Session, words: list[str], limit: int, entity_type: str | None) -> list[Hit]:
    """Replace each word by the index words spelt like it, then search for those exactly."""
    index = cache.cached(session, ("search-terms",), lambda: _vocabulary(session))
    groups = []
    for word in words:
        alternatives = index.closest(word) if len(word) >= 4 else []
        groups.append(alternatives or [word])
    if all(group == [word] for group, word in zip(groups, words, strict=True)):
        return []
    where = " AND d.entity_type = :type" if entity_type else ""
    if dialect_name(session) == "postgresql":
        query = " & ".join("(" + " | ".join(group) + ")" for group in groups)
        sql = (
            f"SELECT {_COLUMNS} FROM search_documents d, to_tsquery('simple', :match) q "
            f"WHERE d.tsv @@ q{where} ORDER BY ts_rank(d.tsv, q) DESC LIMIT :limit"
        )
    else:
        query = " AND ".join("(" + " OR ".join(f'"{term}"' for term in group) + ")" for group in groups)
        sql = (
            f"SELECT {_COLUMNS} FROM search_fts JOIN search_documents d ON d.id = search_fts.rowid "
            f"WHERE search_fts MATCH :match{where} "
            "ORDER BY bm25(search_fts, 10.0, 10.0, 3.0, 1.0) LIMIT :limit"
        )
    rows = session.execute(text(sql), {"match": query, "type": entity_type, "limit": limit})
    phrase = " ".join(words)
    # Closest spelling first; every score stays below the text hits' (which are > 0).
    return [_hit(row, _similarity(phrase, row[3], row[2]) - 2.0, "fuzzy") for row in rows]
