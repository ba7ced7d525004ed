"""Home pages: a person's home at /, and the star buttons' form posts (a full page or, with htmx, the
button again)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from quarterdeck.access.deps import ReaderDep, SignedInDep, reader
from quarterdeck.home import service
from quarterdeck.home.schemas import KEY_LENGTH, EntityKind
from quarterdeck.web.deps import ClockDep, SessionDep
from quarterdeck.web.templating import is_htmx, local_path, templates

router = APIRouter(include_in_schema=False, dependencies=[Depends(reader)])
Key = Annotated[str, Path(max_length=KEY_LENGTH)]


@router.get("/", response_class=HTMLResponse, name="home")
def home(request: Request, session: SessionDep, actor: ReaderDep) -> Response:
    return templates.TemplateResponse(request, "home/home.html", {"home": service.home_of(session, actor)})


@router.post("/stars/{kind}/{slug:path}", name="star")
def press_star(
    request: Request,
    kind: EntityKind,
    slug: Key,
    session: SessionDep,
    actor: SignedInDep,
    clock: ClockDep,
    starred: Annotated[bool, Form()],
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """A star button: `starred` is what the button asks for (true: star), so pressing twice is harmless."""
    with session.begin():
        button = service.set_star(
            session, actor, kind, slug, on=starred, at=clock.now(), next_=local_path(next)
        )
    if is_htmx(request):
        return templates.TemplateResponse(request, "home/_star.html", {"star": button})
    return RedirectResponse(button.next, status_code=303)
