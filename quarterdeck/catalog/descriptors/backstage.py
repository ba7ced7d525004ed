"""Backstage descriptors (catalog-info.yaml) read as they are, mapped onto Quarterdeck's entities.

Field rules follow Backstage's descriptor format: required fields per kind are required here too,
names and tags are checked, references are `[kind:][namespace/]name` resolved in the entity's own
namespace. Two leniencies, both because nothing is lost by them: a Group without `children` and a
`dependsOn` entry without a kind (read as a component).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quarterdeck.catalog.descriptors.drafts import (
    Draft,
    EntityDraft,
    Origin,
    PersonDraft,
    Problem,
    ServiceDraft,
    SystemDraft,
    TeamDraft,
)
from quarterdeck.catalog.descriptors.limits import Refused
from quarterdeck.catalog.descriptors.names import (
    is_tag,
    name_problem,
    namespace_problem,
    parse_ref,
    slug_for,
)
from quarterdeck.catalog.descriptors.yaml_documents import Document

CORE_API_VERSIONS = ("backstage.io/v1alpha1", "backstage.io/v1beta1")
SERVICE_KINDS = {"component": "component", "api": "api", "resource": "resource"}
NOT_CATALOGUED = {"template", "environment"}
KNOWN_KIND_NAMES = {"Component", "API", "Resource", "System", "Domain", "Group", "User", "Location"}
KNOWN_KINDS = {name.lower() for name in KNOWN_KIND_NAMES}
ENVELOPE_KEYS = {"apiVersion", "kind", "metadata", "spec", "relations", "status"}
TIER_ANNOTATION = "quarterdeck.dev/tier"
IMAGE_ANNOTATION = "quarterdeck.dev/image"
CONTACT_PREFIX = "quarterdeck.dev/contact."

TextReader = Callable[[str], str | None]
"""Reads a `$text` target: None when it does not exist; raises Refused when it must not be read."""


@dataclass
class BackstageResult:
    draft: Draft | None = None
    problems: list[Problem] = field(default_factory=list)
    notices: list[Problem] = field(default_factory=list)
    identity: tuple[str, str] | None = None
    location_targets: list[str] = field(default_factory=list)


class _Reader:
    """Reads one Backstage document, collecting every problem rather than stopping at the first."""

    def __init__(self, doc: Document, file: str, read_text: TextReader | None) -> None:
        self.doc = doc
        self.file = file
        self.read_text = read_text
        self.result = BackstageResult()
        data = doc.data
        self.metadata: dict[str, Any] = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        spec = data.get("spec")
        self.spec: dict[str, Any] = spec if isinstance(spec, dict) else {}
        self.namespace = str(self.metadata.get("namespace") or "default")

    def problem(self, path: str, message: str) -> None:
        self.result.problems.append(Problem(self.file, self.doc.line_of(path), message, path))

    def notice(self, path: str, message: str) -> None:
        self.result.notices.append(Problem(self.file, self.doc.line_of(path), message, path))

    def string(self, path: str, value: Any, *, required: bool = False) -> str | None:
        if value is None or value == "":
            if required:
                self.problem(path, f"{path} is required")
            return None
        if not isinstance(value, str | int | float):
            self.problem(path, f"{path} must be a string, not {type(value).__name__}")
            return None
        return str(value).strip()

    def ref_list(self, path: str) -> list[Any]:
        value = self.spec.get(path.split(".", 1)[1])
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(path, f"{path} must be a list of entity references")
            return []
        return value

    def slug_of(self, ref: str, default_kind: str | None = None) -> tuple[str | None, str]:
        parsed = parse_ref(ref, default_namespace=self.namespace)
        return parsed.kind or default_kind, parsed.slug

    def owner(self) -> str | None:
        owner = self.string("spec.owner", self.spec.get("owner"), required=True)
        if owner is None:
            return None
        kind, slug = self.slug_of(owner, "group")
        return slug if kind == "group" else f"{kind}:{slug}"

    def links(self) -> list[dict[str, str]]:
        raw = self.metadata.get("links") or []
        if not isinstance(raw, list):
            self.problem("metadata.links", "metadata.links must be a list")
            return []
        links = []
        for index, link in enumerate(raw):
            path = f"metadata.links.{index}"
            if not isinstance(link, dict) or not isinstance(link.get("url"), str) or not link["url"].strip():
                self.problem(path, f"{path}.url is required")
                continue
            kind = re.sub(r"[^a-z0-9]+", "-", str(link.get("type") or link.get("icon") or "other").lower())
            links.append(
                {
                    "kind": kind.strip("-") or "other",
                    "url": link["url"].strip(),
                    "title": str(link.get("title") or ""),
                }
            )
        return links

    def annotations(self) -> dict[str, str]:
        raw = self.metadata.get("annotations") or {}
        if not isinstance(raw, dict):
            self.problem("metadata.annotations", "metadata.annotations must be a mapping")
            return {}
        return {str(key): "" if value is None else str(value) for key, value in raw.items()}

    def tags(self) -> list[str]:
        raw = self.metadata.get("tags") or []
        if not isinstance(raw, list):
            self.problem("metadata.tags", "metadata.tags must be a list")
            return []
        tags = []
        for index, tag in enumerate(raw):
            if not isinstance(tag, str) or not is_tag(tag):
                self.problem(
                    f"metadata.tags.{index}",
                    f"tag {tag!r} is not valid: use lower-case letters, digits, ':', '+', '#' and '-'",
                )
            else:
                tags.append(tag)
        return sorted(set(tags))

    def common(self) -> tuple[str, str, str, dict[str, str], list[dict[str, str]]]:
        """slug, title, description, annotations, links: what every kind carries."""
        name = self.metadata.get("name")
        slug = slug_for(self.namespace, str(name))
        title = self.string("metadata.title", self.metadata.get("title")) or str(name)
        description = self.string("metadata.description", self.metadata.get("description")) or ""
        return slug, title, description, self.annotations(), self.links()


def _tier(reader: _Reader, annotations: dict[str, str]) -> int | None:
    raw = annotations.get(TIER_ANNOTATION)
    if raw is None:
        return None
    if raw.strip() not in {"1", "2", "3", "4"}:
        reader.problem(
            "metadata.annotations", f"annotation {TIER_ANNOTATION} must be 1, 2, 3 or 4, not {raw!r}"
        )
        return None
    return int(raw)


def _service(reader: _Reader, kind: str) -> EntityDraft:
    slug, title, description, annotations, links = reader.common()
    spec = reader.spec
    entity_type = reader.string("spec.type", spec.get("type"), required=True) or "other"
    lifecycle = reader.string("spec.lifecycle", spec.get("lifecycle"), required=kind != "resource")
    owner = reader.owner()
    system = reader.string("spec.system", spec.get("system"))
    dependencies: list[tuple[str, str, str]] = []
    relations = [
        ("spec.dependsOn", "depends_on", "component"),
        ("spec.dependencyOf", "dependency_of", "component"),
        ("spec.providesApis", "provides_api", "api"),
        ("spec.consumesApis", "consumes_api", "api"),
    ]
    for path, relation, default_kind in relations:
        for ref in reader.ref_list(path):
            if not isinstance(ref, str) or not ref.strip():
                reader.problem(path, f"{path} entries must be entity references")
                continue
            target_kind, target = reader.slug_of(ref, default_kind)
            dependencies.append((relation, target_kind or default_kind, target))
    parent = reader.string("spec.subcomponentOf", spec.get("subcomponentOf"))
    if parent:
        target_kind, target = reader.slug_of(parent, "component")
        dependencies.append(("part_of", target_kind or "component", target))
    definition = _definition(reader) if kind == "api" else None
    contacts = [
        (key.removeprefix(CONTACT_PREFIX).lower(), value.strip().lower())
        for key, value in annotations.items()
        if key.startswith(CONTACT_PREFIX) and value.strip()
    ]
    return ServiceDraft(
        slug=slug,
        kind=kind,
        title=title,
        description=description,
        type=entity_type.lower(),
        lifecycle=(lifecycle or "production").lower(),
        tier=_tier(reader, annotations),
        system_ref=reader.slug_of(system, "system")[1] if system else None,
        owner_ref=owner,
        contacts=contacts,
        links=links,
        tags=reader.tags(),
        dependencies=list(dict.fromkeys(dependencies)),
        image_repository=annotations.get(IMAGE_ANNOTATION) or None,
        definition=definition,
        annotations=annotations,
    )


def _definition(reader: _Reader) -> str | None:
    raw = reader.spec.get("definition")
    if raw is None or raw == "":
        reader.problem("spec.definition", "spec.definition is required for an API")
        return None
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict) and len(raw) == 1:
        ((directive, target),) = raw.items()
        if directive in {"$text", "$json", "$yaml"} and isinstance(target, str):
            try:
                text = reader.read_text(target) if reader.read_text else None
            except Refused as exc:
                reader.problem("spec.definition", f"{directive} {target!r}: {exc.message}")
                return None
            if text is None:
                reader.notice(
                    "spec.definition", f"{directive} {target!r} could not be read; kept as a reference"
                )
                return f"{directive}: {target}"
            return text
    reader.problem("spec.definition", "spec.definition must be a string or a $text/$json/$yaml reference")
    return None


def _system(reader: _Reader, kind: str) -> EntityDraft:
    slug, title, description, annotations, links = reader.common()
    owner = reader.owner()
    parent_key = "domain" if kind == "system" else "subdomainOf"
    domain = reader.string(f"spec.{parent_key}", reader.spec.get(parent_key))
    return SystemDraft(
        slug=slug,
        kind=kind,
        title=title,
        description=description,
        owner_ref=owner,
        domain_ref=reader.slug_of(domain, "domain")[1] if domain else None,
        links=links,
        annotations=annotations,
    )


def _profile(reader: _Reader) -> dict[str, Any]:
    profile = reader.spec.get("profile") or {}
    if not isinstance(profile, dict):
        reader.problem("spec.profile", "spec.profile must be a mapping")
        return {}
    return profile


def _team(reader: _Reader) -> EntityDraft:
    slug, title, description, annotations, links = reader.common()
    profile = _profile(reader)
    parent = reader.string("spec.parent", reader.spec.get("parent"))
    members = [
        (reader.slug_of(ref, "user")[1], "member")
        for ref in reader.ref_list("spec.members")
        if isinstance(ref, str) and ref.strip()
    ]
    children = [
        reader.slug_of(ref, "group")[1] for ref in reader.ref_list("spec.children") if isinstance(ref, str)
    ]
    display = reader.string("spec.profile.displayName", profile.get("displayName"))
    return TeamDraft(
        slug=slug,
        name=display or reader.string("metadata.title", reader.metadata.get("title")) or title,
        description=description,
        type=(reader.string("spec.type", reader.spec.get("type")) or "team").lower(),
        email=reader.string("spec.profile.email", profile.get("email")),
        chat_channel=annotations.get("slack.com/channel") or annotations.get("quarterdeck.dev/chat"),
        parent_ref=reader.slug_of(parent, "group")[1] if parent else None,
        child_refs=children,
        members=list(dict.fromkeys(members)),
        links=links,
        annotations=annotations,
    )


def _person(reader: _Reader) -> EntityDraft:
    slug, title, _description, annotations, links = reader.common()
    profile = _profile(reader)
    email = reader.string("spec.profile.email", profile.get("email"))
    teams = [
        reader.slug_of(ref, "group")[1] for ref in reader.ref_list("spec.memberOf") if isinstance(ref, str)
    ]
    return PersonDraft(
        slug=slug,
        name=reader.string("spec.profile.displayName", profile.get("displayName")) or title,
        email=email.lower() if email else None,
        avatar_url=reader.string("spec.profile.picture", profile.get("picture")),
        chat_handle=annotations.get("slack.com/user") or annotations.get("quarterdeck.dev/chat"),
        teams=list(dict.fromkeys(teams)),
        links=links,
        annotations=annotations,
    )


def _location(reader: _Reader) -> None:
    if not reader.spec:
        reader.problem("spec", "a Location needs spec.target or spec.targets")
        return
    targets = []
    if isinstance(reader.spec.get("target"), str):
        targets.append(reader.spec["target"])
    raw = reader.spec.get("targets") or []
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        reader.problem("spec.targets", "spec.targets must be a list of strings")
        return
    targets.extend(raw)
    if not targets:
        reader.problem("spec", "a Location needs spec.target or spec.targets")
    reader.result.location_targets = targets


_IDENTITY_TABLE = {"group": "team", "user": "person", "system": "system", "domain": "system"}


def read_backstage_document(doc: Document, file: str, read_text: TextReader | None = None) -> BackstageResult:
    """One Backstage entity: a draft, or the located problems that stop it."""
    data = doc.data
    reader = _Reader(doc, file, read_text)
    result = reader.result
    kind_raw = data.get("kind")
    if not isinstance(kind_raw, str) or not kind_raw:
        reader.problem("kind", "kind is required")
        return result
    kind = kind_raw.lower()
    if not isinstance(data.get("metadata"), dict):
        reader.problem("metadata", "metadata is required and must be a mapping")
        return result
    name = reader.metadata.get("name")
    for path, problem in (
        ("metadata.name", name_problem(name, "metadata.name")),
        ("metadata.namespace", namespace_problem(reader.namespace)),
    ):
        if problem:
            reader.problem(path, problem)
    if result.problems:
        reader.tags()  # report bad tags too, so one pass shows everything wrong with the name
        return result
    for key in data:
        if key not in ENVELOPE_KEYS:
            reader.notice(key, f"unknown top-level key {key!r} ignored (did you mean metadata.{key}?)")
    if kind in NOT_CATALOGUED:
        reader.notice("kind", f"kind {kind_raw} is not part of the Quarterdeck catalog; skipped")
        return result
    if kind not in KNOWN_KINDS:
        known = ", ".join(sorted(KNOWN_KIND_NAMES))
        reader.problem("kind", f"kind {kind_raw!r} is not a kind Quarterdeck reads ({known})")
        return result
    if kind == "location":
        _location(reader)
        return result
    slug = slug_for(reader.namespace, str(name))
    table = "service" if kind in SERVICE_KINDS else _IDENTITY_TABLE[kind]
    result.identity = (table, f"{kind}:{slug}" if table == "service" else slug)
    if kind in SERVICE_KINDS:
        entity = _service(reader, kind)
    elif kind in {"system", "domain"}:
        entity = _system(reader, kind)
    elif kind == "group":
        entity = _team(reader)
    else:
        entity = _person(reader)
    if not result.problems:
        result.draft = Draft(entity, Origin(file, doc.line, doc.text))
    return result
