"""Observability API shapes: graph panels with their series, and the panels teams add."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints


class SeriesOut(BaseModel):
    labels: dict[str, str]
    points: list[tuple[float, float | None]]


class PanelOut(BaseModel):
    key: str
    title: str
    unit: str
    query: str
    custom: bool
    series: list[SeriesOut]
    error: str | None


class GraphsOut(BaseModel):
    service: str
    range: str
    start: datetime
    end: datetime
    step_seconds: float
    panels: list[PanelOut]
    error: str | None


class PanelIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")]
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    unit: Annotated[str, StringConstraints(max_length=50)] = ""
    query: Annotated[str, StringConstraints(min_length=1, max_length=4000)]


class LinkOut(BaseModel):
    title: str
    url: str
