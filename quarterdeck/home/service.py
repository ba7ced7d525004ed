"""Home use cases: a person's home, assembled from the catalog's, deploys' and access's service functions
(never their tables), and their stars (stars.py). The only place the home's rules live; callers own
the transaction.
"""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor
from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.schemas import Ref, ServiceOut, ServiceSummary
from quarterdeck.deploys import service as deploys
from quarterdeck.deploys.schemas import DeployOut, EnvironmentOut
from quarterdeck.home.schemas import (
    EnvironmentState,
    Health,
    Home,
    MyService,
    ServiceProblem,
    StarButton,
    StarOut,
    StarredItem,
)
from quarterdeck.home.stars import (
    STAR_LIMIT,
    action_of,
    button,
    set_star,
    star,
    star_context,
    starred,
    starred_one,
    unstar,
)

__all__ = [
    "STAR_LIMIT",
    "action_of",
    "button",
    "home_of",
    "set_star",
    "star",
    "star_context",
    "starred",
    "starred_one",
    "unstar",
]

SERVICES_SHOWN = 50
"""Services listed on a home, the most critical first; a team owning more gets a link to them all."""
RECENT_DEPLOYS = 10
STARS_SHOWN = 50
GONE_WRONG = frozenset({"failed", "rolled_back"})
"""Deploy statuses (DeployOut.status, a str enum) that make a service's health failing."""
SUMMARY_FIELDS = set(ServiceSummary.model_fields)


def home_of(session: Session, actor: Actor) -> Home:
    """What `actor` sees at /: for a person, their services (owned by their teams, or by them) with
    what runs where and how it is doing, the change requests waiting for them to decide, the recent
    deploys and the ingestion problems of those services, and their stars; the catalog's overview
    when they are in no team. Anyone else (an anonymous reader, a service token) gets the overview."""
    if actor.user_id is None:
        return _overview(session, signed_in=actor.signed_in)
    teams = sorted(actor.teams)
    page = catalog.services_owned_by(session, [*teams, *_owner_refs_of(session, actor)], limit=SERVICES_SHOWN)
    components = [view.slug for view in page.items if view.kind == "component"]
    environments = deploys.environments(session)
    live = deploys.live_by_environment(session, components)
    latest = deploys.latest_by_environment(session, components)
    stars = starred(session, actor, limit=STARS_SHOWN)
    team_refs = catalog.entity_refs(session, "team", teams)
    return Home(
        signed_in=True,
        personal=True,
        name=actor.name,
        teams=[team_refs.get(team) or Ref(type="team", ref=team, slug=team) for team in teams],
        environments=environments,
        services=[_mine(view, environments, live, latest) for view in page.items],
        services_total=page.total,
        services_shown=len(page.items),
        more_services=_all_services_links(teams, team_refs) if page.total > len(page.items) else [],
        waiting=access.waiting_for(session, actor, now=deploys.resources_now(session)),
        recent=deploys.recent_deploys_of(session, components, limit=RECENT_DEPLOYS),
        problems=[problem for view in page.items for problem in _problems(view)],
        stars=[StarredItem(star=item, button=_unstar_button(item)) for item in stars.items],
        stars_total=stars.total,
        stats=catalog.catalog_stats(session) if not teams else {},
    )


def _overview(session: Session, *, signed_in: bool) -> Home:
    return Home(
        signed_in=signed_in,
        personal=False,
        name=None,
        teams=[],
        environments=[],
        services=[],
        services_total=0,
        services_shown=0,
        more_services=[],
        waiting=[],
        recent=[],
        problems=[],
        stars=[],
        stars_total=0,
        stats=catalog.catalog_stats(session),
    )


def _unstar_button(item: StarOut) -> StarButton:
    """A starred entity's button on the home: pressed, and back to the home once pressed."""
    return StarButton(
        kind=item.kind,
        slug=item.slug,
        name=item.name or item.slug,
        starred=True,
        action=action_of(item.kind, item.slug),
        next="/",
    )


def _owner_refs_of(session: Session, actor: Actor) -> list[str]:
    """How descriptors name a signed-in user as a service's owner: their e-mail, or `user:<handle>`
    of the catalog person with that e-mail. A token's actor carries no e-mail: none."""
    if actor.kind != "user":
        return []
    email = actor.name.lower()
    person = catalog.entity_refs(session, "person", [email]).get(email)
    return [email] + ([f"user:{person.ref}"] if person else [])


def _all_services_links(teams: list[str], refs: dict[str, Ref]) -> list[Ref]:
    return [
        Ref(
            type="team",
            ref=team,
            slug=team,
            name=refs[team].name if team in refs else team,
            url=f"/services?owner={quote(team)}",
            exists=team in refs,
        )
        for team in teams
    ]


def _mine(
    view: ServiceOut,
    environments: list[EnvironmentOut],
    live: dict[tuple[str, str], DeployOut],
    latest: dict[tuple[str, str], DeployOut],
) -> MyService:
    """A service with, per environment, what runs there, and the newest deploy there when it did not
    (or did not yet) succeed: a failed, rolled back or running deploy is news; a succeeded one is what
    runs (or ran before it)."""
    states = []
    if view.kind == "component":
        for env in environments:
            key = (view.slug, env.slug)
            newest = latest.get(key)
            news = newest if newest is not None and newest.status != "succeeded" else None
            states.append(EnvironmentState(environment=env.slug, live=live.get(key), latest=news))
    problems = len(view.import_errors) + len(view.problems)
    return MyService(
        service=ServiceSummary.model_validate(view.model_dump(include=SUMMARY_FIELDS)),
        environments=states,
        health=_health(states, problems),
        problem_count=problems,
    )


def _health(states: list[EnvironmentState], problems: int) -> Health:
    newest = [state.latest.status for state in states if state.latest is not None]
    if any(status in GONE_WRONG for status in newest):
        return Health.FAILING
    if problems:
        return Health.PROBLEMS
    if "running" in newest:
        return Health.DEPLOYING
    return Health.HEALTHY


def _problems(view: ServiceOut) -> list[ServiceProblem]:
    found = [
        ServiceProblem(
            service=view.slug,
            title=view.title,
            url=view.url,
            kind="import",
            message=error.message,
            file=error.file,
            line=error.line,
        )
        for error in view.import_errors
    ]
    return found + [
        ServiceProblem(service=view.slug, title=view.title, url=view.url, kind="reference", message=p.message)
        for p in view.problems
    ]
