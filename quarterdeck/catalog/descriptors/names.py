"""Rules for slugs, tags and entity references, shared by both descriptor formats and the API."""

from __future__ import annotations

import re
from dataclasses import dataclass

SLUG_PATTERN = r"^[a-z0-9]+(?:[-_.][a-z0-9]+)*$"
NAMESPACED_SLUG_PATTERN = r"^(?:[a-z0-9]+(?:-[a-z0-9]+)*/)?[a-z0-9]+(?:[-_.][a-z0-9]+)*$"
TAG_PATTERN = r"^[a-z0-9:+#]+(?:-[a-z0-9:+#]+)*$"
_SLUG = re.compile(SLUG_PATTERN)
_NAME = re.compile(r"^[a-zA-Z0-9]+(?:[-_.][a-zA-Z0-9]+)*$")
_NAMESPACE = re.compile(r"^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$")
_TAG = re.compile(TAG_PATTERN)
MAX_NAME = 63


def name_problem(value: object, what: str = "name") -> str | None:
    """Why `value` is not a valid entity name (Backstage's rule), or None when it is."""
    if not isinstance(value, str) or not value:
        return f"{what} must be a non-empty string"
    if len(value) > MAX_NAME:
        return f"{what} {value!r} is longer than {MAX_NAME} characters"
    if not _NAME.match(value):
        return f"{what} {value!r} is not valid: use letters, digits and '-', '_' or '.' between them"
    return None


def namespace_problem(value: object) -> str | None:
    if not isinstance(value, str) or not _NAMESPACE.match(value) or len(value) > MAX_NAME:
        return f"namespace {value!r} is not valid: use letters, digits and '-' between them"
    return None


def is_slug(value: str) -> bool:
    return bool(_SLUG.match(value)) and len(value) <= MAX_NAME


def is_tag(value: str) -> bool:
    return bool(_TAG.match(value)) and len(value) <= MAX_NAME


def slug_for(namespace: str, name: str) -> str:
    """The catalog slug of a namespaced name: the default namespace is left out of it."""
    namespace, name = namespace.lower(), name.lower()
    return name if namespace == "default" else f"{namespace}/{name}"


@dataclass(frozen=True)
class EntityRef:
    kind: str | None
    namespace: str
    name: str

    @property
    def slug(self) -> str:
        return slug_for(self.namespace, self.name)


def parse_ref(value: str, *, default_namespace: str = "default") -> EntityRef:
    """Parse `[kind:][namespace/]name` (Backstage's entity reference); kind and names lower-cased."""
    text = value.strip()
    kind: str | None = None
    if ":" in text and "/" not in text.split(":", 1)[0]:
        kind, text = text.split(":", 1)
        kind = kind.lower()
    namespace = default_namespace
    if "/" in text:
        namespace, text = text.split("/", 1)
    return EntityRef(kind, namespace.lower(), text.lower())
