"""The domain registry: what each domain adds to the product, declared once.

The app factory mounts the routers, the CLI adds the commands, templating finds the templates, the
nav and the service-page tabs, migrations load the models and the worker loads the job handlers,
each by looping over DOMAINS. A new domain is one entry here.

Entries name modules and objects as import strings ("package.module:attribute"), so this module
imports no domain: the layers below the domains (templating, migrations, jobs) may read it, and
nothing is imported before it is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NavEntry:
    label: str
    href: str
    admin_only: bool = False


@dataclass(frozen=True)
class Tab:
    """A tab of a service's page: its path after /services/{slug}, e.g. "/deploys" ("" for the
    overview), and the id its link carries."""

    label: str
    suffix: str
    element_id: str


@dataclass(frozen=True)
class Domain:
    name: str
    routers: tuple[str, ...] = ()
    catch_all_routers: tuple[str, ...] = ()
    """Routers with catch-all paths (/services/{slug:path}): mounted after every other domain's."""
    tabs: tuple[Tab, ...] = ()
    nav: tuple[NavEntry, ...] = ()
    commands: str | None = None
    """A `register(app: typer.Typer)` that adds the domain's commands to `quarterdeck`."""
    models: str | None = None
    templates: str | None = None
    """The domain's template folder, relative to the package."""
    jobs: str | None = None
    """A module with `register_jobs(registry)`: the domain's job handlers."""
    entity_page_context: str | None = None
    """A function `(session, actor, *, entity_type, key, name) -> dict` whose answer the catalog's
    entity pages (service, team, person, system) add to their template's context: how a domain above
    the catalog puts something on those pages (the home's star button) without the catalog importing it."""


DOMAINS: tuple[Domain, ...] = (
    Domain(name="jobs", models="quarterdeck.jobs.models"),
    Domain(
        name="access",
        routers=("quarterdeck.access.api:router", "quarterdeck.access.views:router"),
        nav=(
            NavEntry("Users", "/admin/users", admin_only=True),
            NavEntry("Audit", "/admin/audit", admin_only=True),
        ),
        commands="quarterdeck.access.cli:register",
        models="quarterdeck.access.models",
        templates="access/templates",
    ),
    Domain(
        name="catalog",
        routers=(
            "quarterdeck.catalog.api:public_router",
            "quarterdeck.catalog.source_routes:api_router",
            "quarterdeck.catalog.source_routes:pages_router",
            "quarterdeck.catalog.reference_routes:api_router",
            "quarterdeck.catalog.reference_routes:pages_router",
        ),
        catch_all_routers=("quarterdeck.catalog.api:router", "quarterdeck.catalog.views:router"),
        tabs=(Tab("Overview", "", "overview-tab"),),
        nav=(
            NavEntry("Services", "/services"),
            NavEntry("Teams", "/teams"),
            NavEntry("People", "/people"),
            NavEntry("Systems", "/systems"),
            NavEntry("Sources", "/admin/sources", admin_only=True),
            NavEntry("References", "/admin/references", admin_only=True),
        ),
        commands="quarterdeck.catalog.cli:register",
        models="quarterdeck.catalog.models",
        templates="catalog/templates",
        jobs="quarterdeck.catalog.jobs",
    ),
    Domain(
        name="observability",
        routers=("quarterdeck.observability.api:router",),
        models="quarterdeck.observability.models",
    ),
    Domain(
        name="operations",
        routers=("quarterdeck.operations.api:router", "quarterdeck.operations.views:router"),
        nav=(NavEntry("Jobs", "/admin/jobs", admin_only=True),),
        commands="quarterdeck.operations.cli:register",
        templates="operations/templates",
    ),
    Domain(
        name="deploys",
        routers=("quarterdeck.deploys.api:router", "quarterdeck.deploys.views:router"),
        tabs=(Tab("Deploys & graphs", "/deploys", "deploys-tab"),),
        nav=(
            NavEntry("Environments", "/environments"),
            NavEntry("Deploys", "/deploys"),
            NavEntry("Approvals", "/approvals"),
            NavEntry("Environments", "/admin/environments", admin_only=True),
        ),
        commands="quarterdeck.deploys.cli:register",
        models="quarterdeck.deploys.models",
        templates="deploys/templates",
    ),
    Domain(
        name="pipelines",
        routers=(
            "quarterdeck.deploys.pipeline_api:public_router",
            "quarterdeck.deploys.pipeline_api:router",
            "quarterdeck.deploys.pipeline_views:router",
        ),
        commands="quarterdeck.deploys.pipeline_cli:register",
        models="quarterdeck.deploys.pipeline_models",
    ),
    Domain(
        name="rollouts",
        routers=("quarterdeck.deploys.rollout_api:router", "quarterdeck.deploys.rollout_views:router"),
        commands="quarterdeck.deploys.rollout_cli:register",
        models="quarterdeck.deploys.rollouts.models",
        jobs="quarterdeck.deploys.rollouts.jobs",
    ),
    Domain(
        name="home",
        routers=("quarterdeck.home.api:router", "quarterdeck.home.views:router"),
        models="quarterdeck.home.models",
        templates="home/templates",
        entity_page_context="quarterdeck.home.service:star_context",
    ),
)


def resolve(reference: str) -> Any:
    """The object an import string names: "package.module:attribute", or a module alone."""
    module, _, attribute = reference.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded


def job_modules() -> list[str]:
    return [domain.jobs for domain in DOMAINS if domain.jobs]


def model_modules() -> list[str]:
    return [domain.models for domain in DOMAINS if domain.models]


def entity_page_contexts() -> list[Callable[..., dict[str, Any]]]:
    """The functions that add to the catalog's entity pages (Domain.entity_page_context)."""
    return [resolve(domain.entity_page_context) for domain in DOMAINS if domain.entity_page_context]
