"""Rollout pages: a service's Deploy form (start a rollout; refusals said in words) with its active and
recent rollouts, a rollout's live page (steps, countdowns, analysis figures, approvals, logs, the
controls its viewer may use) and the page's server-sent event stream.

The page is rendered whole by the server, so one opened mid-deploy shows what one that watched from the
start shows. Live updates come from `GET /rollouts/{id}/stream`: each event row of the rollout after the
`Last-Event-ID` becomes one event, read from the database only (any replica serves any stream), and
static/rollout.js fetches the re-rendered live part (`?fragment=steps`) when one arrives.

`/services/{slug}/...` routes are mounted before the catalog's catch-all ones (domains.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Form, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse, ServerSentEvent

from quarterdeck.access import service as access
from quarterdeck.access.deps import ReaderDep, SignedInDep, reader
from quarterdeck.access.schemas import Actor, GlobalRole, Scope
from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.schemas import ServiceRef
from quarterdeck.db import retrying_on_race
from quarterdeck.deploys import rollouts, service
from quarterdeck.deploys.rollouts.schemas import Control, RolloutBriefOut, RolloutEvents, RolloutOut, StepOut
from quarterdeck.deploys.schemas import EnvironmentOut
from quarterdeck.deploys.service import DeployFilters
from quarterdeck.errors import QuarterdeckError
from quarterdeck.web.deps import ClockDep, IdPath, SessionDep, read_in_thread, runtime_of
from quarterdeck.web.errors import status_of
from quarterdeck.web.templating import is_htmx, templates

router = APIRouter(include_in_schema=False, dependencies=[Depends(reader)])

RECENT_ROLLOUTS = 10
KNOWN_VERSIONS = 100
"""Deploys read for the versions the Deploy form offers (each release has at least one)."""
LOG_TAIL = 100
"""Newest lines of a step's log the page shows (the step keeps up to 500)."""
STREAM_POLL_SECONDS = 0.5
STREAM_BATCH = 200
STREAM_LIFETIME_SECONDS = 30 * 60
"""A stream ends after this; the browser reconnects with Last-Event-ID and misses nothing."""
STREAM_PING_SECONDS = 15.0
STREAM_RETRY_MS = 2000
TONES = {"green": "ok", "red": "bad", "amber": "warn", "blue": "info", "grey": "idle"}
BUTTONS: dict[Control, str] = {
    "pause": "Pause",
    "resume": "Resume",
    "skip": "Skip the wait",
    "promote": "Promote now",
    "retry": "Retry the step",
    "abort": "Abort and roll back",
}
ControlPath = Annotated[Control, Path()]


# ---------------------------------------------------------------- what the pages show


def _briefs(session: Session, service_slug: str) -> list[tuple[RolloutBriefOut, str]]:
    """The service's rollouts for its Deploy panel, each with the tone of its state's badge."""
    return [
        (brief, TONES[brief.state.colour])
        for brief in rollouts.service_rollouts(session, service_slug, limit=RECENT_ROLLOUTS)
    ]


def why_not_deploy(actor: Actor, ref: ServiceRef) -> str | None:
    """None when `actor` may deploy the service (start_rollout's rule), else one sentence why not."""
    decision = access.can(actor, "deploy.start", ref.resource())
    if decision:
        return None
    if not actor.signed_in:
        return "Sign in to deploy it."
    if actor.role is GlobalRole.VIEWER:
        return "Viewers can read deploys but not start them."
    if actor.scopes is not None and Scope.DEPLOY not in actor.scopes:
        return "This token lacks the deploy scope."
    if ref.owner is None:
        return "It has no owning team: only admins can deploy it."
    return f"Only members of team {ref.owner} can deploy it."


@dataclass(frozen=True)
class VersionChoice:
    version: str
    note: str


@dataclass(frozen=True)
class DeployPanel:
    """The Deploy form of a service (or why its viewer may not use it) and its rollouts."""

    service: str
    title: str
    why_not: str | None
    versions: list[VersionChoice]
    environments: list[EnvironmentOut]
    rollouts: list[tuple[RolloutBriefOut, str]]
    version: str = ""
    environment: str = ""
    queue: bool = False
    error: str | None = None
    error_link: str | None = None


def _versions(session: Session, request: Request, ref: ServiceRef) -> list[VersionChoice]:
    """The registry's newest image tag first (when the registry answers), then the releases deployed
    before, newest first."""
    choices: list[VersionChoice] = []
    latest = service.live_of(session, ref.slug, registry=runtime_of(request).registry).registry.latest
    if latest is not None:
        choices.append(VersionChoice(latest.tag, "newest image in the registry"))
    history = service.list_deploys(session, DeployFilters(service=ref.slug), page=1, per_page=KNOWN_VERSIONS)
    seen = {choice.version for choice in choices}
    for deploy in history.items:
        if deploy.release.version not in seen:
            seen.add(deploy.release.version)
            choices.append(VersionChoice(deploy.release.version, f"deployed to {deploy.environment}"))
    return choices


def deploy_panel(session: Session, request: Request, actor: Actor, slug: str, **form: Any) -> DeployPanel:
    ref = catalog.service_ref(session, slug)
    why_not = why_not_deploy(actor, ref)
    versions = _versions(session, request, ref) if why_not is None else []
    environments = service.environments(session)
    form.setdefault("version", versions[0].version if versions else "")
    form.setdefault("environment", environments[0].slug if environments else "")
    return DeployPanel(
        service=ref.slug,
        title=ref.title,
        why_not=why_not,
        versions=versions,
        environments=environments,
        rollouts=_briefs(session, ref.slug),
        **form,
    )


@dataclass(frozen=True)
class StepRow:
    step: StepOut
    number: int
    current: bool
    tone: str
    weight: int | None
    active_share: float
    """Percent of the step's time spent working, the rest waiting (the timeline bar)."""
    log: list[str] = field(default_factory=list)
    log_hidden: int = 0
    may_decide: bool = False


@dataclass(frozen=True)
class LiveView:
    """A rollout as its page shows it to one viewer: every figure, and only the controls they may use."""

    r: RolloutOut
    title: str
    tone: str
    steps: list[StepRow]
    controls: list[tuple[Control, str]]
    why_no_controls: str | None
    active_share: float


def _share(active: float, waiting: float) -> float:
    total = active + waiting
    return round(100 * active / total, 1) if total > 0 else 0.0


def _weight(step: StepOut) -> int | None:
    deploy = step.spec.get("deploy")
    if step.kind != "deploy" or not isinstance(deploy, dict):
        return None
    weight = deploy.get("weight")
    return int(weight) if isinstance(weight, int) else None


def _deciders(session: Session, actor: Actor, r: RolloutOut) -> set[int]:
    waiting = [s.approval.request_id for s in r.steps if s.approval and s.approval.status == "pending"]
    if not waiting or not actor.signed_in:
        return set()
    _, deciders = access.change_requests_for(
        session, actor, status="pending", now=service.resources_now(session)
    )
    return deciders


def live_view(session: Session, actor: Actor, rollout_id: int, *, at: datetime) -> LiveView:
    r = rollouts.rollout_view(session, rollout_id, at=at)
    ref = catalog.service_ref(session, r.service)
    why_not = why_not_deploy(actor, ref)
    deciders = _deciders(session, actor, r) if why_not is None and "approve" in r.controls else set()
    logs = rollouts.step_logs(session, r.id)
    rows = []
    for step in r.steps:
        lines = logs.get(step.position, [])
        rows.append(
            StepRow(
                step=step,
                number=step.position + 1,
                current=step.position == r.current_step and not r.final,
                tone=TONES[step.state.colour],
                weight=_weight(step),
                active_share=_share(step.active_seconds, step.waiting_seconds),
                log=lines[-LOG_TAIL:],
                log_hidden=max(0, len(lines) - LOG_TAIL),
                may_decide=bool(step.approval and step.approval.request_id in deciders),
            )
        )
    controls = [(c, label) for c, label in BUTTONS.items() if c in r.controls] if why_not is None else []
    return LiveView(
        r=r,
        title=ref.title,
        tone=TONES[r.state.colour],
        steps=rows,
        controls=controls,
        why_no_controls=why_not if not r.final and any(c in BUTTONS for c in r.controls) else None,
        active_share=_share(r.active_seconds, r.waiting_seconds),
    )


# ---------------------------------------------------------------- the Deploy form


def _panel_response(request: Request, panel: DeployPanel, status: int = 200) -> Response:
    template = "deploys/_rollout_panel.html" if is_htmx(request) else "deploys/rollouts.html"
    return templates.TemplateResponse(request, template, {"p": panel}, status_code=status)


@router.get("/services/{slug:path}/rollouts", response_class=HTMLResponse, name="service_rollouts")
def rollouts_page(request: Request, slug: str, session: SessionDep, actor: ReaderDep) -> Response:
    """The Deploy form and the service's rollouts: a fragment for the deploys tab, or a page of its own."""
    return _panel_response(request, deploy_panel(session, request, actor, slug))


@router.post("/services/{slug:path}/rollouts", name="start_rollout_form")
def start_rollout(
    request: Request,
    slug: str,
    session: SessionDep,
    actor: SignedInDep,
    clock: ClockDep,
    version: Annotated[str, Form(max_length=200)],
    environment: Annotated[str, Form(max_length=100)],
    queue: Annotated[bool, Form()] = False,
) -> Response:
    """Start (or queue) a rollout and go to its page; a refusal is shown on the form, changing nothing."""
    version, now = version.strip(), clock.now()
    try:
        rollout_id = retrying_on_race(
            session,
            lambda: (
                rollouts.start_rollout(session, actor, slug, version, environment, queue=queue, at=now).id
            ),
        )
    except QuarterdeckError as exc:
        link = exc.details.get("url") if isinstance(exc.details, dict) else None
        form = {"version": version, "environment": environment, "queue": queue}
        panel = deploy_panel(session, request, actor, slug, **form, error=exc.message, error_link=link)
        return _panel_response(request, panel, status_of(exc))
    url = f"/rollouts/{rollout_id}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


# ---------------------------------------------------------------- a rollout's page and controls


@router.get("/rollouts/{rollout_id}", response_class=HTMLResponse, name="rollout")
def rollout_page(
    request: Request,
    rollout_id: IdPath,
    session: SessionDep,
    actor: ReaderDep,
    clock: ClockDep,
    fragment: Annotated[Literal["steps"] | None, Query()] = None,
) -> Response:
    """The whole page, or (`?fragment=steps`, or an htmx request) the live part the stream refreshes."""
    view = live_view(session, actor, rollout_id, at=clock.now())
    if fragment == "steps" or is_htmx(request):
        return templates.TemplateResponse(
            request, "deploys/_rollout_live.html", {"v": view}, headers={"Cache-Control": "no-store"}
        )
    return templates.TemplateResponse(request, "deploys/rollout.html", {"v": view})


@router.post("/rollouts/{rollout_id}/{action}", name="rollout_control")
def rollout_control(
    request: Request,
    rollout_id: IdPath,
    action: ControlPath,
    session: SessionDep,
    actor: SignedInDep,
    clock: ClockDep,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """One control; the live part again for htmx, else back to the page."""
    now = clock.now()
    with session.begin():
        rollouts.control(session, actor, rollout_id, action, reason=reason.strip() or None, at=now)
    if is_htmx(request):
        view = live_view(session, actor, rollout_id, at=now)
        return templates.TemplateResponse(request, "deploys/_rollout_live.html", {"v": view})
    return RedirectResponse(f"/rollouts/{rollout_id}", status_code=303)


# ---------------------------------------------------------------- the event stream


def _after(last_event_id: str | None, after: int | None) -> int:
    """Where a stream starts: the browser's Last-Event-ID on a reconnect, else `?after=`, else 0."""
    if last_event_id and last_event_id.strip().isdigit():
        return int(last_event_id.strip())
    return after or 0


def _sse(kind: str, data: dict[str, Any], event_id: int, *, first: bool) -> ServerSentEvent:
    return ServerSentEvent(
        data=json.dumps(data, default=str, separators=(",", ":")),
        event=kind,
        id=str(event_id),
        retry=STREAM_RETRY_MS if first else None,
    )


async def _stream(request: Request, rollout_id: int, after: int) -> AsyncIterator[ServerSentEvent]:
    """Every event after `after`, polled from the database; an `end` event once the rollout is final.
    sse-starlette cancels this when the client goes away."""
    deadline = time.monotonic() + STREAM_LIFETIME_SECONDS
    last, first = after, True

    def batch(session: Session) -> RolloutEvents:
        return rollouts.rollout_events(session, rollout_id, after=last, limit=STREAM_BATCH)

    while True:
        found = await read_in_thread(request, batch)
        for event in found.events:
            payload = {"type": event.type, "at": event.at, "state": found.state, "payload": event.payload}
            yield _sse("change", payload, event.id, first=first)
            first = False
        last = found.last_id
        if found.final and len(found.events) < STREAM_BATCH:
            yield _sse("end", {"state": found.state, "final": True}, last, first=first)
            return
        if time.monotonic() >= deadline:
            return
        await anyio.sleep(STREAM_POLL_SECONDS)


@router.get("/rollouts/{rollout_id}/stream", name="rollout_stream")
async def rollout_stream(
    request: Request,
    rollout_id: IdPath,
    after: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> Response:
    """Server-sent events: `change` for each rollout event after the Last-Event-ID header (or `?after=`),
    `end` when the rollout is final. Keep-alive comments every STREAM_PING_SECONDS."""
    start = _after(last_event_id, after)
    await read_in_thread(request, lambda s: rollouts.rollout_events(s, rollout_id, after=start, limit=1))
    return EventSourceResponse(
        _stream(request, rollout_id, start),
        ping=STREAM_PING_SECONDS,
        send_timeout=30,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


__all__ = ["deploy_panel", "live_view", "router", "why_not_deploy"]
