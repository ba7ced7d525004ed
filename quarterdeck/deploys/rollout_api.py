"""Rollouts JSON API: start a rollout of a service (or queue it), read it with its steps and figures, its
events after an id (for clients and the live page), a step's log, the controls, emergency requests and
the freeze windows of environments.

`/services/{slug}/...` routes are mounted before the catalog's catch-all ones (domains.py).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse

from quarterdeck.access.deps import ActorDep, reader
from quarterdeck.access.schemas import ChangeRequestOut
from quarterdeck.db import retrying_on_race
from quarterdeck.deploys import rollouts
from quarterdeck.deploys.rollouts.schemas import (
    Control,
    ControlIn,
    EmergencyIn,
    FreezeIn,
    FreezeOut,
    RolloutEvents,
    RolloutIn,
    RolloutOut,
    StepLogOut,
)
from quarterdeck.deploys.schemas import SLUG
from quarterdeck.web.deps import ClockDep, IdPath, SessionDep

router = APIRouter(prefix="/api/v1", tags=["rollouts"], dependencies=[Depends(reader)])
EnvSlug = Annotated[str, Path(pattern=SLUG, max_length=100)]


@router.post("/services/{slug:path}/rollouts", response_model=RolloutOut, status_code=201)
def start_rollout(
    slug: str, body: RolloutIn, session: SessionDep, actor: ActorDep, clock: ClockDep
) -> JSONResponse:
    """Deploy a version through the pipeline the service gets in that environment: 201 with the rollout
    (`queued` behind the active one when `queue` is true). 409 names the rollout running there."""
    now = clock.now()

    def start() -> RolloutOut:
        started = rollouts.start_rollout(
            session,
            actor,
            slug,
            body.version,
            body.environment,
            queue=body.queue,
            emergency=body.emergency,
            at=now,
        )
        return rollouts.rollout_out(session, started, at=now)

    out = retrying_on_race(session, start)
    return JSONResponse(
        out.model_dump(mode="json"), status_code=201, headers={"Location": f"/api/v1/rollouts/{out.id}"}
    )


@router.post("/services/{slug:path}/emergency-requests", response_model=ChangeRequestOut, status_code=201)
def ask_emergency(
    slug: str, body: EmergencyIn, session: SessionDep, actor: ActorDep, clock: ClockDep
) -> ChangeRequestOut:
    """Ask to deploy into a frozen environment; a second person approves it at /approvals."""
    with session.begin():
        return rollouts.ask_emergency(
            session, actor, slug, body.environment, body.version, body.reason, at=clock.now()
        )


@router.get("/rollouts/{rollout_id}", response_model=RolloutOut)
def get_rollout(rollout_id: IdPath, session: SessionDep, clock: ClockDep) -> RolloutOut:
    """State, steps with timings and countdowns, analysis figures, approvals, the pipeline version."""
    return rollouts.rollout_view(session, rollout_id, at=clock.now())


@router.get("/rollouts/{rollout_id}/events", response_model=RolloutEvents)
def rollout_events(
    rollout_id: IdPath,
    session: SessionDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 500,
) -> RolloutEvents:
    """Every change after event id `after`, oldest first: ask again with `last_id` until `final`."""
    return rollouts.rollout_events(session, rollout_id, after=after, limit=limit)


@router.get("/rollouts/{rollout_id}/steps/{position}/log", response_model=StepLogOut)
def step_log(
    rollout_id: IdPath, position: Annotated[int, Path(ge=0, le=1000)], session: SessionDep
) -> StepLogOut:
    return rollouts.step_log(session, rollout_id, position)


@router.post("/rollouts/{rollout_id}/{action}", response_model=RolloutOut)
def control(
    rollout_id: IdPath,
    action: Control,
    session: SessionDep,
    actor: ActorDep,
    clock: ClockDep,
    body: ControlIn | None = None,
) -> RolloutOut:
    """pause, resume, skip (a skippable wait), promote (to 100 % now), retry (a failed step), abort (and
    roll back), approve or reject (the waiting approval). 409 says why a control does not apply now."""
    now = clock.now()
    with session.begin():
        moved = rollouts.control(
            session, actor, rollout_id, action, reason=body.reason if body else None, at=now
        )
        return rollouts.rollout_out(session, moved, at=now)


@router.get("/freezes", response_model=list[FreezeOut])
def list_freezes(session: SessionDep, clock: ClockDep) -> list[FreezeOut]:
    """Freeze windows active now or to come, in every environment, by next start."""
    return rollouts.list_freezes(session, at=clock.now())


@router.get("/environments/{slug}/freezes", response_model=list[FreezeOut])
def environment_freezes(slug: EnvSlug, session: SessionDep, clock: ClockDep) -> list[FreezeOut]:
    return rollouts.list_freezes(session, environment=slug, at=clock.now())


@router.post("/environments/{slug}/freezes", response_model=FreezeOut, status_code=201)
def add_freeze(
    slug: EnvSlug, body: FreezeIn, session: SessionDep, actor: ActorDep, clock: ClockDep
) -> FreezeOut:
    """Refuse deploys into the environment from starts_at to ends_at (every week when `weekly`); admins."""
    with session.begin():
        return rollouts.add_freeze(session, actor, slug, body, at=clock.now())


@router.delete("/freezes/{freeze_id}", status_code=204)
def remove_freeze(freeze_id: IdPath, session: SessionDep, actor: ActorDep, clock: ClockDep) -> Response:
    with session.begin():
        rollouts.remove_freeze(session, actor, freeze_id, at=clock.now())
    return Response(status_code=204)
