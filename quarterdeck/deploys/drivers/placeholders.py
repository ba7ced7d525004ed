"""`{name}` placeholders in the commands of a driver's configuration: checked when the configuration is
loaded (an unknown name is refused, naming it), filled in per argument when a step runs, so a value
with spaces or `;` stays one argument and never reaches a shell unquoted."""

from __future__ import annotations

import re
import shlex
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from quarterdeck.deploys.drivers.base import DriverConfigError, DriverError

EXTRA_PREFIX = "vars."
"""`{vars.NAME}` names StepTarget.variables["NAME"]: values the orchestrator adds (the deploy id)."""
EXTRA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class Template:
    """One argument (or, with a shell, one command line) with its placeholders parsed."""

    text: str
    parts: tuple[tuple[str, str | None], ...]
    """(literal text, placeholder name or None) in order."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for _literal, name in self.parts if name is not None)

    def render(self, values: Mapping[str, str | None], *, quote: bool = False, where: str) -> str:
        """The text with each placeholder's value (shell-quoted when `quote`). A placeholder whose
        value is None (a step without an image, a first deploy without a baseline) is an error."""
        out = []
        for literal, name in self.parts:
            out.append(literal)
            if name is None:
                continue
            value = values.get(name)
            if value is None:
                raise DriverError(
                    f"{where} uses {{{name}}}, which this step has no value for",
                    code="deploys.missing_variable",
                )
            out.append(shlex.quote(value) if quote else value)
        return "".join(out)


def parse(text: str, known: Sequence[str], *, where: str) -> Template:
    """`text` with its placeholders checked against `known` names (and `vars.*`)."""
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise DriverConfigError(
            f"{where}: {text!r} is not a valid template ({exc}); write {{{{ and }}}} for literal braces",
            details=[{"field": where, "message": str(exc)}],
        ) from None
    parts: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in pieces:
        if name is None:
            parts.append((literal, None))
            continue
        if spec or conversion:
            raise DriverConfigError(
                f"{where}: {{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} "
                f"has a format; write {{{name}}}",
                details=[{"field": where, "message": "placeholders take no format"}],
            )
        if name not in known and not (
            name.startswith(EXTRA_PREFIX) and EXTRA_NAME.fullmatch(name[len(EXTRA_PREFIX) :])
        ):
            choices = " ".join(f"{{{k}}}" for k in sorted(known))
            raise DriverConfigError(
                f"{where}: unknown variable {{{name}}}; known: {choices} and {{vars.NAME}}",
                code="deploys.unknown_variable",
                details=[{"field": where, "message": f"unknown variable {{{name}}}"}],
            )
        parts.append((literal, name))
    return Template(text, tuple(parts))


def values_with_extras(values: Mapping[str, str | None], extras: Mapping[str, str]) -> dict[str, str | None]:
    """The step's values plus `vars.NAME` for each extra variable of its target."""
    merged = dict(values)
    merged.update({f"{EXTRA_PREFIX}{name}": value for name, value in extras.items()})
    return merged
