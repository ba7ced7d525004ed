"""One descriptor file in, its drafts and located problems out: the importer's unit of work."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath

from quarterdeck.catalog.descriptors.backstage import TextReader, read_backstage_document
from quarterdeck.catalog.descriptors.drafts import Draft, Problem
from quarterdeck.catalog.descriptors.foreign import FOREIGN_FORMATS, format_by_content, format_by_name
from quarterdeck.catalog.descriptors.limits import Refused
from quarterdeck.catalog.descriptors.quarterdeck_format import API_VERSION, read_quarterdeck_document
from quarterdeck.catalog.descriptors.yaml_documents import (
    Document,
    YamlSyntaxError,
    load_documents,
    load_json_documents,
)

READ_ELSEWHERE = {"Pipeline": "quarterdeck pipelines apply"}
"""Quarterdeck documents of other kinds than the catalog's, which may sit beside descriptors in a
repository: each is skipped with a notice naming what reads it."""


class FileOutcome(StrEnum):
    IMPORTED = "imported"  # every document read
    PARTIAL = "partial"  # some entities read, others refused
    INVALID = "invalid"  # nothing could be read: syntax error or every entity refused
    SKIPPED = "skipped"  # valid, but holds only kinds outside the catalog (Template, ...)
    FOREIGN = "foreign"  # another product's catalog format
    NOT_DESCRIPTOR = "not_descriptor"  # a look-alike: not a descriptor of any known kind


@dataclass
class FileResult:
    file: str
    format: str = "unknown"
    drafts: list[Draft] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notices: list[Problem] = field(default_factory=list)
    failed: dict[tuple[str, str], list[Problem]] = field(default_factory=dict)
    location_targets: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> FileOutcome:
        if self.format in FOREIGN_FORMATS:
            return FileOutcome.FOREIGN
        if self.format == "unknown":
            return FileOutcome.NOT_DESCRIPTOR
        if self.problems:
            return FileOutcome.PARTIAL if self.drafts else FileOutcome.INVALID
        if not self.drafts and not self.location_targets:
            return FileOutcome.SKIPPED
        return FileOutcome.IMPORTED


def _template_hint(text: str) -> str:
    if "${{" in text or "{%" in text or "{{" in text:
        return " (the file holds template placeholders such as ${{ }} or {% %}: render it first)"
    return ""


def _parse(text: str, filename: str) -> list[Document]:
    """YAML first (JSON is YAML); a .json file YAML cannot read is read as JSON, within the same limits."""
    try:
        return load_documents(text)
    except YamlSyntaxError:
        if not filename.lower().endswith(".json"):
            raise
        return load_json_documents(text)


def _foreign(result: FileResult, fmt: str, line: int | None, extra: str = "") -> FileResult:
    result.format = fmt
    result.problems.append(
        Problem(
            result.file,
            line,
            f"{FOREIGN_FORMATS[fmt]} file: not a Quarterdeck or Backstage descriptor, not imported{extra}",
        )
    )
    return result


def read_descriptor_file(file: str, text: str, read_text: TextReader | None = None) -> FileResult:
    """Read every document of a descriptor file; never raises for bad content."""
    result = FileResult(file)
    filename = PurePosixPath(file).name
    try:
        documents = _parse(text, filename)
    except Refused as exc:
        return report_refusal(file, exc)
    except (YamlSyntaxError, json.JSONDecodeError) as exc:
        line = exc.line if isinstance(exc, YamlSyntaxError) else exc.lineno
        message = exc.message if isinstance(exc, YamlSyntaxError) else f"JSON syntax error: {exc.msg}"
        named = format_by_name(filename)
        if named:
            return _foreign(result, named, line, f"; it is not valid YAML either: {message}")
        result.format = "yaml"
        result.problems.append(Problem(file, line, message + _template_hint(text)))
        return result
    if not documents:
        result.format = "yaml"
        result.problems.append(Problem(file, 1, "the file holds no YAML documents"))
        return result
    foreign = format_by_name(filename) or format_by_content(documents[0].data)
    if foreign:
        return _foreign(result, foreign, documents[0].line)
    formats = set()
    for doc in documents:
        formats.add(_read_document(result, doc, read_text))
    known = formats - {"unknown"}
    result.format = "+".join(sorted(known)) if known else "unknown"
    if result.format == "unknown" and not any(
        isinstance(doc.data, dict) and "apiVersion" in doc.data for doc in documents
    ):
        result.problems = [
            Problem(
                file,
                documents[0].line,
                "not a descriptor: no apiVersion (expected quarterdeck/v1 or backstage.io/v1alpha1)",
            )
        ]
    return result


def report_refusal(file: str, refusal: Refused) -> FileResult:
    """A file the importer would not read, or read no further: one located problem says why."""
    result = FileResult(file, format="yaml")
    result.problems.append(Problem(file, refusal.line, refusal.message))
    return result


def _read_document(result: FileResult, doc: Document, read_text: TextReader | None) -> str:
    data = doc.data
    api_version = data.get("apiVersion") if isinstance(data, dict) else None
    if not isinstance(api_version, str):
        result.problems.append(
            Problem(
                result.file, doc.line, "document has no apiVersion (quarterdeck/v1 or backstage.io/v1alpha1)"
            )
        )
        return "unknown"
    if api_version == API_VERSION:
        kind = data.get("kind")
        if kind in READ_ELSEWHERE:
            note = f"kind {kind} is read by `{READ_ELSEWHERE[kind]}`, not the catalog; skipped"
            result.notices.append(Problem(result.file, doc.line_of("kind"), note, "kind"))
            return "quarterdeck"
        draft, problems = read_quarterdeck_document(doc, result.file)
        if draft:
            result.drafts.append(draft)
        else:
            result.problems.extend(problems)
            identity = _quarterdeck_identity(data)
            if identity:
                result.failed.setdefault(identity, []).extend(problems)
        return "quarterdeck"
    if api_version.startswith(("backstage.io/", "scaffolder.backstage.io/")):
        read = read_backstage_document(doc, result.file, read_text)
        result.notices.extend(read.notices)
        result.location_targets.extend(read.location_targets)
        if read.draft:
            result.drafts.append(read.draft)
        elif read.problems:
            result.problems.extend(read.problems)
            if read.identity:
                result.failed.setdefault(read.identity, []).extend(read.problems)
        return "backstage"
    result.problems.append(
        Problem(
            result.file,
            doc.line_of("apiVersion"),
            f"not a descriptor: apiVersion {api_version!r} is not quarterdeck/v1 or backstage.io/v1alpha1",
        )
    )
    return "unknown"


def _quarterdeck_identity(data: dict[str, object]) -> tuple[str, str] | None:
    """Which entity a refused quarterdeck document was about, so its last good version keeps the error."""
    kind, slug = data.get("kind"), data.get("slug")
    if kind == "Person":
        handle, email = data.get("handle"), data.get("email")
        slug = handle if isinstance(handle, str) else email.split("@")[0] if isinstance(email, str) else None
    if not isinstance(slug, str) or not isinstance(kind, str):
        return None
    table = kind.lower()
    return (table, f"component:{slug.lower()}") if table == "service" else (table, slug.lower())
