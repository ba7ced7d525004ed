"""Links into logs and dashboards (Grafana, Kibana, Loki, ...) from URL templates in the settings.

A template names `{service}`, `{env}`, `{from}`/`{to}` (ISO 8601), `{from_ms}`/`{to_ms}` (Unix ms);
values are URL-encoded, so a service name cannot change the link's shape.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote

from quarterdeck.errors import Invalid
from quarterdeck.observability.schemas import LinkOut

FIELDS = frozenset({"service", "env", "from", "to", "from_ms", "to_ms"})


def check_templates(templates: Mapping[str, str]) -> None:
    for title, template in templates.items():
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        except ValueError as exc:
            raise Invalid(
                f"link template {title!r} is malformed: {exc}", code="observability.bad_link"
            ) from exc
        unknown = names - FIELDS
        if unknown:
            names_text, known = ", ".join(sorted(unknown)), ", ".join(sorted(FIELDS))
            raise Invalid(
                f"link template {title!r} names {names_text}; known: {known}", code="observability.bad_link"
            )
        if not template.startswith(("http://", "https://")):
            raise Invalid(f"link template {title!r} must be an http(s) URL", code="observability.bad_link")


def links_for(
    templates: Mapping[str, str], *, service: str, start: datetime, end: datetime, env: str = ""
) -> list[LinkOut]:
    """One link per template with the service and the time range filled in."""
    values = {
        "service": service,
        "env": env,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "from_ms": str(int(start.timestamp() * 1000)),
        "to_ms": str(int(end.timestamp() * 1000)),
    }
    encoded = {key: quote(value, safe="") for key, value in values.items()}
    return [LinkOut(title=title, url=template.format(**encoded)) for title, template in templates.items()]
