"""Stars API under /api/v1/me/stars: the signed-in person's starred services, teams, people and systems.

`PUT /api/v1/me/stars/{kind}/{slug}` stars (201 when it added the star, 200 when it was there), `DELETE`
unstars (204, starred or not), `GET` reads one star or the list.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse

from quarterdeck.access.deps import SignedInDep, reader
from quarterdeck.home import service
from quarterdeck.home.schemas import KEY_LENGTH, EntityKind, StarList, StarOut
from quarterdeck.web.deps import ClockDep, SessionDep

router = APIRouter(prefix="/api/v1/me/stars", tags=["home"], dependencies=[Depends(reader)])
Key = Annotated[str, Path(max_length=KEY_LENGTH)]
"""A service's slug (`api:slug`, `resource:slug` for those), a team's or system's, a person's handle or
e-mail."""


@router.get("", response_model=StarList)
def list_stars(
    session: SessionDep, actor: SignedInDep, kind: Annotated[EntityKind | None, Query()] = None
) -> StarList:
    """Your stars, the newest first, each with its entity's name and page as the catalog has them now
    (`exists` false once the catalog no longer has it)."""
    return service.starred(session, actor, kind=kind)


@router.get("/{kind}/{slug:path}", response_model=StarOut)
def get_star(kind: EntityKind, slug: Key, session: SessionDep, actor: SignedInDep) -> StarOut:
    """Your star of one entity; 404 when you have not starred it."""
    return service.starred_one(session, actor, kind, slug)


@router.put("/{kind}/{slug:path}", response_model=StarOut, responses={201: {"model": StarOut}})
def put_star(
    kind: EntityKind, slug: Key, session: SessionDep, actor: SignedInDep, clock: ClockDep
) -> JSONResponse:
    """Star an entity (a service by slug, or `api:slug` / `resource:slug`; a person by handle or
    e-mail). Idempotent. 404 with the nearest names for a name the catalog does not have; 409 past
    the most stars one person may have."""
    with session.begin():
        star, added = service.star(session, actor, kind, slug, at=clock.now())
    return JSONResponse(star.model_dump(mode="json"), status_code=201 if added else 200)


@router.delete("/{kind}/{slug:path}", status_code=204)
def delete_star(kind: EntityKind, slug: Key, session: SessionDep, actor: SignedInDep) -> Response:
    """Unstar an entity. Idempotent: 204 whether or not it was starred."""
    with session.begin():
        service.unstar(session, actor, kind, slug)
    return Response(status_code=204)
