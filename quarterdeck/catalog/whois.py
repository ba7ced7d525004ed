"""Whois: who to contact about a service, team, person or system, answered from the catalog."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from quarterdeck.catalog import queries, readmodel, schemas, search
from quarterdeck.catalog.models import Person, Service, System, Team
from quarterdeck.catalog.reading import (
    members_of,
    person_view,
    service_view,
    system_view,
    team_brief,
    team_view,
)
from quarterdeck.catalog.suggest import closest_names, did_you_mean
from quarterdeck.errors import Invalid, NotFound

__all__ = ["whois"]


def whois(session: Session, name: str) -> schemas.Whois:
    """Who to contact about a service, team or person: an exact name first, else the best search hit."""
    key = name.strip().lower()
    if not key:
        raise Invalid("name the service, team or person to look up", code="whois.empty")
    service = queries.service_by_slug(session, key, None)
    if service is not None:
        return _whois_service(session, name, service)
    team = session.scalar(select(Team).where(Team.slug == key))
    if team is not None:
        return _whois_team(session, name, team)
    person = queries.person_by_key(session, key)
    if person is not None:
        return _whois_person(session, name, person)
    system = session.scalar(select(System).where(System.slug == key))
    if system is not None:
        return _whois_system(session, name, system)
    hits = search.search(session, name, limit=5)
    if hits:
        best = hits[0]
        if best.entity_type == "service":
            return _whois_service(session, name, session.get_one(Service, best.entity_id))
        if best.entity_type == "team":
            return _whois_team(session, name, session.get_one(Team, best.entity_id))
        if best.entity_type == "person":
            return _whois_person(session, name, session.get_one(Person, best.entity_id))
        if best.entity_type == "system":
            return _whois_system(session, name, session.get_one(System, best.entity_id))
    # Search found nothing alike word by word: whole names spelt alike may still be what was meant.
    suggestions = closest_names(session, name)
    raise NotFound(
        f"nothing in the catalog is called {name!r}{did_you_mean(suggestions)}",
        code="whois.not_found",
        details={"suggestions": suggestions},
    )


def _whois_service(session: Session, query: str, service: Service) -> schemas.Whois:
    view = service_view(session, service.slug, service.kind)
    owner = view.owner_detail.team if view.owner_detail else None
    members = members_of(session, queries.memberships_of_team(session, owner.slug)) if owner else []
    channels = [c for c in [owner.chat_channel if owner else None] if c]
    emails = [e for e in [owner.email if owner else None] if e]
    lead = next((c for c in view.contacts if c.role in {"tech-lead", "tech lead", "techlead"}), None)
    who = lead.person.name if lead and lead.person else (owner.name if owner else view.owner or "nobody")
    answer = f"{view.title} is owned by {owner.name if owner else view.owner or 'no team'}"
    answer += f"; ask {who}" + (f" in {channels[0]}" if channels else "")
    return schemas.Whois(
        query=query,
        type="service",
        slug=view.slug,
        name=view.title,
        url=view.url,
        answer=answer,
        owner=owner,
        contacts=view.contacts,
        team_members=members,
        channels=channels,
        emails=emails,
    )


def _whois_team(session: Session, query: str, team: Team) -> schemas.Whois:
    view = team_view(session, team.slug)
    leads = [m for m in view.members if m.role == "lead" and m.person]
    answer = f"{view.name}: " + (
        f"lead {leads[0].person.name}" if leads and leads[0].person else "no lead named"
    )
    answer += f", channel {view.chat_channel}" if view.chat_channel else ""
    return schemas.Whois(
        query=query,
        type="team",
        slug=view.slug,
        name=view.name,
        url=view.url,
        answer=answer,
        owner=team_brief(team),
        team_members=view.members,
        channels=[c for c in [view.chat_channel] if c],
        emails=[e for e in [view.email] if e],
        services=view.services,
    )


def _whois_system(session: Session, query: str, system: System) -> schemas.Whois:
    view = system_view(session, system.slug)
    owner = view.owner.team if view.owner else None
    members = members_of(session, queries.memberships_of_team(session, owner.slug)) if owner else []
    channels = [c for c in [owner.chat_channel if owner else None] if c]
    who = owner.name if owner else (view.owner.ref if view.owner else "no owner")
    answer = f"{view.title} ({view.kind}) is owned by {who}" + (f"; ask in {channels[0]}" if channels else "")
    return schemas.Whois(
        query=query,
        type="system",
        slug=view.slug,
        name=view.title,
        url=view.url,
        answer=answer,
        owner=owner,
        team_members=members,
        channels=channels,
        emails=[e for e in [owner.email if owner else None] if e],
        services=view.services,
    )


def _whois_person(session: Session, query: str, person: Person) -> schemas.Whois:
    view = person_view(session, person.slug)
    answer = f"{view.name}" + (f" ({view.title})" if view.title else "")
    answer += f", {view.email}" if view.email else ""
    answer += f", {view.chat_handle}" if view.chat_handle else ""
    owned = select(Service).where(Service.owner_ref.in_([team.slug for team in view.teams]))
    return schemas.Whois(
        query=query,
        type="person",
        slug=view.slug,
        name=view.name,
        url=view.url,
        answer=answer,
        teams=view.teams,
        emails=[e for e in [view.email] if e],
        channels=[c for c in [view.chat_handle] if c],
        services=readmodel.summaries(session, owned, Service.owner_ref, Service.tier, Service.slug),
    )
