"""One Jinja2 environment for every domain's templates (found through the domain registry), with
autoescaping on, and the nav and service-page tabs the domains declare."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader

from quarterdeck.domains import DOMAINS

PACKAGE = Path(__file__).resolve().parent.parent
TEMPLATE_DIRS = [
    PACKAGE / "web" / "templates",
    *(PACKAGE / domain.templates for domain in DOMAINS if domain.templates),
]

templates = Jinja2Templates(directory=str(TEMPLATE_DIRS[0]))
templates.env.loader = ChoiceLoader([FileSystemLoader(str(d)) for d in TEMPLATE_DIRS])
templates.env.autoescape = True

TIER_LABELS = {1: "Tier 1 · critical", 2: "Tier 2 · important", 3: "Tier 3 · standard", 4: "Tier 4 · low"}


def with_query(request: Request, **changes: Any) -> str:
    """The current URL's query string with some parameters changed (None removes one)."""
    params = {k: v for k, v in request.query_params.items() if v}
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else "?"


SAFE_SCHEMES = ("http://", "https://", "mailto:", "slack:", "msteams:")


def safe_url(url: str | None) -> str:
    """Links from descriptors go into href: anything but web, mail and chat schemes becomes inert."""
    if url and url.strip().lower().startswith(SAFE_SCHEMES):
        return url.strip()
    return "#unsafe-link"


def request_context(request: Request) -> dict[str, Any]:
    """What every page's frame shows: who is signed in and the CSRF token its forms carry."""
    return {
        "actor": getattr(request.state, "actor", None),
        "csrf_token": getattr(request.state, "csrf_token", None),
    }


templates.context_processors.append(request_context)
templates.env.filters["safe_url"] = safe_url
templates.env.globals["tier_labels"] = TIER_LABELS
templates.env.globals["with_query"] = with_query
templates.env.globals["nav"] = [entry for domain in DOMAINS for entry in domain.nav]
templates.env.globals["service_tabs"] = [tab for domain in DOMAINS for tab in domain.tabs]


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"
