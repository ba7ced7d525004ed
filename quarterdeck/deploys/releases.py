"""Releases that come from the registry: a version CI never reported is still deployable when the
service's image repository holds an image tagged with it. The image and its digest are recorded as the
release the first time a deploy asks for it, so later reports of that version must agree with them
(service._check_release)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from quarterdeck.catalog.schemas import ServiceRef
from quarterdeck.deploys.models import Release
from quarterdeck.deploys.reading import REGISTRY_IMAGES, Registry
from quarterdeck.errors import QuarterdeckError
from quarterdeck.integrations.oci_registry import parse_image_ref

REGISTRY_ACTOR = "registry"


def release_from_registry(
    session: Session, ref: ServiceRef, version: str, *, registry: Registry | None, at: datetime
) -> Release | None:
    """The release of `version` made from the registry's image tagged `version`, or None when there
    is no registry, no repository, no such tag, or the registry cannot be read (the caller then says
    the version is unknown). Of two racing first deploys of one tag, both end up with the same row."""
    if registry is None or not ref.image_repository:
        return None
    try:
        image_ref = parse_image_ref(ref.image_repository)
        images = registry.images(image_ref.registry, image_ref.repository, limit=REGISTRY_IMAGES)
    except QuarterdeckError:
        return None
    image = next((i for i in images if i.tag == version), None)
    if image is None:
        return None
    release = Release(
        service_slug=ref.slug,
        version=version,
        image=f"{ref.image_repository}:{version}",
        digest=image.digest,
        commit=None,
        notes="",
        created_by=REGISTRY_ACTOR,
        created_at=at,
    )
    try:
        with session.begin_nested():
            session.add(release)
    except IntegrityError:
        found = session.scalar(
            select(Release).where(Release.service_slug == ref.slug, Release.version == version)
        )
        return found
    return release
