"""Deploy read models: environments, deploy and release views, history, live versions with the
registry's images, what a deploy changed, and the environment matrix."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.queries import ServiceFilters
from quarterdeck.deploys import queries
from quarterdeck.deploys.models import Deploy, DeployStatus, Environment, Release
from quarterdeck.deploys.queries import DeployFilters
from quarterdeck.deploys.schemas import (
    ChangeOut,
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


def deploy_out(deploy: Deploy, env: Environment, release: Release) -> DeployOut:
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


def deploy_view(session: Session, deploy_id: int) -> DeployOut:
    row = queries.by_id(session, deploy_id)
    if row is None:
        raise NotFound(f"no deploy {deploy_id}", code="deploys.unknown_deploy")
    return deploy_out(*row)


def list_deploys(
    session: Session, filters: DeployFilters, *, page: int = 1, per_page: int = 50
) -> DeployPage:
    if filters.service:
        catalog.find_row(session, "service", filters.service)
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
    row = catalog.find_row(session, "service", slug)
    by_env = {env.slug: deploy_out(d, env, r) for d, env, r in queries.live_rows(session, [row.slug])}
    state = _registry_state(getattr(row, "image_repository", None), registry)
    envs = [
        LiveEnvironment(
            environment=env, deploy=by_env.get(env.slug), behind=_behind(by_env.get(env.slug), state)
        )
        for env in environments(session)
    ]
    return LiveOut(service=row.slug, environments=envs, registry=state)


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
    row = queries.by_id(session, deploy_id)
    if row is None:
        raise NotFound(f"no deploy {deploy_id}", code="deploys.unknown_deploy")
    deploy, env, release = row
    previous = queries.newest_succeeded(session, deploy.service_slug, env.id, before=deploy)
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
        ServiceFilters(owner, None, None, None, None, "component", None, text),
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
