"""The admin page of the job queue: figures per kind, the jobs by state, retry and cancel buttons."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from quarterdeck import jobs
from quarterdeck.access.deps import SignedInDep
from quarterdeck.operations import service
from quarterdeck.web.deps import ClockDep, IdPath, SessionDep
from quarterdeck.web.templating import templates

router = APIRouter(include_in_schema=False)
STATES = [state.value for state in jobs.JobState]


@router.get("/admin/jobs", response_class=HTMLResponse, name="admin_jobs")
def jobs_page(
    request: Request,
    session: SessionDep,
    actor: SignedInDep,
    clock: ClockDep,
    state: jobs.JobState | None = None,
    kind: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    overview = service.jobs_overview(session, actor, state=state, kind=kind or None, now=clock.now())
    context = {
        "overview": overview,
        "state": state.value if state else None,
        "kind": kind,
        "states": STATES,
        "moves": jobs.operator_moves,
    }
    return templates.TemplateResponse(request, "operations/jobs.html", context)


@router.get("/admin/jobs/{job_id}", response_class=HTMLResponse, name="admin_job")
def job_page(request: Request, job_id: IdPath, session: SessionDep, actor: SignedInDep) -> Response:
    detail = service.job_detail(session, actor, job_id)
    context = {"detail": detail, "moves": jobs.operator_moves}
    return templates.TemplateResponse(request, "operations/job.html", context)


@router.post("/admin/jobs/{job_id}/{move}")
def move_job(
    job_id: IdPath, move: Literal["retry", "cancel"], session: SessionDep, actor: SignedInDep, clock: ClockDep
) -> Response:
    with session.begin():
        if move == "retry":
            service.retry_job(session, actor, job_id, now=clock.now())
        else:
            service.cancel_job(session, actor, job_id, now=clock.now())
    return RedirectResponse(f"/admin/jobs/{job_id}", status_code=303)
