"""Deploy read models: environments, deploy and release views (deploy_out is the one mapper of a
deploy), a deploy's timeline, history, live versions with the registry's images, what a deploy changed,
and the environment matrix."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.schemas import ServiceFilters
from quarterdeck.deploys import queries
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


def deploy_out(deploy: DeployColumns, env: Environment, release: Release) -> DeployOut:
    """The one mapper of a deploy to its view, wherever the deploy was read or written."""
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
    rows, total = queries.page_of(session, filters, page=page, per_page=per_page)
    return DeployPage(items=[deploy_out(*row) for row in rows], total=total, page=page, per_page=per_page)


def _registry_state(repository: str | None, registry: Registry | None) -> RegistryState:
    if not repository:
        return RegistryState(repository=None, error="the service names no image repository (field `image`)")
    if registry is None:
        return RegistryState(repository=repository, error="no registry is configured")
    try:
        ref = parse_image_ref(repository)
        found = registry.images(ref.registry, ref.repository, limit=REGISTRY_IMAGES)
    except QuarterdeckError as exc:
        return RegistryState(repository=repository, error=f"the registry could not be read: {exc.message}")
    images = [RegistryImage(tag=i.tag, digest=i.digest, created=i.created) for i in found]
    return RegistryState(repository=repository, latest=images[0] if images else None, images=images)


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
    base = repo.removesuffix(".git").rstrip("/")
    if "gitlab" in base:
        return f"{base}/-/compare/{old}...{new}"
    return f"{base}/compare/{old}...{new}"


REPO_LINK_KINDS = frozenset({"repo", "source"})


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
    links = catalog.service_view(session, deploy.service_slug).links
    repo_url = next((link["url"] for link in links if link.get("kind") in REPO_LINK_KINDS), None)
    return ChangeOut(
        previous=deploy_out(*previous_row) if previous_row else None,
        releases=[release_out(r) for r in releases],
        compare_url=_compare_url(repo_url, previous_row[2].commit if previous_row else None, release.commit),
    )


def matrix(
    session: Session, *, owner: str | None = None, text: str | None = None, page: int = 1, per_page: int = 100
) -> MatrixPage:
    """Services x environments with the version live in each: one page of services, one query for them."""
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
    rows = [
        MatrixRow(
            service=s.slug,
            title=s.title,
            owner=s.owner,
            tier=s.tier,
            live={env.slug: live.get((s.slug, env.slug)) for env in envs},
        )
        for s in services.items
    ]
    return MatrixPage(environments=envs, rows=rows, total=services.total, page=page, per_page=per_page)
