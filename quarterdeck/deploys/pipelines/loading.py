"""Pipeline files in, validated pipelines out, or errors that name the file, the line, the step and the
field: `pipelines/tier1.yaml:14: steps[3] (analysis "error-rate"): condition: ...`.

YAML goes through the catalog's bounded loader (size, nesting, aliases, nodes: the limits of
catalog/descriptors/limits.py), so a YAML bomb is a located refusal like any other bad file.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from quarterdeck.catalog.descriptors import (
    MAX_FILE_BYTES,
    Document,
    Refused,
    YamlSyntaxError,
    load_documents,
)
from quarterdeck.deploys.pipelines.expressions import quoted
from quarterdeck.deploys.pipelines.format import (
    SPEC_TYPES,
    STEP_TYPES,
    AppliesTo,
    Pipeline,
    ProductDefaults,
    QuerySpec,
    TeamApprover,
    TeamRoleApprover,
)
from quarterdeck.deploys.pipelines.rules import step_problems
from quarterdeck.errors import Invalid

Loc = tuple[str | int, ...]
"""A place in a pipeline document: ("steps", 3, "analysis", "queries", "error-rate", "condition")."""
DEFAULTS_FILE = "defaults.yaml"
SHOW_INPUT = frozenset(
    {
        "int_type",
        "string_type",
        "bool_type",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "literal_error",
        "string_pattern_mismatch",
    }
)
"""Pydantic's own errors whose message is clearer with the value written (ours name it themselves)."""


@dataclass(frozen=True)
class Located:
    """One problem of a pipeline, and where: file, line (when known), step and field."""

    file: str
    line: int | None
    step: str | None
    field: str | None
    message: str

    def text(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where, self.step, self.field, self.message]
        return ": ".join(part for part in parts if part)

    def detail(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "step": self.step,
            "field": self.field,
            "message": self.message,
        }


def invalid(problems: list[Located], code: str = "pipelines.invalid") -> Invalid:
    """The error a caller raises for these problems: the first in the message, every one in details."""
    more = len(problems) - 1
    message = problems[0].text() + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
    return Invalid(message, code=code, details=[problem.detail() for problem in problems])


# ---------------------------------------------------------------- locating


def _strip_tags(loc: Loc) -> Loc:
    """Pydantic's location without the union tags it inserts: ("steps", 3, "deploy", "deploy",
    "weight") is the step's `deploy` key, then its `weight`."""
    out: list[str | int] = []
    index = 0
    while index < len(loc):
        part = loc[index]
        out.append(part)
        tagged_step = len(out) >= 2 and out[-2] == "steps" and isinstance(part, int)
        tagged_who = part == "who"
        if (tagged_step or tagged_who) and index + 2 < len(loc):
            index += 1  # the next part is the tag; the part after it is the real key
        index += 1
    return tuple(out)


def _field_text(path: Loc) -> str | None:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def _dig(data: Any, path: Loc) -> Any:
    for part in path:
        if isinstance(part, int) and isinstance(data, list) and 0 <= part < len(data):
            data = data[part]
        elif isinstance(part, str) and isinstance(data, dict):
            data = data.get(part)
        else:
            return None
    return data


def _step_label(data: Any, index: int, rest: Loc) -> tuple[str, Loc]:
    """`steps[3] (analysis "error-rate")` and the path left inside the step (here, inside that query)."""
    kind = rest[0] if rest and rest[0] in STEP_TYPES else None
    if kind is None:
        return f"steps[{index}]", rest
    inner = rest[1:]
    if kind == "analysis" and len(inner) >= 2 and inner[0] == "queries":
        return f"steps[{index}] (analysis {quoted(str(inner[1]))})", inner[2:]
    name = _dig(data, ("steps", index, kind, "name"))
    named = f" {quoted(name)}" if isinstance(name, str) and name else ""
    return f"steps[{index}] ({kind}{named})", inner


def locate(file: str, data: Any, path: Loc, message: str, document: Document | None) -> Located:
    """A problem at `path` of the pipeline `data` as read from `file`."""
    line = document.line_of(".".join(str(part) for part in path)) if document is not None else None
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        step, rest = _step_label(data, path[1], path[2:])
        return Located(file, line, step, _field_text(rest), message)
    return Located(file, line, None, _field_text(path), message)


# ---------------------------------------------------------------- messages


def _allowed_keys(path: Loc) -> list[str] | None:
    """The keys allowed where an unknown key was found."""
    parent = path[:-1]
    if not parent:
        return list(Pipeline.model_fields)
    if parent == ("applies_to",):
        return list(AppliesTo.model_fields)
    if len(parent) == 2 and parent[0] == "steps":
        return None
    if len(parent) == 3 and parent[0] == "steps" and parent[2] in SPEC_TYPES:
        return list(SPEC_TYPES[str(parent[2])].model_fields)
    if len(parent) == 5 and parent[2] == "analysis" and parent[3] == "queries":
        return list(QuerySpec.model_fields)
    if parent[-1] == "who":
        return [*TeamRoleApprover.model_fields, *TeamApprover.model_fields]
    return None


def _message(error: Any, path: Loc) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(path[-1])
        if len(path) == 3 and path[0] == "steps":
            return (
                f"unknown key {quoted(key)}: a step has one key, its type; put {key} inside it, "
                f"e.g. `- deploy: {{{key}: ..., weight: 10}}`"
            )
        allowed = _allowed_keys(path)
        return f"unknown key {quoted(key)}" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    if kind == "missing":
        return "required, missing"
    message = str(error["msg"])
    if kind == "value_error":
        message = str(error.get("ctx", {}).get("error", message))
    elif message[:1].isupper() and not message[1:2].isupper():
        message = message[0].lower() + message[1:]
    value = error.get("input")
    if kind in SHOW_INPUT and isinstance(value, int | float | str) and not isinstance(value, bool):
        shown = quoted(value) if isinstance(value, str) else str(value)
        if len(shown) <= 60 and shown not in message:
            message += f" (it is {shown})"
    return message


def validation_problems(
    exc: ValidationError, file: str, data: Any, document: Document | None, prefix: Loc = ()
) -> list[Located]:
    problems = []
    for error in exc.errors():
        path = _strip_tags(tuple(error["loc"]))
        problems.append(locate(file, data, prefix + path, _message(error, path), document))
    return problems


def parse_pipeline(data: Any, file: str, document: Document | None = None) -> Pipeline:
    """A validated pipeline from parsed YAML or JSON; Invalid naming every problem's file, line, step and
    field. The rules across steps are checked once every step is well formed."""
    if not isinstance(data, dict):
        raise invalid(
            [
                Located(
                    file,
                    document.line if document else None,
                    None,
                    None,
                    "expected a mapping: a pipeline with name and steps",
                )
            ]
        )
    try:
        pipeline = Pipeline.model_validate(data)
    except ValidationError as exc:
        raise invalid(validation_problems(exc, file, data, document)) from None
    across = step_problems(pipeline)
    if across:
        raise invalid([locate(file, data, problem.path, problem.message, document) for problem in across])
    return pipeline


# ---------------------------------------------------------------- text and files


def _documents(text: str, file: str) -> list[Document]:
    try:
        return load_documents(text)
    except Refused as exc:
        raise invalid([Located(file, exc.line, None, None, exc.message)], code="pipelines.refused") from None
    except YamlSyntaxError as exc:
        raise invalid([Located(file, exc.line, None, None, exc.message)], code="pipelines.bad_yaml") from None


def read_pipeline_text(text: str, file: str) -> Pipeline:
    """The one pipeline a YAML (or JSON) text holds."""
    if "\x00" in text:
        raise invalid([Located(file, None, None, None, "the file holds a NUL character")])
    documents = _documents(text, file)
    if len(documents) != 1:
        what = "no pipeline" if not documents else f"{len(documents)} YAML documents"
        raise invalid(
            [
                Located(
                    file,
                    documents[1].line if documents[1:] else None,
                    None,
                    None,
                    f"{what}: a pipeline file holds exactly one pipeline",
                )
            ]
        )
    return parse_pipeline(documents[0].data, file, documents[0])


def read_file_text(path: Path) -> str:
    """A pipeline file's text: a regular file of at most MAX_FILE_BYTES, UTF-8; Invalid naming the file."""
    name = str(path)
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise invalid(
                    [Located(name, None, None, None, "not a regular file; not read")],
                    code="pipelines.refused",
                )
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise invalid(
            [Located(name, None, None, None, f"cannot read the file: {exc.strerror or exc}")],
            code="pipelines.unreadable",
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise invalid(
            [Located(name, None, None, None, f"the file is larger than the limit of {MAX_FILE_BYTES} bytes")],
            code="pipelines.refused",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid([Located(name, None, None, None, f"not UTF-8 text (byte {exc.start})")]) from None


def read_pipeline_file(path: Path) -> Pipeline:
    return read_pipeline_text(read_file_text(path), str(path))


def pipeline_from_body(body: Any, source: str = "request body") -> Pipeline:
    """The pipeline of an API request: JSON (already parsed), or YAML text (application/yaml)."""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise invalid([Located(source, None, None, None, f"not UTF-8 text (byte {exc.start})")]) from None
        return read_pipeline_text(text, source)
    return parse_pipeline(body, source)


# ---------------------------------------------------------------- what ships


def read_defaults(text: str, file: str) -> ProductDefaults:
    """The product defaults from defaults.yaml's text, checked as strictly as any pipeline file."""
    documents = _documents(text, file)
    if len(documents) != 1 or not isinstance(documents[0].data, dict):
        raise invalid([Located(file, None, None, None, "expected one mapping with bake_times and pipelines")])
    document = documents[0]
    try:
        defaults = ProductDefaults.model_validate(document.data)
    except ValidationError as exc:
        raise invalid(validation_problems(exc, file, document.data, document)) from None
    problems = []
    for index, pipeline in enumerate(defaults.pipelines):
        data = document.data["pipelines"][index]
        for problem in step_problems(pipeline):
            located = locate(file, data, problem.path, problem.message, None)
            line = document.line_of(".".join(str(part) for part in ("pipelines", index, *problem.path)))
            problems.append(
                Located(
                    file,
                    line,
                    f"pipelines[{index}] {located.step or ''}".strip(),
                    located.field,
                    located.message,
                )
            )
    if problems:
        raise invalid(problems)
    return defaults


@cache
def product_defaults() -> ProductDefaults:
    """The defaults that ship inside the package (read once: they change only with the package)."""
    text = (
        resources.files("quarterdeck.deploys.pipelines").joinpath(DEFAULTS_FILE).read_text(encoding="utf-8")
    )
    return read_defaults(text, f"quarterdeck/deploys/pipelines/{DEFAULTS_FILE}")
