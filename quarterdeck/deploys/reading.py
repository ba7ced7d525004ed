"""Deploy read models: environments, deploy and release views (deploy_out is the one mapper of a
deploy), a deploy's timeline, history, live versions with the registry's images, what a deploy changed,
and the environment matrix."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.schemas import ServiceFilters, ServiceOut
from quarterdeck.deploys import queries
from quarterdeck.deploys.drift import Cell, drift
from quarterdeck.deploys.flagging import approval_tiers, flags_of
from quarterdeck.deploys.models import DeployEvent, Environment, Release
from quarterdeck.deploys.queries import DeployFilters
from quarterdeck.deploys.schemas import (
    ChangeOut,
    DeployDetail,
    DeployEventOut,
    DeployOut,
    DeployPage,
    EnvironmentOut,
    LiveEnvironment,
    LiveOut,
    MatrixPage,
    MatrixRow,
    RegistryImage,
    RegistryState,
    ReleaseOut,
)
from quarterdeck.deploys.states import DeployStatus
from quarterdeck.errors import NotFound, QuarterdeckError
from quarterdeck.integrations.oci_registry import ImageTag, parse_image_ref

REGISTRY_IMAGES = 50


class Registry(Protocol):
    def images(self, registry: str, repository: str, *, limit: int = 100) -> list[ImageTag]: ...


def env_out(env: Environment) -> EnvironmentOut:
    return EnvironmentOut(slug=env.slug, name=env.name, position=env.position, production=env.production)


def environments(session: Session) -> list[EnvironmentOut]:
    return [env_out(env) for env in queries.environments(session)]


def find_environment(session: Session, slug: str, cache: dict[str, Environment] | None = None) -> Environment:
    if cache is not None and slug in cache:
        return cache[slug]
    env = session.scalar(select(Environment).where(Environment.slug == slug))
    if env is None:
        known = ", ".join(e.slug for e in queries.environments(session)) or "none yet"
        raise NotFound(
            f"no environment {slug!r} (known: {known})",
            code="deploys.unknown_environment",
            details=[{"field": "environment", "message": f"no environment {slug!r}"}],
        )
    if cache is not None:
        cache[slug] = env
    return env


class DeployColumns(Protocol):
    """What a deploy's view is made of: a Deploy, or a row of the deploys table's columns."""

    @property
    def id(self) -> int: ...
    @property
    def external_id(self) -> str: ...
    @property
    def service_slug(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def deployed_by(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def finished_at(self) -> datetime | None: ...
    @property
    def notes(self) -> str: ...
    @property
    def service_tier(self) -> int | None: ...
    @property
    def approval_id(self) -> int | None: ...


def deploy_out(deploy: DeployColumns, env: Environment, release: Release) -> DeployOut:
    """The one mapper of a deploy to its view, wherever the deploy was read or written; its flags are
    judged here (flagging.py), so every page and answer shows the same ones."""
    return DeployOut(
        id=deploy.id,
        external_id=deploy.external_id,
        service=deploy.service_slug,
        environment=env.slug,
        status=DeployStatus(deploy.status),
        source=deploy.source,
        deployed_by=deploy.deployed_by,
        started_at=deploy.started_at,
        finished_at=deploy.finished_at,
        notes=deploy.notes,
        release=release_out(release),
        url=f"/deploys/{deploy.id}",
        service_tier=deploy.service_tier,
        approval=deploy.approval_id,
        flags=flags_of(
            service=deploy.service_slug,
            version=release.version,
            tier=deploy.service_tier,
            env=env,
            approval_id=deploy.approval_id,
        ),
    )


def release_out(release: Release) -> ReleaseOut:
    return ReleaseOut(
        version=release.version,
        image=release.image,
        digest=release.digest,
        commit=release.commit,
        notes=release.notes,
        created_by=release.created_by,
        created_at=release.created_at,
    )


def event_out(event: DeployEvent) -> DeployEventOut:
    return DeployEventOut(
        from_status=DeployStatus(event.from_status) if event.from_status else None,
        to_status=DeployStatus(event.to_status),
        at=event.at,
        actor=event.actor,
        reason=event.reason,
    )


def _row(session: Session, deploy_id: int) -> queries.Row:
    row = queries.by_id(session, deploy_id)
    if row is None:
        raise NotFound(f"no deploy {deploy_id}", code="deploys.unknown_deploy")
    return row


def deploy_view(session: Session, deploy_id: int) -> DeployDetail:
    """A deploy and its timeline: every status it was recorded in, who moved it, when and why."""
    out = deploy_out(*_row(session, deploy_id))
    events = [event_out(event) for event in queries.events_of(session, deploy_id)]
    return DeployDetail(**out.model_dump(), events=events)


def list_deploys(
    session: Session, filters: DeployFilters, *, page: int = 1, per_page: int = 50
) -> DeployPage:
    if filters.service:
        catalog.service_ref(session, filters.service)
    if filters.environment:
        find_environment(session, filters.environment)
    rows, total = queries.page_of(
        session, filters, page=page, per_page=per_page, approval_tiers=approval_tiers()
    )
    return DeployPage(items=[deploy_out(*row) for row in rows], total=total, page=page, per_page=per_page)


UNREACHABLE_CODES = frozenset({"registry.unreachable", "registry.timeout"})


def _registry_state(repository: str | None, registry: Registry | None) -> RegistryState:
    """The registry's newest images of the service's repository; when there are none to show, why, in one
    sentence that names the registry and says the reason in words."""
    if not repository:
        return RegistryState(
            repository=None,
            problem="no_repository",
            error="the service names no image repository (field `image`)",
        )
    try:
        ref = parse_image_ref(repository)
    except QuarterdeckError as exc:
        return RegistryState(repository=repository, problem="failed", error=f"The service's {exc.message}.")
    state = RegistryState(repository=repository, host=ref.registry)
    if registry is None:
        return state.model_copy(update={"problem": "not_configured", "error": "no registry is configured"})
    try:
        found = registry.images(ref.registry, ref.repository, limit=REGISTRY_IMAGES)
    except QuarterdeckError as exc:
        words = exc.details.get("words") if isinstance(exc.details, dict) else None
        if exc.code in UNREACHABLE_CODES and words:
            error = f"The registry {ref.registry} is not reachable from here: {words}."
            return state.model_copy(update={"problem": "unreachable", "error": error})
        error = f"The registry {ref.registry} could not be read: {exc.message}."
        return state.model_copy(update={"problem": "failed", "error": error})
    images = [RegistryImage(tag=i.tag, digest=i.digest, created=i.created) for i in found]
    return state.model_copy(update={"latest": images[0] if images else None, "images": images})


def _behind(deploy: DeployOut | None, state: RegistryState) -> int | None:
    """Distinct images newer than the live one; None when the live image is not in the registry."""
    if deploy is None or not state.images:
        return None
    live_digest = deploy.release.digest
    live_tag = (
        deploy.release.image.rsplit(":", 1)[-1]
        if deploy.release.image and "@" not in deploy.release.image
        else None
    )
    seen: list[str] = []
    for image in state.images:
        if image.digest == live_digest or (
            live_digest is None and image.tag in {live_tag, deploy.release.version}
        ):
            return len(seen)
        if image.digest not in seen:
            seen.append(image.digest)
    return None


def live_of(session: Session, slug: str, *, registry: Registry | None) -> LiveOut:
    """Per environment, what runs now; and the registry's newest images, and how far behind each is."""
    ref = catalog.service_ref(session, slug)
    by_env = {env.slug: deploy_out(d, env, r) for d, env, r in queries.live_rows(session, [ref.slug])}
    state = _registry_state(ref.image_repository, registry)
    envs = [
        LiveEnvironment(
            environment=env, deploy=by_env.get(env.slug), behind=_behind(by_env.get(env.slug), state)
        )
        for env in environments(session)
    ]
    return LiveOut(service=ref.slug, environments=envs, registry=state)


def _compare_url(repo: str | None, old: str | None, new: str | None) -> str | None:
    if not repo or not old or not new or old == new:
        return None
    base = repo
    if "gitlab" in base:
        return f"{base}/-/compare/{old}...{new}"
    return f"{base}/compare/{old}...{new}"


REPO_LINK_KINDS = frozenset({"repo", "source"})
REPO_ANNOTATIONS = {
    "github.com/project-slug": "https://github.com/{}",
    "gitlab.com/project-slug": "https://gitlab.com/{}",
}
"""Backstage's well-known annotations that name a repository, when no link of a repo kind does."""


def repository_url(view: ServiceOut) -> str | None:
    """The service's source repository (its first `repo` or `source` link, else a GitHub or GitLab
    project annotation), as a web URL without `.git`; None when the catalog does not say."""
    url = next((link["url"] for link in view.links if link.get("kind") in REPO_LINK_KINDS), None)
    if url is None:
        url = next(
            (
                pattern.format(view.annotations[key])
                for key, pattern in REPO_ANNOTATIONS.items()
                if view.annotations.get(key)
            ),
            None,
        )
    if url is None or not url.startswith(("https://", "http://")):
        return None
    return url.removesuffix(".git").rstrip("/")


def repository_urls(session: Session, services: Iterable[str]) -> dict[str, str]:
    """Each service's repository URL, for the services that have one (commit links on deploy lists):
    one stored read per service."""
    found: dict[str, str] = {}
    for slug in sorted(set(services)):
        try:
            url = repository_url(catalog.service_view(session, slug))
        except NotFound:
            continue
        if url is not None:
            found[slug] = url
    return found


def changes_of(session: Session, deploy_id: int) -> ChangeOut:
    """The releases a deploy brought over what was live before it in the same environment (none when
    it went back to an older release), and a link comparing the two commits in the service's repo."""
    deploy, _env, release = _row(session, deploy_id)
    previous = queries.previously_live(session, deploy)
    previous_row = queries.by_id(session, previous.id) if previous else None
    after_id = previous_row[2].id if previous_row else None
    releases = (
        []
        if after_id is not None and after_id >= release.id
        else queries.releases_between(session, deploy.service_slug, after_id, release.id)
    )
    repo_url = repository_url(catalog.service_view(session, deploy.service_slug))
    return ChangeOut(
        previous=deploy_out(*previous_row) if previous_row else None,
        releases=[release_out(r) for r in releases],
        compare_url=_compare_url(repo_url, previous_row[2].commit if previous_row else None, release.commit),
    )


def matrix(
    session: Session, *, owner: str | None = None, text: str | None = None, page: int = 1, per_page: int = 100
) -> MatrixPage:
    """Services x environments with the version live in each, and which of them drift from the service's
    reference version (drift.py): one page of services, one query for them."""
    services = catalog.list_services(
        session,
        ServiceFilters(owner=owner, kind="component", text=text),
        page=page,
        per_page=per_page,
    )
    envs = environments(session)
    live: dict[tuple[str, str], DeployOut] = {
        (d.service_slug, env.slug): deploy_out(d, env, r)
        for d, env, r in queries.live_rows(session, [s.slug for s in services.items])
    }
    rows = []
    for s in services.items:
        cells = {env.slug: live.get((s.slug, env.slug)) for env in envs}
        reference, drifting = drift(
            [
                Cell(env.slug, env.production, d.release.version if (d := cells[env.slug]) else None)
                for env in envs
            ]
        )
        rows.append(
            MatrixRow(
                service=s.slug,
                title=s.title,
                owner=s.owner,
                tier=s.tier,
                live=cells,
                reference=reference,
                drift=drifting,
            )
        )
    return MatrixPage(environments=envs, rows=rows, total=services.total, page=page, per_page=per_page)


Placed = dict[tuple[str, str], DeployOut]
"""(service slug, environment slug) -> a deploy there."""


def live_by_environment(session: Session, services: Iterable[str]) -> Placed:
    """What runs now of each of these services in each environment it runs in."""
    return {
        (d.service_slug, env.slug): deploy_out(d, env, r)
        for d, env, r in queries.live_rows(session, services)
    }


def latest_by_environment(session: Session, services: Iterable[str]) -> Placed:
    """The newest deploy of each of these services in each environment, whatever its status: a failed
    or rolled back one there is what its owners must look at."""
    return {
        (d.service_slug, env.slug): deploy_out(d, env, r)
        for d, env, r in queries.latest_per_environment(session, services)
    }


def recent_deploys_of(session: Session, services: Iterable[str], *, limit: int = 10) -> list[DeployOut]:
    """The newest deploys of these services, newest first, in every environment."""
    return [deploy_out(*row) for row in queries.recent_of(session, services, limit=limit)]
