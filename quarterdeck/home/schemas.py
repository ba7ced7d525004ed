"""What the home shows and the stars API answers: a person's services with their health, what waits
for them, recent deploys, problems, and the entities they starred."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from quarterdeck.access.schemas import ChangeRequestOut
from quarterdeck.catalog.schemas import Ref, ServiceSummary
from quarterdeck.deploys.schemas import DeployOut, EnvironmentOut

EntityKind = Literal["service", "team", "person", "system"]
ENTITY_KINDS: tuple[EntityKind, ...] = ("service", "team", "person", "system")
KEY_LENGTH = 330
"""The longest name of an entity: an e-mail (320), or `resource:` and a service's slug (209)."""


class StarOut(BaseModel):
    """A starred entity: `slug` is the catalog's key for it; `exists` is false once the catalog no
    longer has it (the star stays until its owner removes it)."""

    kind: EntityKind
    slug: str
    name: str | None
    url: str | None
    exists: bool
    starred_at: datetime


class StarList(BaseModel):
    items: list[StarOut]
    total: int
    limit: int
    """The most stars one person may have."""


class StarButton(BaseModel):
    """The star button of one entity, for one viewer: its state, its label's name, where its form posts
    and where a browser without JavaScript goes back to."""

    model_config = ConfigDict(frozen=True)

    kind: EntityKind
    slug: str
    name: str
    starred: bool
    action: str
    next: str


class StarredItem(BaseModel):
    """A star on the home: the starred entity, and its button (to unstar it there)."""

    star: StarOut
    button: StarButton


class Health(StrEnum):
    """How a service of mine is doing, worst first; each value's tone is its badge colour."""

    FAILING = "failing"
    """The newest deploy to some environment failed or was rolled back."""
    PROBLEMS = "problems"
    """Its descriptor did not import cleanly, or it names something the catalog does not have."""
    DEPLOYING = "deploying"
    """A deploy is running."""
    HEALTHY = "healthy"
    """None of the above."""

    @property
    def tone(self) -> str:
        return {"failing": "bad", "problems": "warn", "deploying": "info", "healthy": "ok"}[self.value]


class EnvironmentState(BaseModel):
    """One service in one environment: what runs there, and the newest deploy there when that is not
    what runs (it failed, was rolled back, or is running)."""

    environment: str
    live: DeployOut | None
    latest: DeployOut | None


class MyService(BaseModel):
    service: ServiceSummary
    environments: list[EnvironmentState]
    health: Health
    problem_count: int


class ServiceProblem(BaseModel):
    """An ingestion problem of a service: an import error (with its file and line) or a reference
    that names nothing in the catalog."""

    service: str
    title: str
    url: str
    kind: Literal["import", "reference"]
    message: str
    file: str | None = None
    line: int | None = None


class Home(BaseModel):
    """What / shows. `personal` is false for anyone but a person (an anonymous reader, a service
    token): they get the search and the catalog's overview (`stats`), which a person in no team gets
    too. The services are the first `services_shown` (the most critical) of `services_total`."""

    signed_in: bool
    personal: bool
    name: str | None
    teams: list[Ref]
    environments: list[EnvironmentOut]
    services: list[MyService]
    services_total: int
    services_shown: int
    more_services: list[Ref]
    """Where to see every service, a link per team, when more than are shown exist."""
    waiting: list[ChangeRequestOut]
    recent: list[DeployOut]
    problems: list[ServiceProblem]
    stars: list[StarredItem]
    stars_total: int
    stats: dict[str, int]
