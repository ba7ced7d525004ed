"""Deploy pages: a service's deploys tab (live versions, registry, graphs, history), a deploy's detail and
timeline, the environment matrix, the recent deploys feed, and change requests (approvals)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.deps import ReaderDep, SignedInDep, reader
from quarterdeck.catalog import service as catalog
from quarterdeck.deploys import rollouts, service
from quarterdeck.deploys.schemas import SLUG, EnvironmentIn
from quarterdeck.deploys.service import DeployFilters
from quarterdeck.observability import service as observability
from quarterdeck.web.deps import ClockDep, IdPath, SessionDep, SettingsDep, runtime_of
from quarterdeck.web.templating import is_htmx, templates

router = APIRouter(include_in_schema=False, dependencies=[Depends(reader)])
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Text = Annotated[str | None, Query(max_length=200)]
Status = Annotated[str | None, Query(pattern="^(running|succeeded|failed|rolled_back)?$")]
HISTORY_PAGE = 25
LINK_BEFORE, LINK_AFTER = timedelta(minutes=15), timedelta(minutes=30)


@router.get("/services/{slug:path}/deploys", response_class=HTMLResponse, name="service_deploys")
def service_deploys(
    request: Request,
    slug: str,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    actor: ReaderDep,
    environment: Text = None,
    status: Status = None,
    page: PageNo = 1,
) -> Response:
    view = catalog.service_view(session, slug)
    history = service.list_deploys(
        session,
        DeployFilters(service=view.slug, environment=environment or None, status=status or None),
        page=page,
        per_page=HISTORY_PAGE,
    )
    repos = {view.slug: repo} if (repo := service.repository_url(view)) else {}
    filters = {"environment": environment or "", "status": status or ""}
    if is_htmx(request):
        return templates.TemplateResponse(
            request,
            "deploys/_history.html",
            {"s": view, "history": history, "repos": repos, "filters": filters},
        )
    now = clock.now()
    context = {
        "s": view,
        "repos": repos,
        "graphs_on": runtime_of(request).prometheus is not None,
        "can_edit": observability.may_change_panels(session, actor, view.slug),
        "own_panels": [panel for panel, custom in observability.panels_of(session, view.slug) if custom],
        "live": service.live_of(session, view.slug, registry=runtime_of(request).registry),
        "history": history,
        "environments": service.environments(session),
        "filters": filters,
        "links": observability.links_for(
            settings.link_templates, service=view.slug, start=now - timedelta(hours=1), end=now
        ),
        "ranges": ["15m", "1h", "6h", "24h", "7d"],
    }
    return templates.TemplateResponse(request, "deploys/service_deploys.html", context)


@router.post("/services/{slug:path}/panels")
def add_panel(
    slug: str,
    session: SessionDep,
    actor: SignedInDep,
    clock: ClockDep,
    key: Annotated[str, Form(max_length=100)],
    title: Annotated[str, Form(max_length=200)],
    query: Annotated[str, Form(max_length=4000)],
    unit: Annotated[str, Form(max_length=50)] = "",
) -> Response:
    """A team adds a graph to its service from the deploys tab (the API does the same)."""
    fields = {"key": key, "title": title, "unit": unit, "query": query}
    with session.begin():
        observability.add_panel(session, actor, slug, fields, at=clock.now())
    return RedirectResponse(f"/services/{slug}/deploys#graphs", status_code=303)


@router.post("/services/{slug:path}/panels/{key}/delete")
def remove_panel(slug: str, key: str, session: SessionDep, actor: SignedInDep, clock: ClockDep) -> Response:
    with session.begin():
        observability.remove_panel(session, actor, slug, key, at=clock.now())
    return RedirectResponse(f"/services/{slug}/deploys#graphs", status_code=303)


@router.get("/deploys/{deploy_id}", response_class=HTMLResponse, name="deploy")
def deploy_page(
    request: Request, deploy_id: IdPath, session: SessionDep, settings: SettingsDep, clock: ClockDep
) -> Response:
    deploy = service.deploy_view(session, deploy_id)
    view = catalog.service_view(session, deploy.service)
    end = (deploy.finished_at or clock.now()) + LINK_AFTER
    context = {
        "d": deploy,
        "s": view,
        "repo": service.repository_url(view),
        "changes": service.changes_of(session, deploy_id),
        "links": observability.links_for(
            settings.link_templates,
            service=deploy.service,
            env=deploy.environment,
            start=deploy.started_at - LINK_BEFORE,
            end=end,
        ),
    }
    return templates.TemplateResponse(request, "deploys/deploy.html", context)


@router.get("/deploys", response_class=HTMLResponse, name="deploys_feed")
def feed(
    request: Request,
    session: SessionDep,
    service_: Annotated[str | None, Query(alias="service", max_length=200)] = None,
    environment: Text = None,
    status: Status = None,
    flagged: Annotated[bool, Query()] = False,
    page: PageNo = 1,
) -> Response:
    filters = DeployFilters(
        service=service_ or None, environment=environment or None, status=status or None, flagged=flagged
    )
    feed = service.list_deploys(session, filters, page=page, per_page=50)
    context = {
        "feed": feed,
        "repos": service.repository_urls(session, {d.service for d in feed.items}),
        "environments": service.environments(session),
        "filters": {
            "service": service_ or "",
            "environment": environment or "",
            "status": status or "",
            "flagged": flagged,
        },
    }
    return templates.TemplateResponse(request, "deploys/feed.html", context)


@router.get("/environments", response_class=HTMLResponse, name="matrix")
def matrix_page(
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    owner: Text = None,
    q: Text = None,
    page: PageNo = 1,
) -> Response:
    context = {
        "matrix": service.matrix(session, owner=owner or None, text=q or None, page=page, per_page=100),
        "filters": {"owner": owner or "", "q": q or ""},
        "freezes": _freeze_notices(session, clock.now()),
    }
    return templates.TemplateResponse(request, "deploys/matrix.html", context)


def _freeze_notices(session: Session, now: datetime) -> dict[str, dict[str, Any]]:
    """Per environment slug, its freeze window in force now or, if none is, the next one to start: the
    window (reason, id, weekly), whether it is in force, and that occurrence's start and end."""
    notices: dict[str, dict[str, Any]] = {}
    for window in rollouts.list_freezes(session, at=now):
        current = notices.get(window.environment)
        if current is not None and (current["active"] or not window.active):
            continue
        starts = window.next_start or window.starts_at
        notices[window.environment] = {
            "window": window,
            "active": window.active,
            "starts": starts,
            "ends": starts + (window.ends_at - window.starts_at),
        }
    return notices


@router.get("/admin/environments", response_class=HTMLResponse, name="admin_environments")
def environments_page(request: Request, session: SessionDep, actor: SignedInDep) -> Response:
    return templates.TemplateResponse(
        request, "deploys/environments.html", {"environments": service.environments_to_edit(session, actor)}
    )


@router.post("/admin/environments")
def put_environment(
    session: SessionDep,
    actor: SignedInDep,
    clock: ClockDep,
    slug: Annotated[str, Form(pattern=SLUG, max_length=100)],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    position: Annotated[int, Form(ge=0, le=10_000)] = 0,
    production: Annotated[bool, Form()] = False,
) -> Response:
    """Add an environment, or change one: the slug is what deploy reports name."""
    with session.begin():
        body = EnvironmentIn(name=name, position=position, production=production)
        service.put_environment(session, actor, slug, body, at=clock.now())
    return RedirectResponse("/admin/environments", status_code=303)


@router.get("/approvals", response_class=HTMLResponse, name="approvals")
def approvals_page(
    request: Request,
    session: SessionDep,
    actor: ReaderDep,
    status: Annotated[str | None, Query(pattern="^(pending|approved|rejected|not_required)?$")] = "pending",
) -> Response:
    rows, deciders = access.change_requests_for(
        session, actor, status=status or None, now=service.resources_now(session)
    )
    context = {"approvals": rows, "deciders": deciders, "status": status or ""}
    return templates.TemplateResponse(request, "deploys/approvals.html", context)


@router.post("/approvals/{approval_id}/{decision}")
def decide(
    approval_id: IdPath,
    decision: Annotated[str, Path(pattern="^(approve|reject)$")],
    session: SessionDep,
    actor: SignedInDep,
    clock: ClockDep,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    with session.begin():
        rollouts.decide_change(
            session, actor, approval_id, approve=decision == "approve", reason=reason or None, at=clock.now()
        )
    return RedirectResponse("/approvals", status_code=303)
