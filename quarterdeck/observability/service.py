"""Observability use cases: a service's graphs from Prometheus, the extra panels teams add, and links
into logs and dashboards. Callers own the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor
from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.schemas import ServiceRef
from quarterdeck.errors import Conflict, Invalid, NotFound, QuarterdeckError, Unavailable
from quarterdeck.integrations.prometheus import Series
from quarterdeck.observability import promql
from quarterdeck.observability.links import check_templates, links_for
from quarterdeck.observability.models import MetricPanel
from quarterdeck.observability.schemas import GraphsOut, PanelIn, PanelOut, SeriesOut

__all__ = [
    "add_panel",
    "check_templates",
    "graphs",
    "links_for",
    "may_change_panels",
    "panels_of",
    "remove_panel",
]

NAMESPACE_ANNOTATIONS = ("backstage.io/kubernetes-namespace", "quarterdeck.io/namespace")


class MetricsSource(Protocol):
    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step_seconds: float
    ) -> list[Series]: ...


def panels_of(session: Session, slug: str) -> list[tuple[promql.Panel, bool]]:
    """The default panels, then the service's own (flagged True)."""
    own = session.scalars(
        select(MetricPanel).where(MetricPanel.service_slug == slug).order_by(MetricPanel.key)
    )
    return [(panel, False) for panel in promql.DEFAULT_PANELS] + [
        (promql.Panel(key=p.key, title=p.title, unit=p.unit, query=p.query), True) for p in own
    ]


def _labels(session: Session, slug: str, env: str) -> dict[str, str]:
    view = catalog.service_view(session, slug)
    namespace = next((view.annotations[a] for a in NAMESPACE_ANNOTATIONS if a in view.annotations), view.slug)
    return {"service": view.slug, "namespace": namespace, "env": env}


def graphs(
    session: Session, slug: str, *, range_text: str, env: str, source: MetricsSource | None, now: datetime
) -> GraphsOut:
    """Every panel's series over the range. Prometheus down or unset is said once, not an error page."""
    span = promql.parse_range(range_text)
    start, end = now - span, now
    step = promql.choose_step(start, end)
    values = _labels(session, slug, env) | {"range": promql.rate_window(step)}
    panels: list[PanelOut] = []
    trouble: str | None = None if source is not None else "Prometheus is not configured (QD_PROMETHEUS_URL)"
    for panel, custom in panels_of(session, slug):
        query = promql.render(panel.query, values)
        series: list[SeriesOut] = []
        error = trouble
        if trouble is None and source is not None:
            try:
                series = [
                    SeriesOut(labels=s.labels, points=s.points)
                    for s in source.query_range(query, start=start, end=end, step_seconds=step)
                ]
            except Unavailable as exc:
                trouble = error = f"Prometheus is unavailable: {exc.message}"
            except QuarterdeckError as exc:
                error = exc.message
        panels.append(
            PanelOut(
                key=panel.key,
                title=panel.title,
                unit=panel.unit,
                query=query,
                custom=custom,
                series=series,
                error=error,
            )
        )
    return GraphsOut(
        service=values["service"],
        range=range_text,
        start=start,
        end=end,
        step_seconds=step,
        panels=panels,
        error=trouble,
    )


def may_change_panels(session: Session, actor: Actor, slug: str) -> bool:
    """Whether `actor` may add and remove the service's own graphs: whoever may edit the service."""
    return bool(access.can(actor, "catalog.edit", catalog.service_ref(session, slug).resource()))


def _editable(session: Session, actor: Actor, slug: str) -> ServiceRef:
    ref = catalog.service_ref(session, slug)
    access.require(actor, "catalog.edit", ref.resource())
    return ref


def add_panel(
    session: Session, actor: Actor, slug: str, fields: dict[str, Any], *, at: datetime
) -> MetricPanel:
    """A team adds a graph to its service; the query is checked before it is stored."""
    try:
        body = PanelIn.model_validate(fields)
    except ValidationError as exc:
        raise Invalid.from_validation(exc) from exc
    ref = _editable(session, actor, slug)
    promql.validate_template(body.query, set(promql.PLACEHOLDERS))
    if any(panel.key == body.key for panel, _custom in panels_of(session, ref.slug)):
        raise Conflict(
            f"service {ref.slug} already has a panel {body.key!r}", code="observability.duplicate_panel"
        )
    panel = MetricPanel(service_slug=ref.slug, created_by=actor.label, created_at=at, **body.model_dump())
    session.add(panel)
    session.flush()
    access.record(
        session, actor, "panel.create", target=("service", ref.slug), at=at, after=body.model_dump()
    )
    return panel


def remove_panel(session: Session, actor: Actor, slug: str, key: str, *, at: datetime) -> None:
    ref = _editable(session, actor, slug)
    panel = session.scalar(
        select(MetricPanel).where(MetricPanel.service_slug == ref.slug, MetricPanel.key == key)
    )
    if panel is None:
        raise NotFound(
            f"service {ref.slug} has no panel {key!r} of its own", code="observability.unknown_panel"
        )
    before = {"key": panel.key, "title": panel.title, "unit": panel.unit, "query": panel.query}
    session.delete(panel)
    session.flush()
    access.record(session, actor, "panel.delete", target=("service", ref.slug), at=at, before=before)
