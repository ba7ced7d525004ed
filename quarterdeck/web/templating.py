"""One Jinja2 environment for every domain's templates (found through the domain registry), with
autoescaping on, and the nav and service-page tabs the domains declare."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

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


def local_path(target: str | None) -> str | None:
    """`target` when it is a path of this site, else None: never an open redirect to another host
    (`//host`, a backslash, and any space, tab or control character are refused: browsers drop tabs
    and line breaks from a URL, so `/<tab>/elsewhere` would leave the site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target if all(character > " " for character in target) else None


def safe_url(url: str | None) -> str:
    """Links from descriptors go into href: anything but web, mail and chat schemes becomes inert."""
    if url and url.strip().lower().startswith(SAFE_SCHEMES):
        return url.strip()
    return "#unsafe-link"


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def duration_text(span: timedelta | float | None) -> str:
    """A span as people say it: "45 s", "7 min", "2 h 5 min", "3 d 4 h"."""
    if span is None:
        return ""
    seconds = int(span.total_seconds() if isinstance(span, timedelta) else span)
    seconds = max(seconds, 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def relative_text(at: datetime, now: datetime) -> str:
    """Says "just now", "5 min ago", "in 2 h", or the date once it is more than a month away."""
    delta = _aware(now) - _aware(at)
    seconds = delta.total_seconds()
    if abs(seconds) < 45:
        return "just now"
    if abs(seconds) > 30 * 86_400:
        return f"{_aware(at):%Y-%m-%d}"
    text = duration_text(abs(delta)).split(" ", 2)
    short = " ".join(text[:2])
    return f"{short} ago" if seconds > 0 else f"in {short}"


def absolute_text(at: datetime) -> str:
    return f"{_aware(at).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


@pass_context
def relative_time(context: Context, at: datetime | None, empty: str = "—") -> Markup:
    """A <time> that reads "5 min ago" and shows the absolute UTC time on hover and to machines."""
    if at is None:
        return Markup('<span class="muted">{}</span>').format(empty)
    request = context.get("request")
    runtime = getattr(getattr(getattr(request, "app", None), "state", None), "runtime", None)
    now = runtime.clock.now() if runtime is not None else datetime.now(UTC)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        _aware(at).isoformat(), absolute_text(at), relative_text(at, now)
    )


def duration_between(start: datetime | None, end: datetime | None) -> Markup:
    """How long from start to end, as a <span> with the exact seconds on hover; empty if either is
    missing."""
    if start is None or end is None:
        return Markup("")
    span = _aware(end) - _aware(start)
    return Markup('<span class="duration" title="{} s">{}</span>').format(
        int(span.total_seconds()), duration_text(span)
    )


def request_context(request: Request) -> dict[str, Any]:
    """What every page's frame shows: who is signed in and the CSRF token its forms carry."""
    return {
        "actor": getattr(request.state, "actor", None),
        "csrf_token": getattr(request.state, "csrf_token", None),
    }


templates.context_processors.append(request_context)
templates.env.filters["safe_url"] = safe_url
templates.env.filters["ago"] = relative_time
templates.env.filters["duration"] = duration_text
templates.env.globals["duration_between"] = duration_between
templates.env.globals["tier_labels"] = TIER_LABELS
templates.env.globals["with_query"] = with_query
templates.env.globals["nav"] = [entry for domain in DOMAINS for entry in domain.nav]
templates.env.globals["service_tabs"] = [tab for domain in DOMAINS for tab in domain.tabs]


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"
